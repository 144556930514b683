"""The execute activity. The action is simulated: it is logged, and nothing is changed.

New runs act only through tools (``activities/execute_tool.py``): the analysis refuses a proposal
that names none. This activity serves the runs whose analysis was recorded before that
(their proposal carries no tool call, so default-deny asked a person), and the histories
recorded before tools, which replay through it.

What is real is the idempotency: the simulation honours ``idempotency_key`` the way a real
target system must. A small SQLite ledger (``HITL_STATE_DIR``, default ``.hitl/`` in the
project; a relative value is taken from the project folder, not the worker's current one;
the folder is created 0700 and the file 0600, since it holds action parameters) records
each executed key with its result. A second execution with the same key, whether a Temporal
retry after a lost reply, a second worker, or a worker restarted since, does not act again:
it returns the first result and logs the repeat. The key is derived from the workflow and
request IDs, so every retry of one approved action carries the same key.

No lock on the ledger is held while acting, so a slow action never holds up the others:
the key is claimed in one short transaction, the action runs, and its result is recorded
(and the claim cleared) in another. Executions of the same key on this host wait for each
other on a per-key file lock, which the OS releases if the process dies. So a claim found
without a result means the execution that made it died between acting and recording: the
action may or may not have happened, and this execution refuses to guess
(``ExecutionOutcomeUnknown``, not retried) rather than act twice.

A real action passes the key to the system it changes (an ``Idempotency-Key`` header, a
unique constraint, a dedup table written in the same transaction as the change); a ledger
beside the call, like this one, cannot make a remote effect and its record atomic.
"""

import asyncio
import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from constants import STATE_DIR_ENV
from models.models import ExecutionResult, ProposedAction

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = PROJECT_DIR / ".hitl"
LEDGER_FILE = "executed_actions.sqlite3"
KEY_LOCKS_DIR = "key-locks"
HEARTBEAT_EVERY_SECONDS = 2.0  # well inside the workflow's 10 s heartbeat timeout
LOCK_WAIT_SECONDS = 30.0  # how long an execution waits for another one holding the ledger

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS executed_actions (
        idempotency_key TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        result TEXT NOT NULL,
        executed_at TEXT NOT NULL
    )""",
    # A key being acted on: written before acting, removed when the result is recorded.
    """CREATE TABLE IF NOT EXISTS claimed_actions (
        idempotency_key TEXT PRIMARY KEY,
        action TEXT NOT NULL,
        claimed_at TEXT NOT NULL
    )""",
)


def ledger_path() -> Path:
    """The ledger file, read from the environment at each call so tests can point it away.
    A relative ``HITL_STATE_DIR`` is relative to the project, wherever the worker runs."""
    configured = os.environ.get(STATE_DIR_ENV)
    return (PROJECT_DIR / configured if configured else DEFAULT_STATE_DIR) / LEDGER_FILE


class ExecuteActionInput(BaseModel):
    """Input of the execute activity. ``idempotency_key`` is stable across retries."""

    idempotency_key: str
    action: ProposedAction


@activity.defn
async def execute_action(request: ExecuteActionInput) -> ExecutionResult:
    """Carry out the approved action (simulated) once per idempotency key, and say what was
    done; a repeated key gets the first execution's result back."""
    # sqlite3 blocks (it may wait for another execution's lock): keep it off the event loop,
    # and heartbeat meanwhile, so that if this worker dies the server retries the action on
    # another worker within the heartbeat timeout instead of the whole start-to-close timeout.
    # A cancellation (the run was cancelled) cannot stop a commit half-way: the action
    # finishes and its result is returned, so the run reports it executed, never cancelled.
    work = asyncio.ensure_future(asyncio.to_thread(_execute_once, request, ledger_path()))
    while not work.done():
        activity.heartbeat()
        try:
            await asyncio.wait({work}, timeout=HEARTBEAT_EVERY_SECONDS)
        except asyncio.CancelledError:
            activity.logger.info("Cancelled while executing: finishing the action first")
            return await asyncio.shield(work)
    return work.result()


def _execute_once(request: ExecuteActionInput, path: Path) -> ExecutionResult:
    _create_private(path)
    key = request.idempotency_key
    with _key_lock(path.parent, key), closing(_connect(path)) as db:
        with _transaction(db):
            row = db.execute(
                "SELECT action, result, executed_at FROM executed_actions"
                " WHERE idempotency_key = ?",
                (key,),
            ).fetchone()
            if row is None:
                _claim(db, request)
        if row is not None:
            return _repeat(request, *row)
        try:
            result = _act(request)
        except BaseException:
            with _transaction(db):  # it failed before taking effect: a retry may act
                db.execute("DELETE FROM claimed_actions WHERE idempotency_key = ?", (key,))
            raise
        with _transaction(db):
            db.execute(
                "INSERT INTO executed_actions VALUES (?, ?, ?, ?)",
                (
                    key,
                    request.action.model_dump_json(),
                    result.model_dump_json(),
                    datetime.now(UTC).isoformat(),
                ),
            )
            db.execute("DELETE FROM claimed_actions WHERE idempotency_key = ?", (key,))
        return result


def _create_private(path: Path) -> None:
    """The folder (0700) and the ledger file (0600), readable by this user only: the ledger
    holds the parameters of every action. Existing ones are left as they are."""
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(mode=0o700, exist_ok=True)  # parents=True would ignore the mode
    (path.parent / KEY_LOCKS_DIR).mkdir(mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))


@contextmanager
def _key_lock(folder: Path, key: str) -> Iterator[None]:
    """Wait until no other execution of ``key`` on this host runs, and keep it that way.
    An flock, so the OS releases it when its holder dies, crash included."""
    name = hashlib.sha256(key.encode()).hexdigest()
    fd = os.open(folder / KEY_LOCKS_DIR / f"{name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we open each (short) transaction ourselves.
    return sqlite3.connect(path, timeout=LOCK_WAIT_SECONDS, isolation_level=None)


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One short write transaction. BEGIN IMMEDIATE takes the write lock before reading,
    and nothing runs before it: a connection that already holds a read lock when it asks
    for the write lock can be refused at once ("database is locked") instead of waiting."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA:
            db.execute(statement)
        yield
        db.execute("COMMIT")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")


def _claim(db: sqlite3.Connection, request: ExecuteActionInput) -> None:
    """Mark the key as being acted on; a claim already there is one its execution never
    cleared: it died after it may have acted and before it recorded the result."""
    claimed = db.execute(
        "SELECT claimed_at FROM claimed_actions WHERE idempotency_key = ?",
        (request.idempotency_key,),
    ).fetchone()
    if claimed is not None:
        raise ApplicationError(
            f"Idempotency key {request.idempotency_key} was claimed at {claimed[0]} by an "
            "execution that stopped before recording its result (its worker died while "
            "acting): the action may or may not have happened. Not acting again; check the "
            "target system",
            type="ExecutionOutcomeUnknown",
            non_retryable=True,
        )
    db.execute(
        "INSERT INTO claimed_actions VALUES (?, ?, ?)",
        (request.idempotency_key, request.action.model_dump_json(), datetime.now(UTC).isoformat()),
    )


def _repeat(
    request: ExecuteActionInput, recorded_action: str, recorded_result: str, executed_at: str
) -> ExecutionResult:
    """The first execution's result, for a key already executed with the same action."""
    if _what_it_does(json.loads(recorded_action)) != _what_it_does(request.action.model_dump()):
        # Retries carry the same input, so this is a key reused for another action
        # (e.g. a workflow ID reused). Acting would be wrong, and so would the old result.
        raise ApplicationError(
            f"Idempotency key {request.idempotency_key} was already used at {executed_at} "
            "for a different action; refusing to act or to report that action as this one",
            type="IdempotencyKeyReused",
            non_retryable=True,
        )
    activity.logger.info(
        "Repeated execution of idempotency key %s: already executed at %s; "
        "returning that result without acting again",
        request.idempotency_key,
        executed_at,
    )
    return ExecutionResult.model_validate_json(recorded_result)


def _what_it_does(action: dict[str, Any]) -> tuple[Any, ...]:
    """The fields that say what an action does. Reasoning and the risk flag are left out,
    and so is any field a later model version adds, so that a retry served by upgraded
    workers still matches what older ones recorded."""
    return (action.get("action_type"), action.get("description"), action.get("parameters"))


def _act(request: ExecuteActionInput) -> ExecutionResult:
    """The simulated effect: a real implementation calls the chosen tool here, passing
    ``request.idempotency_key`` on to it."""
    action = request.action
    activity.logger.info(
        "Executing action %s [idempotency key %s]: %s",
        action.action_type,
        request.idempotency_key,
        action.description,
    )
    return ExecutionResult(
        idempotency_key=request.idempotency_key,
        summary=f"Simulated {action.action_type}: {action.description}",
    )
