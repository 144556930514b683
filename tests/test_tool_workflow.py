"""Tool calls through the workflow, on the time-skipping server with the real worker wiring.

The model here labels everything safe (``risky_action: false``, a harmless description):
default-deny must still send every tool that changes data to a person, show the effect
before asking, act once, and never act on data that changed since the approval.
"""

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from activities.propose_action import MAX_MALFORMED_ATTEMPTS
from benchmarks.fake_openai import ok
from constants import APPROVAL_DECISION_SIGNAL, STATE_DIR_ENV, SUBMIT_DECISION_UPDATE
from models.models import Outcome, WorkflowResult
from models.tools import ToolCall
from policy.default_deny import CHANGES_DATA_REASON
from policy.risk_policy import LARGE_AMOUNT_STAGES
from tests.helpers import STAGE_MEMBERS, TimeSkippingRuns, wait_until
from tests.record_histories import Run, decision_for, pending_request, status_of
from tests.test_tools import WRITE_CALLS
from tests.test_workflow import finish, scheduled_activities
from tools.database import DATABASE_FILE, ensure_database
from tools.seed_data import TEST_CUSTOMERS, TEST_STATUS

DE_INACTIVE = [
    {"column": "country", "op": "=", "value": "DE"},
    {"column": "status", "op": "=", "value": "inactive"},
]


def harmless(tool: str, **arguments: Any) -> dict[str, Any]:
    """A proposal from a model that calls everything safe, with this tool call."""
    return {
        "action_type": "tidy_up",
        "description": "A small, harmless tidy-up",
        "reasoning": "Nothing to worry about.",
        "risky_action": False,
        "tool_call": {"tool": tool, "arguments": arguments},
    }


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The worker runs in this process: it reads the test's own operations database."""
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    path = tmp_path / DATABASE_FILE
    ensure_database(path)
    return path


@pytest.fixture
async def runs(runs: TimeSkippingRuns, db_path: Path) -> AsyncIterator[TimeSkippingRuns]:
    async with runs.worker():
        yield runs


def dump(path: Path) -> list[str]:
    """Every row of the operations database, to show that nothing changed."""
    with closing(sqlite3.connect(path)) as db:
        return list(db.iterdump())


def count(path: Path, sql: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchone()[0]


def change(path: Path, sql: str) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(sql)


TEST_ROWS = [{"column": "status", "op": "=", "value": TEST_STATUS}]
ONLY_2001 = [{"column": "id", "op": "=", "value": "2001"}]
TEST_CUSTOMER_ROWS = f"SELECT COUNT(*) FROM customers WHERE status = '{TEST_STATUS}'"
GERMAN_INACTIVE = "SELECT COUNT(*) FROM customers WHERE country = 'DE' AND status = 'inactive'"


async def end_by_cancelling(handle: Run) -> None:
    """End a waiting run the way a person can, recorded: a terminated run can stall the
    shared time-skipping server for the tests that follow."""
    await handle.cancel()
    result = await finish(handle)
    assert result.outcome == Outcome.CANCELLED
    assert result.execution is None


async def approve(handle: Run, reviewer: str = "alice") -> None:
    request = await pending_request(handle)
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision_for(request, approved=True, reviewer=reviewer)
    )


async def test_a_tool_that_changes_data_asks_whatever_the_model_says(
    runs: TimeSkippingRuns, db_path: Path
) -> None:
    matching = count(db_path, GERMAN_INACTIVE)
    proposal = harmless("delete_records", table="customers", filters=DE_INACTIVE)
    handle = await runs.start("Tidy up the German accounts", ok(proposal))
    request = await pending_request(handle)

    assert request.risk_reasons == [CHANGES_DATA_REASON.format(tool="delete_records")]
    assert request.preview is not None
    assert request.preview.summary == (
        f"deletes {matching} of 2,020 rows in customers where country = 'DE' and "
        "status = 'inactive'; first 5 shown"
    )
    assert count(db_path, "SELECT COUNT(*) FROM customers") == 2_020  # nothing yet

    await approve(handle)
    result = await finish(handle)

    assert result.outcome == Outcome.APPROVED
    assert result.execution is not None and result.execution.simulated is False
    assert result.execution.summary.startswith(f"deleted {matching} rows from customers")
    assert count(db_path, "SELECT COUNT(*) FROM customers") == 2_020 - matching
    events = [entry.event for entry in result.audit_trail]
    assert events[:4] == [
        "action_proposed",
        "effect_previewed",
        "risk_classified",
        "approval_requested",
    ]
    # The effect came with the proposal (no preview of its own), and it executed once,
    # as an activity named after its tool.
    ran = await scheduled_activities(handle)
    assert ran == ["propose_action", "send_approval_notices", "delete_records"]


@pytest.mark.parametrize("tool_call", WRITE_CALLS.values(), ids=list(WRITE_CALLS))
async def test_no_tool_that_changes_data_runs_without_a_decision(
    runs: TimeSkippingRuns, db_path: Path, tool_call: ToolCall
) -> None:
    """Every tool that is not read-only, proposed as harmless: the run waits for a person
    with the effect in the request, and nothing in the database has changed."""
    before = dump(db_path)
    proposal = harmless(tool_call.tool, **tool_call.arguments)
    handle = await runs.start(
        f"Routine upkeep ({tool_call.tool})", ok(proposal), stage_approvers=STAGE_MEMBERS
    )
    request = await pending_request(handle)

    assert CHANGES_DATA_REASON.format(tool=tool_call.tool) in request.risk_reasons
    assert request.preview is not None and request.preview.tool == tool_call.tool
    assert dump(db_path) == before
    await end_by_cancelling(handle)


async def test_a_read_only_look_up_runs_without_asking(runs: TimeSkippingRuns) -> None:
    proposal = harmless(
        "find_records",
        table="customers",
        filters=[{"column": "country", "op": "=", "value": "JP"}],
        limit=3,
    )
    handle = await runs.start("Show three customers in Japan", ok(proposal))
    result = await finish(handle)

    assert result.outcome == Outcome.AUTO_APPROVED
    assert result.execution is not None and result.execution.tool_outcome is not None
    assert [row["country"] for row in result.execution.tool_outcome.rows] == ["JP"] * 3
    # Nobody notified: the analysis, then the look-up.
    assert await scheduled_activities(handle) == ["propose_action", "find_records"]


@pytest.mark.parametrize(
    "tool_call",
    [
        {"tool": "shell", "arguments": {"command": "git push --force origin main"}},
        {"tool": "delete_records", "arguments": {"table": "sqlite_master", "filters": []}},
    ],
    ids=["unknown-tool", "invalid-arguments"],
)
async def test_unknown_tools_and_invalid_arguments_are_never_executed(
    runs: TimeSkippingRuns, tool_call: dict[str, Any]
) -> None:
    proposal = {**harmless("x"), "tool_call": tool_call}
    request = f"Just do it ({tool_call['tool']}, {len(str(tool_call))})"
    handle = await runs.start(request, *[ok(proposal)] * MAX_MALFORMED_ATTEMPTS)
    result = await finish(handle)

    assert result.outcome == Outcome.ANALYSIS_FAILED
    assert "tool call is not valid" in result.message
    assert runs.llm_server.calls(request) == MAX_MALFORMED_ATTEMPTS
    assert await scheduled_activities(handle) == ["propose_action"]  # retried, never past it


async def test_data_changed_after_approval_is_not_executed_and_asks_again(
    runs: TimeSkippingRuns, db_path: Path
) -> None:
    proposal = harmless("delete_records", table="customers", filters=DE_INACTIVE)
    handle = await runs.start("Tidy up the German accounts [drift]", ok(proposal))
    first = await pending_request(handle)
    change(
        db_path,
        "INSERT INTO customers (name, email, country, status, created_at) VALUES "
        "('New Customer', 'new@example.com', 'DE', 'inactive', '2026-11-30')",
    )
    matching = count(db_path, GERMAN_INACTIVE)
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(first, approved=True))

    second = await wait_until(
        lambda: pending_request(handle), lambda request: request.request_id != first.request_id
    )
    assert count(db_path, GERMAN_INACTIVE) == matching  # the approved effect never ran
    assert second.preview is not None and first.preview is not None
    assert second.preview.fingerprint != first.preview.fingerprint
    assert second.preview.affected == first.preview.affected + 1
    status = await status_of(handle)
    assert [entry.event for entry in status.audit_trail].count("preview_drifted") == 1
    # The new request waits undecided: the earlier round's approval does not show as its own.
    assert status.approval_request == second
    assert status.decision is None and status.votes == []

    await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision_for(second, approved=True, reviewer="bob")
    )
    result = await finish(handle)
    assert result.outcome == Outcome.APPROVED
    assert count(db_path, GERMAN_INACTIVE) == 0
    ran = await scheduled_activities(handle)
    assert ran.count("delete_records") == 2
    # The fresh effect asked about is the one the execution found: no preview of its own.
    assert "preview_tool_call" not in ran


async def test_an_effect_that_became_impossible_ends_without_acting(
    runs: TimeSkippingRuns, db_path: Path
) -> None:
    with closing(sqlite3.connect(db_path)) as db:
        (invoice,) = db.execute("SELECT MIN(id) FROM invoices WHERE status = 'paid'").fetchone()
    proposal = harmless("pay_invoice", invoice_id=invoice, from_account="operating")
    handle = await runs.start("Settle that one invoice", ok(proposal))
    request = await pending_request(handle)
    assert request.preview is not None and not request.preview.feasible
    await approve(handle)
    result: WorkflowResult = await finish(handle)
    assert result.outcome == Outcome.EXECUTION_FAILED
    assert "cannot pay" in result.message
    assert count(db_path, "SELECT COUNT(*) FROM payments") == 0


async def test_a_large_amount_in_the_preview_is_staged(runs: TimeSkippingRuns) -> None:
    """No amount in the request's words: the preview's amount decides the stages."""
    proposal = harmless(
        "pay_vendor", vendor="ACME", amount_cents=2_500_000, from_account="operating", memo=""
    )
    handle = await runs.start("Settle up with ACME", ok(proposal), stage_approvers=STAGE_MEMBERS)
    status = await wait_until(lambda: status_of(handle), lambda s: s.current_stage is not None)
    assert status.current_stage is not None
    assert status.current_stage.stage == LARGE_AMOUNT_STAGES[0]
    assert status.approval_request is not None and status.approval_request.preview is not None
    await end_by_cancelling(handle)


async def test_narrowing_a_deletion_to_one_row_executes_the_one_row_call(
    runs: TimeSkippingRuns, db_path: Path
) -> None:
    """The issue's scenario: a reviewer narrowed "delete the test customers" to customer
    2001 alone, and all 20 were deleted while the trail recorded the narrowed words. Now
    the edit is the call: it is previewed and asked about again, and it is what runs."""
    proposal = harmless("delete_records", table="customers", filters=TEST_ROWS)
    handle = await runs.start("Delete the test customers [narrowed]", ok(proposal))
    first = await pending_request(handle)
    assert first.preview is not None and first.preview.affected == TEST_CUSTOMERS
    narrowed = first.proposed_action.with_arguments({"table": "customers", "filters": ONLY_2001})
    dana = decision_for(first, approved=True, reviewer="dana", amended_action=narrowed)
    await handle.signal(APPROVAL_DECISION_SIGNAL, dana)  # a signal is judged as an update is
    second = await wait_until(
        lambda: pending_request(handle), lambda request: request.request_id != first.request_id
    )
    assert second.proposed_action == narrowed
    assert second.preview is not None and second.preview.affected == 1
    assert count(db_path, TEST_CUSTOMER_ROWS) == TEST_CUSTOMERS  # nothing yet
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision_for(second, approved=True, reviewer="bob")
    )
    result = await finish(handle)
    assert result.outcome == Outcome.APPROVED
    assert count(db_path, TEST_CUSTOMER_ROWS) == TEST_CUSTOMERS - 1
    assert count(db_path, "SELECT COUNT(*) FROM customers WHERE id = 2001") == 0
    (amendment,) = [e.detail for e in result.audit_trail if e.event == "action_amended"]
    before, after = amendment.split(" -> ")
    assert f'"value":"{TEST_STATUS}"' in before and '"value":"2001"' in after
    assert result.execution is not None and "where id = '2001'" in result.execution.summary


async def test_an_edited_call_its_tool_refuses_is_recorded_and_never_runs(
    runs: TimeSkippingRuns, db_path: Path
) -> None:
    """The tool's schema judges an edited call at its preview: one that does not fit is
    recorded as such, asked about with no effect to approve, and cannot execute."""
    proposal = harmless("delete_records", table="customers", filters=TEST_ROWS)
    handle = await runs.start("Delete the test customers [edited badly]", ok(proposal))
    first = await pending_request(handle)
    unfit = first.proposed_action.with_arguments({"table": "customers", "filters": "id 2001"})
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE,
        decision_for(first, approved=True, reviewer="dana", amended_action=unfit),
    )
    second = await wait_until(
        lambda: pending_request(handle), lambda request: request.request_id != first.request_id
    )
    assert second.preview is None
    trail = (await status_of(handle)).audit_trail
    (failed,) = [entry.detail for entry in trail if entry.event == "preview_failed"]
    assert "invalid arguments for delete_records: filters" in failed
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision_for(second, approved=True, reviewer="bob")
    )
    result = await finish(handle)
    assert result.outcome == Outcome.EXECUTION_FAILED
    assert count(db_path, TEST_CUSTOMER_ROWS) == TEST_CUSTOMERS


async def test_an_amended_tool_call_is_previewed_and_asked_again(
    runs: TimeSkippingRuns, db_path: Path
) -> None:
    proposal = harmless("delete_records", table="customers", filters=DE_INACTIVE)
    handle = await runs.start("Tidy up the German accounts [amended]", ok(proposal))
    first = await pending_request(handle)
    amended = first.proposed_action.with_arguments(
        {"table": "customers", "filters": DE_INACTIVE[1:]}
    )
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision_for(first, approved=True, amended_action=amended)
    )
    second = await wait_until(
        lambda: pending_request(handle), lambda request: request.request_id != first.request_id
    )
    assert second.preview is not None and first.preview is not None
    assert second.preview.affected > first.preview.affected  # every inactive customer
    assert count(db_path, "SELECT COUNT(*) FROM customers") == 2_020
    waiting = await status_of(handle)  # the amended call waits for a decision of its own
    assert waiting.decision is None and waiting.votes == []
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision_for(second, approved=True, reviewer="bob")
    )
    result = await finish(handle)
    assert result.outcome == Outcome.APPROVED
    assert count(db_path, "SELECT COUNT(*) FROM customers WHERE status = 'inactive'") == 0
    # Only the amended call needed a preview of its own; the first came with the proposal.
    assert (await scheduled_activities(handle)).count("preview_tool_call") == 1
