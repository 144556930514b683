"""The execute activity. The action is simulated: it is logged, and nothing is changed.

What is real is the idempotency: the simulation honours ``idempotency_key`` the way a real
target system must. A small SQLite ledger (``HITL_STATE_DIR``, default ``.hitl/`` in the
project) records each executed key with its result, in the same transaction as the
(simulated) effect. A second execution with the same key, whether a Temporal retry after a
lost reply, a second worker, or a worker restarted since, does not act again: it returns the
first result and logs the repeat. The key is derived from the workflow and request IDs, so
every retry of one approved action carries the same key.

A real action passes the key to the system it changes (an ``Idempotency-Key`` header, a
unique constraint, a dedup table written in the same transaction as the change); a ledger
beside the call, like this one, cannot make a remote effect and its record atomic.
"""

import asyncio
import json
import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from constants import STATE_DIR_ENV
from models.models import ExecuteActionInput, ExecutionResult

DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / ".hitl"
LEDGER_FILE = "executed_actions.sqlite3"
HEARTBEAT_EVERY_SECONDS = 2.0  # well inside the workflow's 10 s heartbeat timeout
LOCK_WAIT_SECONDS = 30.0  # how long an execution waits for another one holding the ledger

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executed_actions (
    idempotency_key TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    result TEXT NOT NULL,
    executed_at TEXT NOT NULL
)
"""


def ledger_path() -> Path:
    """The ledger file, read from the environment at each call so tests can point it away."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR) / LEDGER_FILE


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
    path.parent.mkdir(parents=True, exist_ok=True)
    action_json = request.action.model_dump_json()
    # isolation_level=None: we open the transaction ourselves. BEGIN IMMEDIATE takes the
    # write lock before reading, so two executions of one key (threads, workers, hosts
    # sharing the file) cannot both see it as new.
    # Nothing runs before BEGIN IMMEDIATE: a connection that already holds a read lock when
    # it asks for the write lock can be refused at once ("database is locked") instead of
    # waiting its turn, so even the table is created inside the transaction.
    with closing(sqlite3.connect(path, timeout=LOCK_WAIT_SECONDS, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(_SCHEMA)
            row = db.execute(
                "SELECT action, result, executed_at FROM executed_actions"
                " WHERE idempotency_key = ?",
                (request.idempotency_key,),
            ).fetchone()
            if row is None:
                result = _act(request)
                db.execute(
                    "INSERT INTO executed_actions VALUES (?, ?, ?, ?)",
                    (
                        request.idempotency_key,
                        action_json,
                        result.model_dump_json(),
                        datetime.now(UTC).isoformat(),
                    ),
                )
                db.execute("COMMIT")
                return result
        finally:
            if db.in_transaction:  # a repeat (nothing to write), or the act failed
                db.execute("ROLLBACK")
    recorded_action, recorded_result, executed_at = row
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
