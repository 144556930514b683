"""Tools end to end: the scripts and the worker as real processes, the offline analyser's
tool calls, and the operations database the worker changes (under the session's
``HITL_STATE_DIR``, which the worker process inherits)."""

import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from activities.offline_analysis import NO_TOOL_FITS
from benchmarks.fake_openai import FakeOpenAIServer
from constants import STATE_DIR_ENV
from tests.e2e import (
    WorkerProcess,
    address_of,
    approval_notice,
    notices_for,
    send_approval,
    started_run,
    unique,
    worker_process,
)
from tests.helpers import script_env
from tools.database import DATABASE_FILE, database_path, ensure_database

# The cookbook's own command (README, demo, ../shared/seeds/hitl-signals-sample.md).
COOKBOOK_REQUEST = "Delete all test data from the production database"


@contextlib.asynccontextmanager
async def offline_worker(
    dev_server: WorkflowEnvironment, llm_url: str, folder: Path
) -> AsyncIterator[WorkerProcess]:
    """``python -m worker --offline`` (the rule-based analyser, no model), with its own
    operations database in ``folder``: what it deletes no other test counts on."""
    env = script_env(address_of(dev_server), llm_url, f"offline-{uuid.uuid4().hex[:12]}")
    env[STATE_DIR_ENV] = str(folder / "state")
    async with worker_process(env, folder / "worker.log", "--offline") as worker:
        yield worker


def count(path: Path, query: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(query).fetchone()[0]


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
    # The answer itself, not only its count.
    assert "Answer:\n  id         name               balance_cents\n" in done.output
    assert "  operating  Operating account  " in done.output
    assert done.returncode == 0, done.output


async def test_the_cookbook_request_asks_shows_the_test_rows_and_deletes_them_once_approved(
    dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    """The faithful path: the README's first command still asks a person and, approved,
    acts; now through ``delete_records`` on the customers seeded as test data, previewed."""
    test_rows = "SELECT COUNT(*) FROM customers WHERE status = 'test'"
    path = tmp_path / "state" / DATABASE_FILE
    async with (
        offline_worker(dev_server, llm_server.url, tmp_path) as worker,
        started_run(worker, dev_server, tmp_path, COOKBOOK_REQUEST) as run,
    ):
        notice = await approval_notice(worker, run)
        assert count(path, test_rows) == 20  # asked before acting
        sent = await send_approval(worker, run, notice.request_id, "approve", "Only test rows")
        done = await run.finish()

    assert "Effect:      deletes 20 of 2,020 rows in customers where status = 'test'" in notice.text
    assert "targets production" in notice.text
    assert sent.returncode == 0, sent.output
    assert "Result: approved - Approved by" in done.output
    assert "executed: deleted 20 rows from customers" in done.output
    assert done.returncode == 0, done.output
    assert count(path, test_rows) == 0
    assert count(path, "SELECT COUNT(*) FROM customers") == 2_000


async def test_a_request_no_offline_rule_maps_to_a_tool_ends_analysis_failed_at_once(
    dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    """Only a tool can act, and the rules are deterministic: the run ends
    ``analysis_failed`` after one attempt, saying which requests the analyser understands,
    and ``start_workflow`` exits 1. Nobody is asked; nothing executes."""
    request = unique("Force-push main to fix the broken build")
    async with offline_worker(dev_server, llm_server.url, tmp_path) as worker:
        async with started_run(worker, dev_server, tmp_path, request) as run:
            done = await run.finish()
        history = await dev_server.client.get_workflow_handle(run.workflow_id).fetch_history()

    assert done.returncode == 1, done.output
    assert "Traceback" not in done.output
    assert "Traceback" not in worker.output()  # an outcome of the request, not a fault
    assert f"Result: analysis_failed - Analysis failed: {NO_TOOL_FITS}\n" in done.output
    assert "executed:" not in done.output
    assert notices_for(worker, run.workflow_id) == 0
    attempts = [
        (event.activity_task_scheduled_event_attributes.activity_type.name)
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    retries = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
    ]
    assert attempts == ["propose_action"] and retries == [1]
