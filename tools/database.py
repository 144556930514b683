"""The operations database the tools act on: SQLite under ``HITL_STATE_DIR``.

It is created and seeded on first use with generated, deterministic fake data (no real
person's data: every address is under the reserved ``example.com`` / ``example.org``).
The allow-list below is the tools' contract with it: a table or column that is not listed
here cannot be named by a tool call, whatever the model writes.
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
LOCK_WAIT_SECONDS = 30.0  # how long a transaction waits for another one holding the lock
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
    ),
    "accounts": Table(
        {"id": "TEXT", "name": "TEXT", "balance_cents": "INTEGER"},
        amount_column="balance_cents",
    ),
    "users": Table(
        {"id": "INTEGER", "username": "TEXT", "email": "TEXT", "active": "INTEGER"},
        deletable=True,
        updatable=frozenset({"email", "active"}),
    ),
    "user_roles": Table({"username": "TEXT", "role": "TEXT"}, key="username"),
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
        }
    ),
}
ROLES = ("viewer", "support", "billing", "admin")

_SCHEMA = """
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
    """A connection that opens its transactions itself (``BEGIN IMMEDIATE`` to write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return sqlite3.connect(path, timeout=LOCK_WAIT_SECONDS, isolation_level=None)


def ensure_database(path: Path) -> None:
    """Create and seed the database once; concurrent first users wait for one another.

    Nothing runs before ``BEGIN IMMEDIATE`` (see execute_action.py): a connection holding
    a read lock could be refused the write lock at once instead of waiting its turn.
    """
    with closing(connect(path)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            exists = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            if exists is None:
                for statement in _SCHEMA.split(";"):
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


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a database seeded by an earlier version up to ``SCHEMA_VERSION``, once: the
    version is written in the same transaction, so test rows deleted later stay deleted."""
    row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is not None and row[0] == "1":
        seed_test_customers(db)
        db.execute("UPDATE meta SET value = ? WHERE name = 'schema_version'", (SCHEMA_VERSION,))


def reset_database(path: Path) -> None:
    """Delete the database and seed a fresh one (``python -m tools --reset``)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    ensure_database(path)
