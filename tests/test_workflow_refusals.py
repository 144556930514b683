"""Decisions the workflow must refuse, and proof that a refusal never changes the outcome.

Through the ``submit_decision`` update the sender is told why (the update fails with the
reason); through a signal nobody is told, so the audit trail is where the reason goes.
Either way every refusal is recorded, and the run still ends on the valid decision.
"""

from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.openai_responses import AnalysisActivities
from constants import APPROVAL_DECISION_SIGNAL, APPROVE_SIGNAL, SUBMIT_DECISION_UPDATE
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    Outcome,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
)
from tests.fake_openai import FakeOpenAIServer, Reply, ok
from tests.helpers import wait_for_state, wait_until
from tests.record_histories import (
    Run,
    decision_for,
    pending_request,
    start_run,
    status_of,
    wait_for_refusals,
)
from worker import build_worker
from workflows.approval_workflow import ApprovalWorkflow
from workflows.human_in_the_loop_workflow import HumanInTheLoopWorkflow

RISKY = {
    "action_type": "delete_records",
    "description": "Delete the stale rows of the staging orders table",
    "reasoning": "It is what the user asked for.",
    "risky_action": True,
}
LLM_THINKING_SECONDS = 2.0


async def start(
    env: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
    user_request: str,
    *llm_replies: Reply,
    **fields: Any,
) -> Run:
    llm_server.on(user_request, *(llm_replies or [ok(RISKY)]))
    return await start_run(
        env.client, task_queue, workflow_id, WorkflowInput(user_request=user_request, **fields)
    )


async def refused_update(handle: Run, decision: ApprovalDecision) -> str:
    """Send the decision by update; it must fail as refused. Returns the reason given."""
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "DecisionRefused", cause
    return cause.message


def refusals(result: WorkflowResult) -> list[str]:
    return [entry.detail for entry in result.audit_trail if entry.event == "decision_refused"]


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
        "'rob' requested this action and cannot approve it",
    ),
    (
        "rejection with amended action",
        {},
        lambda p: decision_for(
            p,
            approved=False,
            amended_action=p.proposed_action.model_copy(update={"description": "Truncate it"}),
        ),
        "only an approval can amend the action",
    ),
]


@pytest.mark.parametrize(
    ("label", "fields", "make_refused", "reason"),
    UPDATE_REFUSALS,
    ids=[case[0] for case in UPDATE_REFUSALS],
)
async def test_refused_update_explains_why_is_audited_and_changes_nothing(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
    label: str,
    fields: dict[str, Any],
    make_refused: Refusal,
    reason: str,
) -> None:
    env = time_skipping_env
    async with build_worker(env.client, task_queue, analysis_activities):
        handle = await start(
            env, llm_server, task_queue, workflow_id, f"Delete stale orders [{label}]", **fields
        )
        pending = await pending_request(handle)
        refused = make_refused(pending)
        assert reason in await refused_update(handle, refused)
        status = await status_of(handle)
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.decision is None
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True, reviewer="alice")
        )
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "alice"
    assert result.proposed_action == pending.proposed_action
    assert [reason in detail for detail in refusals(result)] == [True]
    assert f"from {refused.reviewer}" in refusals(result)[0]


async def test_decision_while_still_analysing_is_refused(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> None:
    """There is nothing to decide before the proposal exists, even with a guessed ID."""
    env = time_skipping_env
    request = "Delete stale orders [while analysing]"
    async with build_worker(env.client, task_queue, analysis_activities):
        handle = await start(
            env,
            llm_server,
            task_queue,
            workflow_id,
            request,
            Reply(ok(RISKY).text, delay_seconds=LLM_THINKING_SECONDS),
        )
        await wait_until(lambda: _calls(llm_server, request), lambda calls: calls >= 1)
        early = ApprovalDecision(request_id="guessed", approved=True, reviewer="eager")
        assert "not waiting for a decision" in await refused_update(handle, early)
        assert (await status_of(handle)).state == WorkflowState.ANALYSING
        pending = await pending_request(handle)
        await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(pending, approved=False))
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert [entry.event for entry in result.audit_trail][:2] == [
        "decision_refused",
        "action_proposed",
    ]


async def refuse_a_second_decision(
    env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> tuple[str, WorkflowResult]:
    """Approve (alice), then reject (bob) while the run is still open; return bob's refusal.

    The run is held between approval and execution by serving its queue with a worker that
    runs workflows but no activities, so the second decision reliably finds it still open.
    Neither worker caches the run: the test server would keep routing its tasks to the
    stopped worker's sticky queue.
    """
    async with build_worker(env.client, task_queue, analysis_activities, max_cached_workflows=0):
        handle = await start(env, llm_server, task_queue, workflow_id, f"Delete [{workflow_id}]")
        pending = await pending_request(handle)
    workflows_only = Worker(
        env.client,
        task_queue=task_queue,
        workflows=[HumanInTheLoopWorkflow, ApprovalWorkflow],
        max_cached_workflows=0,
    )
    async with workflows_only:
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True, reviewer="alice")
        )
        await wait_for_state(handle, WorkflowState.EXECUTING)
        late = decision_for(pending, approved=False, reviewer="bob", notes="wait!")
        reason = await refused_update(handle, late)
    async with build_worker(env.client, task_queue, analysis_activities):
        return reason, await handle.result()


async def test_second_decision_after_one_was_applied_is_refused(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> None:
    """A decision is applied at most once; a late "no" cannot undo an approval."""
    _, result = await refuse_a_second_decision(
        time_skipping_env, analysis_activities, llm_server, task_queue, workflow_id
    )
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "alice"
    assert result.execution is not None
    assert ["from bob" in detail for detail in refusals(result)] == [True]


async def test_second_decision_is_told_who_already_decided(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> None:
    """ "Not waiting" leaves a late approver guessing; "already decided by alice" does not."""
    reason, _ = await refuse_a_second_decision(
        time_skipping_env, analysis_activities, llm_server, task_queue, workflow_id
    )
    assert "already decided" in reason and "alice" in reason, reason


@pytest.mark.parametrize(
    ("signal", "payload", "reason"),
    [
        (APPROVAL_DECISION_SIGNAL, True, "not a valid ApprovalDecision"),
        (APPROVAL_DECISION_SIGNAL, {"approved": True}, "request_id"),
        (APPROVE_SIGNAL, "maybe", "not a valid bool"),
    ],
    ids=["bool as decision", "decision without request id", "maybe as approve"],
)
async def test_undecodable_signal_is_recorded_and_the_run_still_completes(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
    signal: str,
    payload: object,
    reason: str,
) -> None:
    """The SDK would drop a payload it cannot decode; the workflow records it instead."""
    env = time_skipping_env
    async with build_worker(env.client, task_queue, analysis_activities):
        handle = await start(
            env, llm_server, task_queue, workflow_id, f"Delete [{signal} {payload!r}]"
        )
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


async def test_decision_after_the_timeout_cannot_apply(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> None:
    """Once timed out the run is closed: the sender gets an error, the outcome stands."""
    env = time_skipping_env
    async with build_worker(env.client, task_queue, analysis_activities):
        handle = await start(
            env,
            llm_server,
            task_queue,
            workflow_id,
            "Delete [too late]",
            approval_timeout_seconds=60,
        )
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


async def _calls(llm_server: FakeOpenAIServer, request: str) -> int:
    return llm_server.calls(request)
