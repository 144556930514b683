"""An ad-hoc SQL statement: the escape hatch, and so a tool that always asks.

Even approved, it stays inside the operations database: SQLite's authorizer allows only
reading and changing rows of the allow-listed tables. ATTACH (which would write a file
anywhere), PRAGMA, schema changes, transactions and the execution ledger are refused, and
one call runs one statement.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import Field

from tools.base import Effect, Tool, ToolArguments, ToolRefused, as_rows, first
from tools.database import TABLES
from tools.models import Row

_ROW_ACTIONS = {sqlite3.SQLITE_READ, sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE,
                sqlite3.SQLITE_DELETE}  # fmt: skip
_ALWAYS_ALLOWED = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_DENIED_FUNCTIONS = {"load_extension"}


class RunSqlArgs(ToolArguments):
    statement: str = Field(min_length=1, max_length=2_000, description="one SQLite statement")


def _authorize(action: int, arg1: str | None, arg2: str | None, db_name: str | None,
               _trigger: str | None) -> int:  # fmt: skip
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in _DENIED_FUNCTIONS else 0
    if action in _ALWAYS_ALLOWED:
        return sqlite3.SQLITE_OK
    if action in _ROW_ACTIONS and arg1 in TABLES and db_name in (None, "main"):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


@contextmanager
def _confined(db: sqlite3.Connection) -> Iterator[None]:
    db.set_authorizer(_authorize)
    try:
        yield
    finally:
        db.set_authorizer(None)


def _run(db: sqlite3.Connection, statement: str) -> tuple[list[Row], int]:
    """Run the statement confined; its rows (if it returns any) and rows changed."""
    before = db.total_changes
    try:
        with _confined(db):
            cursor = db.execute(statement)
            rows = as_rows(cursor) if cursor.description else []
    except (sqlite3.DatabaseError, sqlite3.ProgrammingError, sqlite3.Warning) as err:
        raise ToolRefused(f"the statement was refused: {err}") from None
    return rows, db.total_changes - before


def _snapshot(db: sqlite3.Connection) -> list[list[Row]]:
    """Every allow-listed table: the statement could touch any row of them."""
    return [as_rows(db.execute(f'SELECT * FROM "{table}" ORDER BY rowid')) for table in TABLES]


def _preview(db: sqlite3.Connection, args: RunSqlArgs) -> Effect:
    snapshot = _snapshot(db)
    db.execute("SAVEPOINT preview")
    try:
        rows, changed = _run(db, args.statement)
    finally:
        db.execute("ROLLBACK TO preview")
        db.execute("RELEASE preview")
    summary = (
        f"changes {changed:,} rows" if changed else f"changes nothing; returns {len(rows):,} rows"
    )
    return Effect(
        summary=f"runs ad-hoc SQL: {summary}",
        affected=changed or len(rows),
        fingerprint_rows=snapshot,
        details=(f"statement: {args.statement!r}",),
        sample_rows=first(rows),
    )


def _apply(db: sqlite3.Connection, args: RunSqlArgs) -> str:
    rows, changed = _run(db, args.statement)
    return f"ran ad-hoc SQL: changed {changed:,} rows, returned {len(rows):,}"


RUN_SQL = Tool(
    name="run_sql",
    description="Run one SQL statement (SQLite) on the operations tables; always asks a person.",
    arguments=RunSqlArgs,
    preview=_preview,
    apply=_apply,
    always_asks=True,
)
