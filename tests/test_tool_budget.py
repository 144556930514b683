"""No tool call can hang or starve the agent: a call past its time or size budget, or whose
activity is cancelled, is interrupted and rolled back, never left running; and a long call
holding the write lock does not block another run's preview.

Budgets here are short for a query that never ends, or long where the call must be ended
by something else (a cancel): the tests assert why a call ended, never how fast."""

import asyncio
import threading
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.tool_thread as tool_thread
from activities.execute_tool import execute_tool_call
from activities.preview_tool_call import preview_tool_call
from constants import STATE_DIR_ENV
from models.tools import ExecuteToolInput, ToolStatus
from tests.helpers import wait_until
from tests.test_tools import (
    WRITE_CALLS,
    approve_and_run,
    balance,
    call,
    query,
    seeded_calls,
    snapshot,
)
from tools.budget import CANCELLED, CallBudget, CallGuard, ToolCallStopped
from tools.database import DATABASE_FILE, ensure_database
from tools.execution import execute_call, preview_call

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
ENDLESS_SELECT = f"{ENDLESS} SELECT max(x) FROM c"
# A write: it holds the write lock while it loops.
ENDLESS_UPDATE = f"UPDATE users SET active = active WHERE id IN ({ENDLESS} SELECT x FROM c)"
SHORT = CallBudget(seconds=1)  # for queries that never end: only the reason is asserted
FOREVER = CallBudget(seconds=600)  # for calls that something else must end


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    path = tmp_path / DATABASE_FILE
    ensure_database(path)
    return path


def unapproved(statement: str, key: str = "hostile") -> ExecuteToolInput:
    """An execution request whose fingerprint matches nothing: the call is applied (and
    runs as long as it runs) before the fingerprint is compared."""
    return ExecuteToolInput(
        idempotency_key=key, call=call("run_sql", statement=statement), approved_fingerprint="x"
    )


def test_a_recursive_query_in_a_preview_ends_with_its_budget(db_path: Path) -> None:
    with pytest.raises(ToolCallStopped, match="ran past its 1 s budget"):
        preview_call(db_path, call("run_sql", statement=ENDLESS_SELECT), CallGuard(SHORT))


def test_a_recursive_write_at_execution_ends_with_its_budget_and_leaves_nothing(
    db_path: Path,
) -> None:
    before = snapshot(db_path)
    with pytest.raises(ToolCallStopped, match="ran past its 1 s budget"):
        execute_call(db_path, unapproved(ENDLESS_UPDATE), CallGuard(SHORT))
    assert snapshot(db_path) == before
    # The write lock was given back: the next approved call acts.
    assert approve_and_run(db_path, WRITE_CALLS["transfer_funds"]).status is ToolStatus.EXECUTED


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT length(zeroblob(900000000))",
        "SELECT length(hex(zeroblob(50000000)))",
        "UPDATE users SET email = hex(zeroblob(600000)) WHERE id = 1",
    ],
)
def test_a_huge_value_ends_the_call_with_the_size_limit(db_path: Path, statement: str) -> None:
    with pytest.raises(ToolCallStopped, match="past the 1,000,000-byte limit"):
        preview_call(db_path, call("run_sql", statement=statement))


async def test_a_long_call_holding_the_write_lock_does_not_block_another_runs_preview(
    db_path: Path,
) -> None:
    """Before: the other preview waited 30 s for the lock, then failed 'database is locked'."""
    guard = CallGuard(FOREVER)
    ended: list[BaseException] = []

    def hostile() -> None:
        try:
            execute_call(db_path, unapproved(ENDLESS_UPDATE), guard)
        except BaseException as err:
            ended.append(err)

    thread = threading.Thread(target=hostile, daemon=True)
    thread.start()
    try:

        async def running() -> bool:
            return guard.running.is_set() or not thread.is_alive()

        await wait_until(running, bool)
        assert thread.is_alive(), f"the hostile call ended early: {ended}"
        calls = seeded_calls(db_path)
        previews = [
            await asyncio.to_thread(preview_call, db_path, calls[tool])
            for tool in ("pay_invoice", "delete_records", "send_email")
        ]
        assert all(preview.feasible for preview in previews)
    finally:
        guard.cancel()
        await asyncio.to_thread(thread.join, 60)
    assert not thread.is_alive()
    assert [type(err) for err in ended] == [ToolCallStopped]
    assert str(ended[0]) == CANCELLED


class _RecordedGuards:
    """Stands in for CallGuard in the activities, to reach the guard of the running call."""

    def __init__(self, budget: CallBudget) -> None:
        self.budget = budget
        self.made: list[CallGuard] = []

    def __call__(self) -> CallGuard:
        guard = CallGuard(self.budget)
        self.made.append(guard)
        return guard


async def test_cancelling_the_activity_interrupts_the_call_and_frees_the_database(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the activity was cancelled but its thread went on looping, holding the lock."""
    guards = _RecordedGuards(FOREVER)
    monkeypatch.setattr(tool_thread, "CallGuard", guards)
    env = ActivityEnvironment()
    before = snapshot(db_path)
    execution = asyncio.create_task(env.run(execute_tool_call, unapproved(ENDLESS_UPDATE)))

    async def running() -> bool:
        return (bool(guards.made) and guards.made[0].running.is_set()) or execution.done()

    await wait_until(running, bool)
    assert not execution.done(), execution
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await execution
    # The activity ended only once its thread had stopped: the lock is free at once.
    assert guards.made[0].reason == CANCELLED
    assert snapshot(db_path) == before
    assert approve_and_run(db_path, WRITE_CALLS["transfer_funds"]).status is ToolStatus.EXECUTED
    assert balance(db_path, "reserve") == 27_500_000


@pytest.mark.parametrize(
    ("activity", "argument"),
    [
        (preview_tool_call, call("run_sql", statement=ENDLESS_SELECT)),
        (execute_tool_call, unapproved(ENDLESS_UPDATE)),
    ],
)
async def test_a_call_stopped_by_its_budget_fails_without_retries(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, activity: object, argument: object
) -> None:
    monkeypatch.setattr(tool_thread, "CallGuard", _RecordedGuards(SHORT))
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(activity, argument)  # type: ignore[arg-type]
    assert failed.value.type == "ToolCallStopped"
    assert failed.value.non_retryable
    assert "ran past its 1 s budget" in str(failed.value)
    assert query(db_path, "SELECT COUNT(*) FROM tool_executions") == [(0,)]
