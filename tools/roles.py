"""Granting and revoking a user's role."""

import sqlite3
from typing import Literal

from pydantic import Field

from tools.base import Effect, Tool, ToolArguments, ToolRefused, as_rows

Role = Literal["viewer", "support", "billing", "admin"]


class RoleArgs(ToolArguments):
    username: str = Field(pattern=r"^[a-z0-9_.-]{1,64}$")
    role: Role


def _roles(db: sqlite3.Connection, username: str) -> list[str]:
    if not as_rows(db.execute("SELECT id FROM users WHERE username = ?", (username,))):
        raise ToolRefused(f"no user {username!r}")
    rows = db.execute(
        "SELECT role FROM user_roles WHERE username = ? ORDER BY role", (username,)
    ).fetchall()
    return [role for (role,) in rows]


def _preview(db: sqlite3.Connection, args: RoleArgs, *, grant: bool) -> Effect:
    before = _roles(db, args.username)
    after = sorted({*before, args.role}) if grant else [r for r in before if r != args.role]
    verb = "grants" if grant else "revokes"
    unchanged = before == after
    return Effect(
        summary=f"{verb} role {args.role} {'to' if grant else 'from'} {args.username}"
        + ("; no change: already so" if unchanged else ""),
        affected=0 if unchanged else 1,
        fingerprint_rows=[args.username, before],
        details=(f"roles: {', '.join(before) or 'none'} -> {', '.join(after) or 'none'}",),
    )


def _preview_grant(db: sqlite3.Connection, args: RoleArgs) -> Effect:
    return _preview(db, args, grant=True)


def _preview_revoke(db: sqlite3.Connection, args: RoleArgs) -> Effect:
    return _preview(db, args, grant=False)


def _apply_grant(db: sqlite3.Connection, args: RoleArgs) -> str:
    db.execute("INSERT OR IGNORE INTO user_roles VALUES (?, ?)", (args.username, args.role))
    return f"granted role {args.role} to {args.username}"


def _apply_revoke(db: sqlite3.Connection, args: RoleArgs) -> str:
    db.execute("DELETE FROM user_roles WHERE username = ? AND role = ?", (args.username, args.role))
    return f"revoked role {args.role} from {args.username}"


GRANT_ROLE = Tool(
    name="grant_role",
    description="Give a user a role (viewer, support, billing, admin).",
    arguments=RoleArgs,
    preview=_preview_grant,
    apply=_apply_grant,
)
REVOKE_ROLE = Tool(
    name="revoke_role",
    description="Take a role away from a user.",
    arguments=RoleArgs,
    preview=_preview_revoke,
    apply=_apply_revoke,
)
