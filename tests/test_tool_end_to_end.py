"""Tools end to end: the scripts and the worker as real processes, the offline analyser's
tool calls, and the operations database the worker changes (under the session's
``HITL_STATE_DIR``, which the worker process inherits)."""

import sqlite3
from contextlib import closing
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.e2e import WorkerProcess, approval_notice, send_approval, started_run, unique
from tools.database import database_path, ensure_database


def german_inactive() -> int:
    with closing(sqlite3.connect(database_path())) as db:
        query = "SELECT COUNT(*) FROM customers WHERE country = 'DE' AND status = 'inactive'"
        return db.execute(query).fetchone()[0]


async def test_an_approved_tool_call_shows_its_effect_then_acts_once(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    ensure_database(database_path())
    matching = german_inactive()
    assert matching > 0
    async with started_run(
        worker, dev_server, tmp_path, unique("Delete inactive customers in Germany")
    ) as run:
        notice = await approval_notice(worker, run)
        assert german_inactive() == matching  # asked before acting
        sent = await send_approval(worker, run, notice.request_id, "approve", "Checked the list")
        done = await run.finish()

    assert "Effect:      deletes" in notice.text
    assert f"deletes {matching} of" in notice.text
    assert "delete_records changes data: only read-only tools run without a person" in notice.text
    assert sent.returncode == 0, sent.output
    assert f"executed: deleted {matching} rows from customers" in done.output
    assert done.returncode == 0, done.output
    assert german_inactive() == 0


async def test_a_read_only_look_up_runs_unasked(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    request = unique("What are the account balances?")
    async with started_run(worker, dev_server, tmp_path, request) as run:
        done = await run.finish()
    assert "Result: auto_approved" in done.output
    assert "executed: reads the balances of 3 accounts; changes nothing" in done.output
    assert done.returncode == 0, done.output
