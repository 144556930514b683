"""The workflow's main paths on the time-skipping server, through the real worker wiring.

The LLM is the local OpenAI-compatible server, scripted per test with ``runs.start``;
each test uses its own request text, so scripts never collide. Approval deadlines are
skipped by the test server, so a 300-second timeout takes well under a second.
"""

import time
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from activities.propose_action import MAX_MALFORMED_ATTEMPTS
from benchmarks.fake_openai import fallback_tool_call, http_error, ok
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVE_SIGNAL,
    OPENAI_API_KEY_ENV,
    SHORTHAND_REVIEWER,
    SUBMIT_DECISION_UPDATE,
)
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    Outcome,
    ProposedAction,
    WorkflowResult,
    WorkflowState,
)
from policy.default_deny import CHANGES_DATA_REASON
from policy.risk_policy import FORCED_REASON, LLM_FLAGGED_REASON
from tests.helpers import TimeSkippingRuns, activities_run, wait_until
from tests.record_histories import (
    Run,
    decision_for,
    pending_request,
    status_of,
    wait_for_refusals,
)
from tools.database import connect, database_path

DESTRUCTIVE = "destructive or irreversible operation"
PRODUCTION = "targets production"
# The analysis previews the tool call's effect with the proposal, and the risk is assessed
# with that effect known, before anyone is asked.
REQUESTED = ["action_proposed", "effect_previewed", "risk_classified", "approval_requested"]
# What a run that asked and executed ran: one analysis (its preview included), the opening
# notice (a local activity), the execution; nothing else.
ASKED_THEN_EXECUTED = ["propose_action", "send_approval_notices", "send_email"]
# Only a tool can act. This one changes data, so default-deny asks, and its preview reads
# nothing another test changes: an e-mail to one address (recorded, never sent).
EMAIL = fallback_tool_call("Stale staging orders")
EMAIL_ASKS = CHANGES_DATA_REASON.format(tool="send_email")


def proposal(action_type: str, description: str, *, risky: bool) -> dict[str, Any]:
    return {
        "action_type": action_type,
        "description": description,
        "reasoning": "It is what the user asked for.",
        "risky_action": risky,
        "tool_call": EMAIL,
    }


# Only a read-only tool runs without a person (default-deny): the safe proposal reads.
SAFE = proposal("summarise_document", "Summarise the onboarding guide in five bullets", risky=False)
SAFE["tool_call"] = {
    "tool": "summarize_records",
    "arguments": {"table": "customers", "filters": [], "group_by": "status"},
}
RISKY = proposal("delete_records", "Delete the stale rows of the staging orders table", risky=True)


@pytest.fixture
async def runs(runs: TimeSkippingRuns) -> AsyncIterator[TimeSkippingRuns]:
    """Every test here runs with the real worker serving its queue from start to end."""
    async with runs.worker():
        yield runs


async def awaiting_decision(runs: TimeSkippingRuns, request: str) -> tuple[Run, ApprovalRequest]:
    """Start a run the LLM calls risky, and wait until it asks for a decision."""
    handle = await runs.start(request, ok(RISKY))
    return handle, await pending_request(handle)


async def finish(handle: Run) -> WorkflowResult:
    """The run's result, checked against what the status query says once it has finished."""
    result = await handle.result()
    status = await status_of(handle)
    assert status.state == WorkflowState.COMPLETED
    assert status.result == result
    assert status.audit_trail == result.audit_trail
    return result


async def assert_audit(handle: Run, result: WorkflowResult, expected: list[str]) -> None:
    """The trail lists exactly these events, in order, stamped with workflow time."""
    assert [entry.event for entry in result.audit_trail] == expected
    stamps = [entry.at for entry in result.audit_trail]
    assert stamps == sorted(stamps)
    run = await handle.describe()
    assert run.close_time is not None
    assert all(run.start_time <= at <= run.close_time for at in stamps), (run, stamps)


async def scheduled_activities(handle: Run) -> list[str]:
    """Activity types the run scheduled, local ones included, from its history: what really
    ran, not what it says."""
    return activities_run(await handle.fetch_history())


async def test_safe_request_is_auto_approved_and_executed_without_asking(
    runs: TimeSkippingRuns,
) -> None:
    request = "Summarise the onboarding guide [auto-approved]"
    handle = await runs.start(request, ok(SAFE))
    result = await finish(handle)
    assert result.outcome == Outcome.AUTO_APPROVED
    assert result.risk is not None and result.risk.reasons == []
    assert result.request_id is None and result.decision is None
    assert (await status_of(handle)).approval_request is None
    assert result.execution is not None
    run_id = handle.first_execution_run_id
    assert result.execution.idempotency_key == f"{runs.workflow_id}/auto/{run_id}"
    assert result.execution.summary == "summarises customers (every row) by status; changes nothing"
    assert result.execution.tool_outcome is not None
    # Every customer counted: as many as the operations database holds now (tests that share
    # it in this process may have deleted some of the 2,000 it was seeded with).
    with closing(connect(database_path())) as db:
        customers = db.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    assert sum(row["count"] for row in result.execution.tool_outcome.rows) == customers  # type: ignore[misc]
    # Nobody notified, nothing previewed apart from the analysis: it only ran the call.
    assert await scheduled_activities(handle) == ["propose_action", "summarize_records"]
    await assert_audit(
        handle, result, ["action_proposed", "effect_previewed", "risk_classified", "executed"]
    )


async def test_reusing_a_workflow_id_gives_the_next_auto_approved_run_its_own_key(
    runs: TimeSkippingRuns,
) -> None:
    """A closed run's ID may be used again: its action must not be taken for a retry of
    the earlier one, as it would be if the key were only "<workflow id>/auto"."""
    request = "Summarise the onboarding guide [reused workflow id]"
    first = await finish(await runs.start(request, ok(SAFE)))
    second = await finish(await runs.start(request, ok(SAFE)))
    assert first.execution is not None and second.execution is not None
    assert first.execution.idempotency_key != second.execution.idempotency_key


async def test_risky_request_approved_by_update_executes_once_with_idempotency_key(
    runs: TimeSkippingRuns,
) -> None:
    handle, pending = await awaiting_decision(
        runs, "Delete the stale staging orders [approved by update]"
    )
    decision = decision_for(pending, approved=True, reviewer="alice", notes="Go ahead")
    recorded = await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision, result_type=ApprovalDecision
    )
    assert recorded.request_id == pending.request_id
    assert (recorded.approved, recorded.reviewer, recorded.reviewer_notes) == (
        True,
        "alice",
        "Go ahead",
    )
    assert recorded.decided_at is not None  # stamped by the workflow when omitted
    result = await finish(handle)
    assert result.outcome == Outcome.APPROVED
    assert result.decision == recorded
    assert result.request_id == pending.request_id
    assert result.execution is not None
    assert result.execution.idempotency_key == f"{runs.workflow_id}/{pending.request_id}"
    assert "alice" in result.message
    assert await scheduled_activities(handle) == ASKED_THEN_EXECUTED  # executed once
    await assert_audit(handle, result, [*REQUESTED, "decision_approved", "executed"])


async def test_approval_decision_signal_approves_the_pending_request(
    runs: TimeSkippingRuns,
) -> None:
    handle, pending = await awaiting_decision(
        runs, "Delete the stale staging orders [approved by signal]"
    )
    await handle.signal(
        APPROVAL_DECISION_SIGNAL, decision_for(pending, approved=True, reviewer="bea")
    )
    result = await finish(handle)
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "bea"
    assert result.execution is not None


async def test_rejection_records_notes_and_reviewer_and_executes_nothing(
    runs: TimeSkippingRuns,
) -> None:
    handle, pending = await awaiting_decision(runs, "Delete the stale staging orders [rejected]")
    decision = decision_for(pending, approved=False, reviewer="carl", notes="Month-end freeze")
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)
    result = await finish(handle)
    assert result.outcome == Outcome.REJECTED
    assert "Month-end freeze" in result.message and "carl" in result.message
    assert result.execution is None
    assert "send_email" not in await scheduled_activities(handle)
    await assert_audit(handle, result, [*REQUESTED, "decision_rejected"])


async def test_no_decision_times_out_on_a_durable_timer_without_waiting_for_real(
    runs: TimeSkippingRuns,
) -> None:
    request = "Delete the stale staging orders [timed out]"
    began = time.monotonic()
    handle = await runs.start(request, ok(RISKY), approval_timeout_seconds=300)
    result = await finish(handle)
    assert time.monotonic() - began < 60  # the server skipped the 300 seconds
    assert result.outcome == Outcome.TIMED_OUT
    assert "300s" in result.message
    assert result.decision is None and result.execution is None
    assert "send_email" not in await scheduled_activities(handle)
    await assert_audit(handle, result, [*REQUESTED, "timed_out"])
    asked, gave_up = result.audit_trail[3].at, result.audit_trail[4].at
    assert gave_up - asked >= timedelta(seconds=300)


def task_start_times_after(history: WorkflowHistory, event_id: int) -> list[datetime]:
    """Start times of the workflow task that handled event ``event_id`` and of the tasks
    that followed it with nothing between (completed, then at once another scheduled)."""
    events = [event for event in history.events if event.event_id > event_id]
    starts: list[datetime] = []
    for position, event in enumerate(events):
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            starts.append(event.event_time.ToDatetime(tzinfo=UTC))
            following = [e.event_type for e in events[position + 1 : position + 3]]
            if following != [
                EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
                EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            ]:
                break
    return starts


async def test_decision_for_another_request_is_refused_then_the_right_one_applies(
    runs: TimeSkippingRuns,
) -> None:
    """The refusal is recorded at the time of the workflow task that handled the signal.

    The status query polled meanwhile may reach the test server while that task runs; the
    test server then writes an empty workflow task for it into history (Temporal's server
    does not). When the closed run is replayed to answer the last query, the SDK (core's
    v1 task chunking, temporalio 1.35) folds a task that issued no commands into an empty
    task right after it and replays both as one activation, with the later task's time. So
    the replayed refusal may carry that later time; everything else must be identical.
    """
    handle, pending = await awaiting_decision(
        runs, "Delete the stale staging orders [wrong request id]"
    )
    wrong = decision_for(pending, approved=False).model_copy(update={"request_id": "stale-id"})
    await handle.signal(APPROVAL_DECISION_SIGNAL, wrong)
    status = await wait_for_refusals(handle, 1)
    assert status.state == WorkflowState.AWAITING_APPROVAL and status.decision is None
    assert "'stale-id' does not match" in status.audit_trail[-1].detail
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True))
    result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    await assert_audit(
        handle, result, [*REQUESTED, "decision_refused", "decision_approved", "executed"]
    )

    history = await handle.fetch_history()
    signalled = next(
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    )
    starts = task_start_times_after(history, signalled)
    refused = len(REQUESTED)
    # The task that handled it, live: workflow.now() is that task's start time, carried as a
    # float by the SDK, so it may round a microsecond below the history's exact time.
    live = result.audit_trail[refused].at
    assert abs(live - starts[0]) <= timedelta(microseconds=1)
    replayed = await status_of(handle)  # the closed run is replayed to answer this
    assert replayed.state == WorkflowState.COMPLETED
    # The same time, or (folded) that of a later task of the chain; core may also add a
    # microsecond there, so the bound is the chain, not one of its start times.
    one_microsecond = timedelta(microseconds=1)
    assert (
        starts[0] - one_microsecond
        <= replayed.audit_trail[refused].at
        <= starts[-1] + timedelta(milliseconds=1)
    )
    same_times = replayed.audit_trail[refused].model_copy(
        update={"at": result.audit_trail[refused].at}
    )
    assert [*replayed.audit_trail[:refused], same_times, *replayed.audit_trail[refused + 1 :]] == (
        result.audit_trail
    )
    assert replayed.result is not None
    assert replayed.result.model_copy(update={"audit_trail": result.audit_trail}) == result


@pytest.mark.parametrize(
    ("approved", "outcome"), [(True, Outcome.APPROVED), (False, Outcome.REJECTED)]
)
async def test_approve_shorthand_decides_the_pending_request_as_temporal_cli(
    runs: TimeSkippingRuns,
    approved: bool,
    outcome: Outcome,
) -> None:
    handle, pending = await awaiting_decision(
        runs, f"Delete the stale staging orders [shorthand {approved}]"
    )
    await handle.signal(APPROVE_SIGNAL, approved)
    result = await finish(handle)
    assert result.outcome == outcome
    assert result.decision is not None
    assert result.decision.request_id == pending.request_id
    assert result.decision.reviewer == SHORTHAND_REVIEWER
    assert (result.execution is not None) == approved


async def test_status_query_shows_the_approval_request_then_the_result(
    runs: TimeSkippingRuns,
) -> None:
    request = "Delete the stale staging orders [status query]"
    handle = await runs.start(request, ok(RISKY), approval_timeout_seconds=600)
    await pending_request(handle)
    waiting = await status_of(handle)
    assert waiting.state == WorkflowState.AWAITING_APPROVAL
    pending = waiting.approval_request
    assert pending is not None
    assert (pending.workflow_id, pending.user_request) == (runs.workflow_id, request)
    assert pending.proposed_action == ProposedAction.model_validate(RISKY)
    assert pending.risk_reasons == [DESTRUCTIVE, LLM_FLAGGED_REASON, EMAIL_ASKS]
    assert pending.deadline - pending.requested_at == timedelta(seconds=600)
    assert (waiting.decision, waiting.result) == (None, None)
    assert [entry.event for entry in waiting.audit_trail] == REQUESTED

    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True))
    result = await handle.result()
    done = await status_of(handle)
    assert done.state == WorkflowState.COMPLETED
    assert done.result == result
    assert done.decision == result.decision
    assert done.approval_request == pending


async def test_policy_requires_approval_when_the_llm_calls_deleting_production_data_safe(
    runs: TimeSkippingRuns,
) -> None:
    """The LLM's flag can only raise the risk: a request cannot argue its way past a human."""
    request = "Delete last year's rows from the production orders database [policy]"
    claims_safe = proposal(
        "delete_records", "Delete 2024 rows from the production orders table", risky=False
    )
    handle = await runs.start(request, ok(claims_safe))
    pending = await pending_request(handle)
    assert pending.risk_reasons == [DESTRUCTIVE, PRODUCTION, EMAIL_ASKS]
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(pending, approved=False))
    result = await finish(handle)
    assert result.outcome == Outcome.REJECTED
    assert "send_email" not in await scheduled_activities(handle)


async def test_require_approval_sends_even_a_safe_request_to_a_human(
    runs: TimeSkippingRuns,
) -> None:
    request = "Summarise the onboarding guide [approval required]"
    handle = await runs.start(request, ok(SAFE), require_approval=True)
    pending = await pending_request(handle)
    assert pending.risk_reasons == [FORCED_REASON]
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True))
    result = await finish(handle)
    assert result.outcome == Outcome.APPROVED
    assert result.execution is not None


async def test_approval_with_edits_asks_again_and_executes_the_edited_call(
    runs: TimeSkippingRuns,
) -> None:
    """An edit changes what runs: dana's edited call is previewed and asked about again (her
    own approval does not carry it), and the call bob approves is the edited one."""
    handle, pending = await awaiting_decision(
        runs, "Delete the stale staging orders [approve with edits]"
    )
    original = pending.proposed_action
    assert original.tool_call is not None
    edited = original.with_arguments({**original.tool_call.arguments, "subject": "Edited"})
    decision = decision_for(pending, approved=True, reviewer="dana", amended_action=edited)
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)
    again = await wait_until(
        lambda: pending_request(handle), lambda request: request.request_id != pending.request_id
    )
    assert again.proposed_action == edited
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision_for(again, approved=True, reviewer="bob")
    )
    result = await finish(handle)
    assert result.outcome == Outcome.APPROVED
    assert result.proposed_action == edited
    assert result.execution is not None and result.execution.tool_outcome is not None
    assert "subject 'Edited'" in result.execution.tool_outcome.preview.summary
    await assert_audit(
        handle,
        result,
        [
            *REQUESTED,
            "decision_approved",
            "action_amended",
            "effect_previewed",
            "approval_reopened",
            "approval_requested",
            "decision_approved",
            "executed",
        ],
    )
    (amendment,) = [e.detail for e in result.audit_trail if e.event == "action_amended"]
    assert amendment.startswith("by dana: send_email {")
    assert original.tool_call.arguments["subject"] in amendment and '"Edited"' in amendment


async def test_llm_answering_prose_fails_analysis_after_bounded_attempts(
    runs: TimeSkippingRuns,
) -> None:
    """A model that keeps answering garbage is not retried for the whole retry policy."""
    request = "Delete the stale staging orders [prose]"
    handle = await runs.start(request, *[ok("Sure, I can help you with that!")] * 6)
    result = await finish(handle)
    assert result.outcome == Outcome.ANALYSIS_FAILED
    assert "not a valid proposed action" in result.message, result.message
    assert runs.llm_server.calls(request) == MAX_MALFORMED_ATTEMPTS == 3
    assert result.proposed_action is None and result.execution is None
    assert await scheduled_activities(handle) == ["propose_action"]
    await assert_audit(handle, result, ["analysis_failed"])


async def test_llm_outage_is_retried_then_the_run_proceeds_and_executes_once(
    runs: TimeSkippingRuns,
) -> None:
    request = "Summarise the onboarding guide [outage]"
    handle = await runs.start(request, http_error(500), http_error(500), ok(SAFE))
    result = await finish(handle)
    assert result.outcome == Outcome.AUTO_APPROVED
    assert runs.llm_server.calls(request) == 3
    assert (await scheduled_activities(handle)).count("summarize_records") == 1
    assert [entry.event for entry in result.audit_trail].count("executed") == 1


async def test_llm_refusing_credentials_fails_analysis_at_once_naming_the_key(
    runs: TimeSkippingRuns,
) -> None:
    """Retrying a wrong API key only delays the message that would fix it."""
    request = "Summarise the onboarding guide [bad key]"
    handle = await runs.start(request, http_error(401, "invalid api key"))
    result = await finish(handle)
    assert result.outcome == Outcome.ANALYSIS_FAILED
    assert OPENAI_API_KEY_ENV in result.message, result.message
    assert runs.llm_server.calls(request) == 1
    assert result.execution is None
