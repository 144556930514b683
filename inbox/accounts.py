"""The inbox's built-in accounts: a JSON file of user names, password hashes and API token
hashes (``HITL_INBOX_USERS``). Nothing in it can sign anyone in if it leaks.

Passwords are hashed with Argon2id (argon2-cffi). API tokens are 256 random bits, so a
SHA-256 of the token is enough to store (as GitHub does) and lets a token be found in
constant time per request.

Each account also has a session key, random, carried in its sessions' cookies: a new
password, a sign-out and the account's removal replace (or remove) it, so every cookie
issued before stops working at its next request.
"""

import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from constants import INBOX_USERS_ENV

DEFAULT_USERS_FILE = Path(".hitl") / "inbox-users.json"
TOKEN_PREFIX = "hitl_"
MAX_NAME_LENGTH = 64

_hasher = PasswordHasher()
# Verified against when the user does not exist, so a wrong name costs the same time as a
# wrong password: the answer's timing does not tell which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountsError(Exception):
    """The accounts file cannot be read or written; the message names it."""


def new_session_key() -> str:
    return secrets.token_urlsafe(16)


@dataclass
class Account:
    password_hash: str | None = None
    token_hashes: list[str] = field(default_factory=list)
    # Files written before session keys existed have none: "" until the next password.
    session_key: str = field(default_factory=new_session_key)


def users_file() -> Path:
    return Path(os.environ.get(INBOX_USERS_ENV) or DEFAULT_USERS_FILE)


def valid_name(name: str) -> str | None:
    """Why ``name`` cannot be a user name, or None. Names are what approver lists and the
    audit trail show, so they are printable, single-line and short."""
    if not name or name != name.strip():
        return "must not be empty or start or end with spaces"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters"
    if not name.isprintable():
        return "must be printable characters only"
    return None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """The accounts file, re-read when it changes, so ``add-user`` needs no restart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._accounts: dict[str, Account] = {}

    def _load(self) -> dict[str, Account]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._accounts = None, {}
            return self._accounts
        # The inode too: a rewrite (always a new file, os.replace) within the clock's
        # granularity keeps mtime and often size.
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._accounts = read_accounts(self.path)
            self._stamp = stamp
        return self._accounts

    def exist(self) -> bool:
        return bool(self._load())

    def check_password(self, name: str, password: str) -> bool:
        """True only for a known user with this password; as slow either way."""
        account = self._load().get(name)
        stored = account.password_hash if account and account.password_hash else _DUMMY_HASH
        try:
            return _hasher.verify(stored, password) and stored is not _DUMMY_HASH
        except (VerificationError, InvalidHashError):
            return False

    def session_valid(self, name: str, key: str) -> bool:
        """The session ``key`` is the account's current one: the account still exists, and
        no password change or sign-out has ended the sessions issued with it."""
        account = self._load().get(name)
        return account is not None and secrets.compare_digest(account.session_key, key)

    def session_key(self, name: str) -> str:
        """The key a new session of ``name`` carries (the account exists: it just signed in)."""
        return self._load()[name].session_key

    def end_sessions(self, name: str) -> None:
        """Every session of ``name`` ends now: its key is replaced in the file."""
        accounts = read_accounts(self.path)
        if name in accounts:
            accounts[name].session_key = new_session_key()
            write_accounts(self.path, accounts)
        self._stamp = None

    def user_for_token(self, token: str) -> str | None:
        wanted = token_hash(token)
        for name, account in self._load().items():
            if any(secrets.compare_digest(wanted, h) for h in account.token_hashes):
                return name
        return None


def read_accounts(path: Path) -> dict[str, Account]:
    try:
        raw = json.loads(path.read_text())
        return {
            name: Account(
                entry.get("password_hash"),
                list(entry.get("token_hashes", [])),
                str(entry.get("session_key", "")),
            )
            for name, entry in raw["users"].items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise AccountsError(f"Cannot read the accounts file {path}: {err}") from None


def write_accounts(path: Path, accounts: dict[str, Account]) -> None:
    """Replace the file atomically, readable by its owner only."""
    data = {
        "users": {
            name: {
                "password_hash": a.password_hash,
                "token_hashes": a.token_hashes,
                "session_key": a.session_key,
            }
            for name, a in sorted(accounts.items())
        }
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as err:
        raise AccountsError(f"Cannot write the accounts file {path}: {err}") from None


def set_password(path: Path, name: str, password: str) -> None:
    accounts = read_accounts(path) if path.exists() else {}
    account = accounts.setdefault(name, Account())
    account.password_hash = _hasher.hash(password)
    account.session_key = new_session_key()  # a new password ends every session at once
    write_accounts(path, accounts)


def remove_user(path: Path, name: str) -> None:
    """Remove an account: its sessions and API tokens stop working at their next request."""
    accounts = read_accounts(path) if path.exists() else {}
    if accounts.pop(name, None) is None:
        raise AccountsError(f"No user {name!r} in {path}.")
    write_accounts(path, accounts)


def new_token(path: Path, name: str) -> str:
    """Create an API token for an existing user; only its hash is kept."""
    accounts = read_accounts(path) if path.exists() else {}
    if name not in accounts:
        raise AccountsError(f"No user {name!r} in {path}; add it first with `add-user {name}`.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    accounts[name].token_hashes.append(token_hash(token))
    write_accounts(path, accounts)
    return token
