"""The operations database the tools act on: SQLite under ``HITL_STATE_DIR``.

It is created and seeded on first use with generated, deterministic fake data (no real
person's data: every address is under the reserved ``example.com`` / ``example.org``).
The allow-list below is the tools' contract with it: a table or column that is not listed
here cannot be named by a tool call, whatever the model writes.

It holds customers' addresses and the company's money, so the folder is created 0700 and
the files 0600 (SQLite gives the -wal and -shm files the database file's mode). It runs
in WAL mode: a reader never waits for a writer, so one run's long call cannot make
another run's preview fail with "database is locked".
"""

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from constants import STATE_DIR_ENV
from tools.seed_data import seed, seed_test_customers

DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / ".hitl"
DATABASE_FILE = "operations.sqlite3"
# How long a transaction waits for another one holding the write lock: longer than the
# budget of any one call (tools/budget.py), which is how long a writer can hold it.
LOCK_WAIT_SECONDS = 30.0
PRIVATE_FOLDER_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# 2: the seeded test customers (status 'test'); a database seeded at 1 gets them once.
SCHEMA_VERSION = "2"


@dataclass(frozen=True)
class Table:
    """A table tools may name: its columns (name -> SQLite type), its key, and what the
    generic record tools may do to it. Money tables are changed only by the money tools."""

    columns: dict[str, str]
    key: str = "id"
    deletable: bool = False
    updatable: frozenset[str] = field(default_factory=frozenset)
    amount_column: str | None = None  # summed by the summaries, in cents
    # Why ad-hoc SQL may read but never write it (None: run_sql may change its rows).
    adhoc_write_refusal: str | None = None
    # Written with the time of execution, so left out of the effect's fingerprint: the
    # preview cannot know it, and it is not what people approve.
    execution_time_column: str | None = None


_MONEY = "money moves only through the money tools (pay_invoice, pay_vendor, transfer_funds)"
TABLES: dict[str, Table] = {
    "customers": Table(
        {
            "id": "INTEGER",
            "name": "TEXT",
            "email": "TEXT",
            "country": "TEXT",
            "status": "TEXT",
            "created_at": "TEXT",
        },
        deletable=True,
        updatable=frozenset({"name", "email", "country", "status"}),
    ),
    "invoices": Table(
        {
            "id": "INTEGER",
            "vendor": "TEXT",
            "amount_cents": "INTEGER",
            "status": "TEXT",
            "due_date": "TEXT",
        },
        deletable=True,
        updatable=frozenset({"due_date", "status"}),
        amount_column="amount_cents",
        adhoc_write_refusal=_MONEY,
    ),
    "payments": Table(
        {
            "id": "INTEGER",
            "invoice_id": "INTEGER",
            "from_account": "TEXT",
            "to_party": "TEXT",
            "amount_cents": "INTEGER",
            "memo": "TEXT",
            "paid_at": "TEXT",
        },
        amount_column="amount_cents",
        adhoc_write_refusal=_MONEY,
        execution_time_column="paid_at",
    ),
    "accounts": Table(
        {"id": "TEXT", "name": "TEXT", "balance_cents": "INTEGER"},
        amount_column="balance_cents",
        adhoc_write_refusal=_MONEY,
    ),
    "users": Table(
        {"id": "INTEGER", "username": "TEXT", "email": "TEXT", "active": "INTEGER"},
        deletable=True,
        updatable=frozenset({"email", "active"}),
    ),
    "user_roles": Table(
        {"username": "TEXT", "role": "TEXT"},
        key="username",
        adhoc_write_refusal="roles change only through grant_role and revoke_role",
    ),
    "mailing_list": Table(
        {"id": "INTEGER", "list_name": "TEXT", "email": "TEXT", "name": "TEXT"},
        deletable=True,
    ),
    "outbox": Table(
        {
            "id": "INTEGER",
            "recipients": "TEXT",
            "recipient_count": "INTEGER",
            "subject": "TEXT",
            "body": "TEXT",
            "queued_at": "TEXT",
        },
        adhoc_write_refusal="e-mail is queued only through send_email",
        execution_time_column="queued_at",
    ),
}
ROLES = ("viewer", "support", "billing", "admin")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, country TEXT NOT NULL,
    status TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invoices (
    id INTEGER PRIMARY KEY, vendor TEXT NOT NULL, amount_cents INTEGER NOT NULL,
    status TEXT NOT NULL, due_date TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY, invoice_id INTEGER, from_account TEXT NOT NULL,
    to_party TEXT NOT NULL, amount_cents INTEGER NOT NULL, memo TEXT NOT NULL,
    paid_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, name TEXT NOT NULL,
    balance_cents INTEGER NOT NULL CHECK (balance_cents >= 0));
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE, email TEXT NOT NULL,
    active INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS user_roles (
    username TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (username, role));
CREATE TABLE IF NOT EXISTS mailing_list (
    id INTEGER PRIMARY KEY, list_name TEXT NOT NULL, email TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, recipients TEXT NOT NULL, recipient_count INTEGER NOT NULL,
    subject TEXT NOT NULL, body TEXT NOT NULL, queued_at TEXT NOT NULL);
-- One row per executed tool call, written in the same transaction as its effect: the
-- unique key is what makes a retried execution return the first result instead of acting.
CREATE TABLE IF NOT EXISTS tool_executions (
    idempotency_key TEXT PRIMARY KEY, tool TEXT NOT NULL, arguments TEXT NOT NULL,
    outcome TEXT NOT NULL, executed_at TEXT NOT NULL);
"""


def database_path() -> Path:
    """The database file, read from the environment at each call so tests can point it away."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR) / DATABASE_FILE


def connect(path: Path) -> sqlite3.Connection:
    """A connection that opens its transactions itself (``BEGIN IMMEDIATE`` to write), to a
    database file only this user can read."""
    _create_private(path)
    return sqlite3.connect(path, timeout=LOCK_WAIT_SECONDS, isolation_level=None)


def private_copy(path: Path) -> sqlite3.Connection:
    """An in-memory copy of the database as it is now. A preview works its effect out on
    it, so it never takes the write lock another run's call may need (or hold)."""
    copy = sqlite3.connect(":memory:", isolation_level=None)
    with closing(connect(path)) as source:
        source.backup(copy)
    return copy


def ensure_database(path: Path) -> None:
    """Create and seed the database once; concurrent first users wait for one another.

    A database that is ready is only read (in WAL mode that waits for nobody), so a writer
    holding the lock does not stall every other call here. Otherwise nothing runs before
    ``BEGIN IMMEDIATE`` (see execute_action.py): a connection holding a read lock could be
    refused the write lock at once instead of waiting its turn.
    """
    with closing(connect(path)) as db:
        if _is_ready(db):
            return
        db.execute("PRAGMA journal_mode = WAL")  # kept by the file: set once
        db.execute("BEGIN IMMEDIATE")
        try:
            exists = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            if exists is None:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                seed(db)
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            else:
                _upgrade(db)
            db.execute("COMMIT")
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")


def _is_ready(db: sqlite3.Connection) -> bool:
    """Seeded at the current version, in WAL mode: nothing to write."""
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        return False
    try:
        row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no meta table: a new database
        return False
    return row is not None and row[0] == SCHEMA_VERSION


def _create_private(path: Path) -> None:
    """The folder (0700) and the database file (0600) if they are new; a database file of
    an earlier version, created world-readable, is made private too. An existing folder is
    left as it is: it may be shared (``HITL_STATE_DIR=/srv/state``)."""
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(mode=PRIVATE_FOLDER_MODE, exist_ok=True)  # parents=True ignores mode
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE_MODE))
    for suffix in ("", "-wal", "-shm"):
        file = Path(f"{path}{suffix}")
        if file.exists() and file.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
            file.chmod(PRIVATE_FILE_MODE)


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a database seeded by an earlier version up to ``SCHEMA_VERSION``, once: the
    version is written in the same transaction, so test rows deleted later stay deleted."""
    row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is not None and row[0] == "1":
        seed_test_customers(db)
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (SCHEMA_VERSION,))


RESEED_COMMAND = "uv run python -m tools --reset"


def reset_database(path: Path) -> None:
    """Delete the database and seed a fresh one (``python -m tools --reset``)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    ensure_database(path)
