"""An ad-hoc SQL statement: the escape hatch, and so a tool that always asks.

Even approved, it stays inside the operations database and outside what other tools
guard: SQLite's authorizer allows only reading the allow-listed tables and changing rows
of those that are not guarded (money, roles and the outbox change only through their own
tools), and calling only allow-listed functions (``sql_functions.py``). ATTACH (which would
write a file anywhere), PRAGMA, schema changes, transactions and the execution ledger are
refused, and one call runs one statement. A statement whose effect depends on the time or
on chance is refused before anyone is asked: the effect approved must be the one that runs.
"""

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from pydantic import Field, model_validator

from models.tools import Row
from tools.base import Effect, Tool, ToolArguments, ToolRefused
from tools.budget import stopped_by_a_limit
from tools.change_log import is_log_trigger
from tools.database import TABLES
from tools.sql_functions import function_refusal, guard_time, time_or_randomness

_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
_WRITE_ACTIONS = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
SAMPLE_ROWS = 5


class RunSqlArgs(ToolArguments):
    statement: str = Field(min_length=1, max_length=2_000, description="one SQLite statement")

    @model_validator(mode="after")
    def _same_effect_at_execution(self) -> "RunSqlArgs":
        if problem := time_or_randomness(self.statement):
            raise ValueError(problem)
        return self


@dataclass(frozen=True)
class _Ran:
    sample: list[Row]
    returned: int
    changed: int


def _authorize(refuse: Callable[[str], None], action: int, arg1: str | None,
               arg2: str | None, db_name: str | None, trigger: str | None) -> int:  # fmt: skip
    if is_log_trigger(trigger):  # the connection's own record of what changed
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return _refused(refuse, function_refusal(arg2 or ""))
    if action in _READ_ACTIONS and (arg1 is None or arg1 in TABLES):
        return sqlite3.SQLITE_OK if db_name in (None, "main") else sqlite3.SQLITE_DENY
    if action in _WRITE_ACTIONS and arg1 in TABLES and db_name in (None, "main"):
        guarded = TABLES[arg1].adhoc_write_refusal
        return _refused(refuse, f"run_sql cannot change {arg1}: {guarded}" if guarded else None)
    return sqlite3.SQLITE_DENY


def _refused(refuse: Callable[[str], None], reason: str | None) -> int:
    if reason is None:
        return sqlite3.SQLITE_OK
    refuse(reason)
    return sqlite3.SQLITE_DENY


@contextmanager
def _confined(db: sqlite3.Connection) -> Iterator[list[str]]:
    """The statement's limits while it runs; yields the reasons of what was refused."""
    refusals: list[str] = []
    guard_time(db, refusals.append)
    db.set_authorizer(partial(_authorize, refusals.append))
    try:
        yield refusals
    finally:
        db.set_authorizer(None)


def _run(db: sqlite3.Connection, statement: str) -> _Ran:
    """Run the statement confined: the first rows it returns, how many, and rows changed.
    The rows are counted, not kept: a statement may return millions."""
    with _confined(db) as refusals:
        try:
            cursor = db.execute(statement)
            sample, returned = [], 0
            if cursor.description:
                names = [column[0] for column in cursor.description]
                for values in cursor:
                    if returned < SAMPLE_ROWS:
                        sample.append(dict(zip(names, values, strict=True)))
                    returned += 1
        except (sqlite3.DatabaseError, sqlite3.ProgrammingError, sqlite3.Warning) as err:
            if isinstance(err, sqlite3.Error) and stopped_by_a_limit(err):
                raise  # the budget's, not the statement's: see tools/budget.py
            reason = refusals[-1] if refusals else str(err)
            raise ToolRefused(f"the statement was refused: {reason}") from None
    return _Ran(sample, returned, max(cursor.rowcount, 0))


def _data_digest(db: sqlite3.Connection) -> str:
    """A hash of every allow-listed table (the statement could read any row of them),
    streamed so a large table is never held in memory."""
    digest = hashlib.sha256()
    for table in TABLES:
        for row in db.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
            digest.update(json.dumps([table, *row], default=repr).encode())
    return digest.hexdigest()


def _preview(db: sqlite3.Connection, args: RunSqlArgs) -> Effect:
    data = _data_digest(db)
    db.execute("SAVEPOINT preview")
    try:
        ran = _run(db, args.statement)
    finally:
        if db.in_transaction:  # an interrupted write rolls the whole transaction back
            db.execute("ROLLBACK TO preview")
            db.execute("RELEASE preview")
    summary = (
        f"changes {ran.changed:,} rows"
        if ran.changed
        else f"changes nothing; returns {ran.returned:,} rows"
    )
    return Effect(
        summary=f"runs ad-hoc SQL: {summary}",
        affected=ran.changed or ran.returned,
        fingerprint_rows=[data],
        details=(f"statement: {args.statement!r}",),
        sample_rows=tuple(ran.sample),
    )


def _apply(db: sqlite3.Connection, args: RunSqlArgs) -> str:
    ran = _run(db, args.statement)
    return f"ran ad-hoc SQL: changed {ran.changed:,} rows, returned {ran.returned:,}"


RUN_SQL = Tool(
    name="run_sql",
    description="Run one SQL statement (SQLite) on the operations tables; always asks a "
    "person. It cannot change accounts, payments, invoices, user_roles or outbox (their "
    "own tools do), nor use random() or the current time.",
    arguments=RunSqlArgs,
    preview=_preview,
    apply=_apply,
    always_asks=True,
)
