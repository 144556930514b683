"""A worker killed in the middle of a tool's transaction: the effect is already applied
inside it, the key not yet recorded, nothing committed. SQLite rolls it back; the server
notices the dead worker at the heartbeat timeout; a new worker acts, once.

The first worker is this module run as a worker (see the end of the file): its tool
execution applies the effect, says so, and hangs before recording the key.
"""

import asyncio
import sqlite3
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, closing
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

import tools.execution as execution
from benchmarks.fake_openai import FakeOpenAIServer
from constants import SUBMIT_DECISION_UPDATE
from models.models import Outcome
from tests.e2e import address_of
from tests.helpers import script_env, wait_for_output
from tests.test_fault_tolerance import (
    EXECUTE_HEARTBEAT_TIMEOUT_SECONDS,
    approval,
    start_risky_run,
    start_worker,
    wait_until_waiting,
)
from tools.database import database_path, ensure_database

HELD = "tool effect applied, key not recorded: holding until this worker is killed"
ITALIAN_INACTIVE = "SELECT COUNT(*) FROM customers WHERE country = 'IT' AND status = 'inactive'"


def count(sql: str) -> int:
    with closing(sqlite3.connect(database_path())) as db:
        return db.execute(sql).fetchone()[0]


@pytest.mark.timeout(EXECUTE_HEARTBEAT_TIMEOUT_SECONDS + 120)
async def test_worker_killed_inside_the_tool_transaction_acts_once_on_a_new_worker(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    ensure_database(database_path())
    matching = count(ITALIAN_INACTIVE)
    customers_before = count("SELECT COUNT(*) FROM customers")
    env = script_env(address_of(dev_server), llm_server.url, task_queue)
    text = f"Delete inactive customers in Italy [{workflow_id}]"
    async with AsyncExitStack() as stack:
        first = await start_worker(
            stack, env, tmp_path / "worker-1.log", module="tests.test_tool_fault_tolerance"
        )
        handle = await start_risky_run(dev_server.client, workflow_id, task_queue, text)
        status = await wait_until_waiting(handle)
        assert status.approval_request is not None and status.approval_request.preview
        await handle.execute_update(SUBMIT_DECISION_UPDATE, approval(status, "frank"))
        await wait_for_output(first.log, HELD)
        first.crash()
        crashed_at = time.monotonic()
        assert count(ITALIAN_INACTIVE) == matching, "an uncommitted effect must not show"
        await start_worker(stack, env, tmp_path / "worker-2.log")
        result = await asyncio.wait_for(
            handle.result(), timeout=EXECUTE_HEARTBEAT_TIMEOUT_SECONDS + 60
        )
        record_property(
            "measured", f"kill -> executed and completed: {time.monotonic() - crashed_at:.1f}s"
        )

    assert result.outcome == Outcome.APPROVED, result.message
    assert result.execution is not None
    assert result.execution.summary.startswith(f"deleted {matching} rows from customers")
    assert count(ITALIAN_INACTIVE) == 0
    assert count("SELECT COUNT(*) FROM customers") == customers_before - matching
    with closing(sqlite3.connect(database_path())) as db:
        keys = db.execute(
            "SELECT COUNT(*) FROM tool_executions WHERE idempotency_key = ?",
            (result.execution.idempotency_key,),
        ).fetchone()[0]
    assert keys == 1


def _held_record(*args: Any) -> None:
    """Stands in for recording the key in this module's worker: the effect is applied in
    the open transaction; say so, and hang (the activity keeps heartbeating from its event
    loop, as a live worker would, until the process is killed)."""
    import logging

    logging.getLogger(__name__).warning(HELD)
    time.sleep(3600)


if __name__ == "__main__":
    import worker
    from console_exit import exit_process

    execution._record = _held_record
    exit_process(worker.main())
