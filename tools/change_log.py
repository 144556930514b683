"""What a tool call changed, row by row: the part of its fingerprint that is the effect.

A fingerprint of the statement and of the data before it does not pin the effect down: a
statement whose WHERE reads the clock or ``random()`` changes other rows at execution than
in the preview. So the connection logs every row written to the allow-listed tables (the
row before and after, as SQL literals) through temporary triggers, which only it can see;
the preview's fingerprint covers that log, and execution commits only if its own log is
the same. A column the tool stamps with the time of execution is left out: it is not what
people approve, and the preview cannot know it. So is the key SQLite assigns a new row (its
rowid, and an INTEGER PRIMARY KEY, which is the rowid): it is the next free number when the
call runs, which any other call's insert since the preview moves, so two approved e-mails
(or payments) would otherwise each drift the other's approval. A row inserted where one
already was is still seen: its replacement logs the old row's delete.
"""

import hashlib
import json
import sqlite3

from tools.database import TABLES, Table

LOG_TABLE = "tool_change_log"
TRIGGER_PREFIX = "tool_change_log_"
_EVENTS = {"insert": ("NEW",), "update": ("OLD", "NEW"), "delete": ("OLD",)}


def log_changes(db: sqlite3.Connection) -> None:
    """Start logging the rows this connection writes (from now on, until it closes)."""
    db.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {LOG_TABLE}"
        " (tbl TEXT NOT NULL, event TEXT NOT NULL, before TEXT, after TEXT)"
    )
    # A REPLACE that deletes a row to make room fires the delete trigger only with this on.
    db.execute("PRAGMA recursive_triggers = ON")
    for name, table in TABLES.items():
        for event, sides in _EVENTS.items():
            values = {side: _literal_row(side, table, new_row=event == "insert") for side in sides}
            db.execute(
                f'CREATE TEMP TRIGGER IF NOT EXISTS "{TRIGGER_PREFIX}{name}_{event}"'
                f' AFTER {event.upper()} ON main."{name}" BEGIN'
                f" INSERT INTO {LOG_TABLE} VALUES ('{name}', '{event}',"
                f" {values.get('OLD', 'NULL')}, {values.get('NEW', 'NULL')}); END"
            )


def is_log_trigger(trigger: str | None) -> bool:
    """The trigger is one of ours (a tool call cannot create triggers)."""
    return trigger is not None and trigger.startswith(TRIGGER_PREFIX)


def forget_changes(db: sqlite3.Connection) -> None:
    db.execute(f"DELETE FROM temp.{LOG_TABLE}")


def changes_digest(db: sqlite3.Connection) -> str:
    """A hash of the rows logged since ``forget_changes``, in a fixed order: equal for
    equal effects, whatever order the rows were visited in."""
    digest = hashlib.sha256()
    rows = db.execute(
        f"SELECT tbl, event, before, after FROM temp.{LOG_TABLE} ORDER BY tbl, event, before, after"
    )
    for row in rows:
        digest.update(json.dumps(row).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _literal_row(side: str, table: Table, *, new_row: bool = False) -> str:
    """The row as SQL literals (``quote``), which any value, a blob too, has; a ``new_row``
    without the key SQLite assigns it (see the module's docstring)."""
    columns = ["rowid", *(c for c in table.columns if c != table.execution_time_column)]
    if new_row:
        assigned = {"rowid", table.key} if table.columns.get(table.key) == "INTEGER" else {"rowid"}
        columns = [column for column in columns if column not in assigned]
    return " || ',' || ".join(f'quote({side}."{column}")' for column in columns)
