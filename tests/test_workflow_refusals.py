"""Decisions the workflow must refuse, and proof that a refusal never changes the outcome.

Through the ``submit_decision`` update the sender is told why: the update's validator
rejects it with the reason, before anything reaches history, so it is not in the audit
trail either, only counted in the status (``refused_updates``). Through a signal nobody is
told, and the signal is in history anyway, so the audit trail is where the reason goes.
Either way nothing is applied, and the run still ends on the valid decision.
"""

from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import WorkflowHistory, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.execute_tool import execute_tool
from activities.notify_approval_needed import notify_approval_needed
from activities.send_approval_notices import ApprovalNotices
from activities.send_email_notice import EmailNotifier
from activities.send_webhook_notice import WebhookNotifier
from benchmarks.fake_openai import fallback_tool_call, ok
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVE_SIGNAL,
    DECISION_REFUSED_ERROR,
    SUBMIT_DECISION_UPDATE,
)
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    Outcome,
    WorkflowResult,
    WorkflowState,
)
from models.tools import ToolCall
from tests.helpers import TimeSkippingRuns, wait_for_state, wait_until
from tests.record_histories import (
    Run,
    decision_for,
    pending_request,
    status_of,
    wait_for_refusals,
)
from workflows.approval_workflow import ApprovalWorkflow
from workflows.human_in_the_loop_workflow import HumanInTheLoopWorkflow

RISKY = {
    "action_type": "delete_records",
    "description": "Delete the stale rows of the staging orders table",
    "reasoning": "It is what the user asked for.",
    "risky_action": True,
    "tool_call": fallback_tool_call("Delete the stale rows of the staging orders table"),
}
LLM_THINKING_SECONDS = 2.0


async def refused_update(handle: Run, decision: ApprovalDecision) -> str:
    """Send the decision by update; it must fail as refused. Returns the reason given."""
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == DECISION_REFUSED_ERROR, cause
    return cause.message


def refusals(result: WorkflowResult) -> list[str]:
    return [entry.detail for entry in result.audit_trail if entry.event == "decision_refused"]


def accepted_updates(history: WorkflowHistory) -> int:
    """How many updates reached the run's history (a validator's rejection never does)."""
    return sum(
        event.HasField("workflow_execution_update_accepted_event_attributes")
        for event in history.events
    )


Refusal = Callable[[ApprovalRequest], ApprovalDecision]

UPDATE_REFUSALS: list[tuple[str, dict[str, Any], Refusal, str]] = [
    (
        "wrong request id",
        {},
        lambda p: decision_for(p, approved=True).model_copy(update={"request_id": "old-one"}),
        "'old-one' does not match the pending request",
    ),
    (
        "unlisted approver",
        {"approvers": ["alice"]},
        lambda p: decision_for(p, approved=True, reviewer="mallory"),
        "'mallory' is not an approver of this request",
    ),
    (
        "requester approving own request",
        {"requester": "rob"},
        lambda p: decision_for(p, approved=True, reviewer="rob"),
        "'rob' requested or amended this action and cannot approve it",
    ),
    (
        "rejection with amended action",
        {},
        lambda p: decision_for(
            p,
            approved=False,
            amended_action=p.proposed_action.with_arguments({"to": "someone@example.com"}),
        ),
        "only an approval can amend the action",
    ),
    (
        "amendment of the words alone",
        {},
        lambda p: decision_for(
            p,
            approved=True,
            amended_action=p.proposed_action.model_copy(
                update={"description": "Delete only the rows of customer 2001"}
            ),
        ),
        "an edit changes only the tool call's arguments, not the words about it",
    ),
    (
        "amendment to the same call",
        {},
        lambda p: decision_for(p, approved=True, amended_action=p.proposed_action),
        "the amended call is the one awaiting approval; approve it without edits",
    ),
    (
        "amendment to another tool",
        {},
        lambda p: decision_for(
            p,
            approved=True,
            amended_action=p.proposed_action.model_copy(
                update={"tool_call": ToolCall(tool="run_sql", arguments={"sql": "SELECT 1"})}
            ),
        ),
        "an edit changes the arguments of send_email; it cannot switch to another tool",
    ),
]


@pytest.mark.parametrize(
    ("label", "fields", "make_refused", "reason"),
    UPDATE_REFUSALS,
    ids=[case[0] for case in UPDATE_REFUSALS],
)
async def test_refused_update_explains_why_is_counted_and_changes_nothing(
    runs: TimeSkippingRuns,
    label: str,
    fields: dict[str, Any],
    make_refused: Refusal,
    reason: str,
) -> None:
    async with runs.worker():
        handle = await runs.start(f"Delete stale orders [{label}]", ok(RISKY), **fields)
        pending = await pending_request(handle)
        refused = make_refused(pending)
        assert reason in await refused_update(handle, refused)
        status = await status_of(handle)
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.decision is None
        assert status.votes == [] and status.refused_updates == 1
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True, reviewer="alice")
        )
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "alice"
    assert result.proposed_action == pending.proposed_action
    assert [vote.reviewer for vote in result.votes] == ["alice"]
    # Rejected before history: neither in it nor in the audit trail.
    assert refusals(result) == []
    assert accepted_updates(await handle.fetch_history()) == 1


async def test_an_amendment_that_keeps_the_call_is_refused_by_signal_too(
    runs: TimeSkippingRuns,
) -> None:
    """The signal is judged by the same rule as the update; its refusal is recorded, and
    nothing executes on words that changed nothing."""
    async with runs.worker():
        handle = await runs.start("Delete stale orders [same call by signal]", ok(RISKY))
        pending = await pending_request(handle)
        reworded = pending.proposed_action.model_copy(update={"description": "Only one row"})
        await handle.signal(
            APPROVAL_DECISION_SIGNAL,
            decision_for(pending, approved=True, reviewer="dana", amended_action=reworded),
        )
        status = await wait_for_refusals(handle, 1)
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.votes == []
        await handle.signal(APPROVE_SIGNAL, False)
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert refusals(result) == [
        "from dana: an edit changes only the tool call's arguments, not the words about it"
    ]


async def test_decision_while_still_analysing_is_refused(runs: TimeSkippingRuns) -> None:
    """There is nothing to decide before the proposal exists, even with a guessed ID."""
    request = "Delete stale orders [while analysing]"
    async with runs.worker():
        handle = await runs.start(request, ok(RISKY, delay_seconds=LLM_THINKING_SECONDS))
        await wait_until(lambda: llm_calls(runs, request), lambda calls: calls >= 1)
        early = ApprovalDecision(request_id="guessed", approved=True, reviewer="eager")
        assert "not waiting for a decision" in await refused_update(handle, early)
        status = await status_of(handle)
        assert status.state == WorkflowState.ANALYSING and status.refused_updates == 1
        pending = await pending_request(handle)
        await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(pending, approved=False))
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert [vote.reviewer for vote in result.votes] == ["alice"]
    assert [entry.event for entry in result.audit_trail][:3] == [
        "action_proposed",
        "effect_previewed",
        "risk_classified",
    ]
    assert refusals(result) == []


async def refuse_a_second_decision(runs: TimeSkippingRuns) -> tuple[str, Run]:
    """Approve (alice), then reject (bob) while the run is still open; return bob's refusal.

    The run is held between approval and execution by serving its queue with a worker that
    runs workflows but no activities, so the second decision reliably finds it still open.
    Neither worker caches the run: the test server would keep routing its tasks to the
    stopped worker's sticky queue.
    """
    async with runs.worker(max_cached_workflows=0):
        handle = await runs.start(f"Delete [{runs.workflow_id}]", ok(RISKY))
        pending = await pending_request(handle)
    notices = ApprovalNotices(WebhookNotifier.from_env(), EmailNotifier.from_env())
    workflows_only = Worker(
        runs.client,
        task_queue=runs.task_queue,
        workflows=[HumanInTheLoopWorkflow, ApprovalWorkflow],
        # The opening notice is a local activity: a worker that runs the workflow runs it.
        activities=[
            notify_approval_needed,
            notices.send_approval_notices,
        ],
        no_remote_activities=True,
        max_cached_workflows=0,
    )
    # The execution runs on a worker of activities alone, started once bob was refused. (A
    # full worker started after the workflows-only one stops is refused by the SDK: the
    # stopped worker can stay registered on the queue.)
    activities_only = Worker(runs.client, task_queue=runs.task_queue, activities=[execute_tool])
    async with workflows_only:
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True, reviewer="alice")
        )
        await wait_for_state(handle, WorkflowState.EXECUTING)
        late = decision_for(pending, approved=False, reviewer="bob", notes="wait!")
        reason = await refused_update(handle, late)
        async with activities_only:
            await handle.result()
    return reason, handle


async def test_second_decision_after_one_was_applied_is_refused(runs: TimeSkippingRuns) -> None:
    """A decision is applied at most once; a late "no" cannot undo an approval."""
    _, handle = await refuse_a_second_decision(runs)
    result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "alice"
    assert [vote.reviewer for vote in result.votes] == ["alice"]
    assert result.execution is not None
    assert refusals(result) == []
    assert accepted_updates(await handle.fetch_history()) == 1


async def test_second_decision_is_told_who_already_decided(runs: TimeSkippingRuns) -> None:
    """ "Not waiting" leaves a late approver guessing; "already decided by alice" does not."""
    reason, _ = await refuse_a_second_decision(runs)
    assert "already decided" in reason and "alice" in reason, reason


@pytest.mark.parametrize(
    ("signal", "payload", "reason"),
    [
        (APPROVAL_DECISION_SIGNAL, True, "not a valid ApprovalDecision"),
        (APPROVAL_DECISION_SIGNAL, {"approved": True}, "request_id"),
        (APPROVAL_DECISION_SIGNAL, {"request_id": "any", "approved": "yes"}, "approved"),
        (APPROVE_SIGNAL, "maybe", "not true or false"),
        (APPROVE_SIGNAL, "yes", "not true or false"),
        (APPROVE_SIGNAL, 1, "not true or false"),
    ],
    ids=[
        "bool as decision",
        "decision without request id",
        "yes as approved",
        "maybe as approve",
        "yes as approve",
        "1 as approve",
    ],
)
async def test_undecodable_signal_is_recorded_and_the_run_still_completes(
    runs: TimeSkippingRuns,
    signal: str,
    payload: object,
    reason: str,
) -> None:
    """The SDK would drop a payload it cannot decode; the workflow records it instead."""
    async with runs.worker():
        handle = await runs.start(f"Delete [{signal} {payload!r}]", ok(RISKY))
        pending = await pending_request(handle)
        await handle.signal(signal, payload)
        status = await wait_for_refusals(handle, 1)
        assert reason in status.audit_trail[-1].detail
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.decision is None
        await handle.signal(APPROVE_SIGNAL, True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.request_id == pending.request_id
    assert len(refusals(result)) == 1


@pytest.mark.parametrize("signal", [APPROVAL_DECISION_SIGNAL, APPROVE_SIGNAL])
@pytest.mark.parametrize("count", [0, 2])
async def test_a_signal_without_exactly_one_payload_is_refused_and_the_run_still_completes(
    runs: TimeSkippingRuns, signal: str, count: int
) -> None:
    """`temporal workflow signal --name approve` without --input sends no payload. A handler
    with one parameter would raise TypeError on it and fail every workflow task, wedging the
    run; even two valid payloads are refused, since nothing says which one is meant."""
    async with runs.worker():
        handle = await runs.start(f"Delete [{signal} with {count} payloads]", ok(RISKY))
        pending = await pending_request(handle)
        payload = True if signal == APPROVE_SIGNAL else decision_for(pending, approved=True)
        await handle.signal(signal, args=[payload] * count)
        status = await wait_for_refusals(handle, 1)
        assert status.audit_trail[-1].detail == f"expected one payload, got {count}"
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.votes == []
        await handle.signal(APPROVE_SIGNAL, False)
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert result.request_id == pending.request_id
    assert len(refusals(result)) == 1


async def test_decision_after_the_timeout_cannot_apply(runs: TimeSkippingRuns) -> None:
    """Once timed out the run is closed: the sender gets an error, the outcome stands."""
    async with runs.worker():
        handle = await runs.start("Delete [too late]", ok(RISKY), approval_timeout_seconds=60)
        pending = await pending_request(handle)
        assert (await handle.result()).outcome == Outcome.TIMED_OUT
        late = decision_for(pending, approved=True)
        with pytest.raises(RPCError):
            await handle.execute_update(SUBMIT_DECISION_UPDATE, late)
        with pytest.raises(RPCError):
            await handle.signal(APPROVAL_DECISION_SIGNAL, late)
        after = await status_of(handle)
    assert after.result is not None and after.result.outcome == Outcome.TIMED_OUT
    assert after.decision is None


async def llm_calls(runs: TimeSkippingRuns, request: str) -> int:
    return runs.llm_server.calls(request)
