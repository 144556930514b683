"""Attacks on the rebuilt approval core: each test is a break of the approval contract
found by a hostile review, and fails while the break is there.

The contract: an action runs only if the right people approved that action before the
deadline; every ending is a recorded outcome; nothing is lost; replay never fails.
They run on a real dev server with the project's own worker wiring, like
``test_approval_core.py`` (whose helpers they use).
"""

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import client, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer, fallback_tool_call
from constants import APPROVAL_DECISION_SIGNAL, SUBMIT_DECISION_UPDATE, WORKFLOW_TYPE
from models.models import (
    ApprovalRequest,
    CarriedRun,
    Outcome,
    ProposedAction,
    RecordedWorkflowInput,
    RiskAssessment,
    WorkflowResult,
    WorkflowState,
)
from models.tools import ToolCall
from tests.helpers import (
    status_of,
    wait_until,
)
from tests.record_histories import decision_for, pending_request, recorded
from tests.test_approval_core import (
    SHORT_DEADLINE,
    CoreRuns,
    activity_names,
    events,
    reset_to,
    risky,
    serving,
    until_past,
)
from tools.database import database_path
from tools.execution import preview_call

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def core(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
) -> CoreRuns:
    return CoreRuns(dev_server.client, analysis_activities, llm_server)


def forged_input(text: str, deadline_in: timedelta) -> RecordedWorkflowInput:
    """Carried state a starter made up: a request only mallory approves, for an action
    nobody analysed or assessed, with a preview computed by the forger (anyone who can read
    a status query or run the tool's preview can)."""
    action = ProposedAction.model_validate(risky(fallback_tool_call(text)))
    assert action.tool_call is not None
    preview = preview_call(database_path(), ToolCall.model_validate(action.tool_call))
    now = datetime.now(UTC)
    request = ApprovalRequest(
        workflow_id="forged",
        request_id="forged",
        user_request=text,
        proposed_action=action,
        risk_reasons=[],
        requested_at=now,
        deadline=now + deadline_in,
        approvers=["mallory"],
        preview=preview,
    )
    carried = CarriedRun(
        action=action,
        risk=RiskAssessment(requires_approval=True, reasons=[]),
        preview=preview,
        previews=1,
        request=request,
        votes=[],
        amenders=[],
        barred=[],
        audit_trail=[],
        refused_updates=0,
        from_run_id="a-guess-at-the-next-runs-id",
    )
    return RecordedWorkflowInput(user_request=text, carried=carried)


async def test_forged_carried_state_is_refused_in_every_run_of_a_cron_workflow(
    core: CoreRuns,
) -> None:
    """``_resume`` trusts carried state whenever the run has a ``continued_run_id``. Temporal
    sets one for a cron run (and a retry) too, whose input is the starter's: the first run
    refuses the forged state, the next cron run takes it up, and mallory's own approval of
    a request nobody analysed executes."""
    text = f"Forged cron {uuid.uuid4().hex[:6]}"
    forged = forged_input(text, timedelta(minutes=5))
    workflow_id = f"core-{uuid.uuid4().hex[:8]}"
    async with serving(core):
        first = await core.client.start_workflow(
            WORKFLOW_TYPE,
            forged,
            id=workflow_id,
            task_queue=core.task_queue,
            result_type=WorkflowResult,
            cron_schedule="@every 1s",
        )
        try:
            second = await next_run(core.client, workflow_id, first.result_run_id)
            assert forged.carried is not None
            mallory = decision_for(forged.carried.request, approved=True, reviewer="mallory")
            # Wait until the run is past its first task (the forged request waits there,
            # or the run refused it), then mallory decides.
            await wait_until(
                lambda: status_of(second), lambda s: s.state != WorkflowState.ANALYSING
            )
            with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
                await second.execute_update(SUBMIT_DECISION_UPDATE, mallory)
            # A cron run's ending reads as "continued as new": its result is in its status.
            status = await wait_until(
                lambda: status_of(second), lambda s: s.state == WorkflowState.COMPLETED
            )
            assert status.result is not None
            result = status.result
        finally:
            await core.client.get_workflow_handle(workflow_id).terminate("test finished")
    assert result.outcome == Outcome.INPUT_REFUSED, result.message
    assert "send_email" not in await activity_names(second)


async def next_run(client: Client, workflow_id: str, after: str | None) -> Any:
    """The run of ``workflow_id`` that follows run ``after`` (a cron's next run)."""
    for _ in range(60):
        description = await client.get_workflow_handle(workflow_id).describe()
        if description.run_id != after:
            return client.get_workflow_handle(
                workflow_id, run_id=description.run_id, result_type=WorkflowResult
            )
        await asyncio.sleep(0.5)
    raise AssertionError(f"no run after {after}")


def last_task_completed(history_events: Any, before: int | None = None) -> int:
    """The last WorkflowTaskCompleted event's ID (before event ``before``, if given)."""
    return [
        e.event_id
        for e in history_events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        and (before is None or e.event_id < before)
    ][-1]


async def a_task_after_the_request_opened(handle: Any, request: ApprovalRequest) -> int:
    """Send a refused decision (another request's ID), so the run has a workflow task after
    the one that opened the request; that task's WorkflowTaskCompleted event ID. A reset to
    it keeps the request (its ID and deadline) as the run opened it."""
    wrong = decision_for(request, approved=True).model_copy(update={"request_id": "another"})
    await handle.signal(APPROVAL_DECISION_SIGNAL, wrong)
    await wait_until(lambda: status_of(handle), lambda s: recorded(s, "decision_refused") > 0)
    return last_task_completed((await handle.fetch_history()).events)


async def test_a_run_made_by_a_reset_still_refuses_a_decision_handled_after_the_deadline(
    core: CoreRuns,
) -> None:
    """An operator resets a waiting run (any reason: a bad deploy, a stuck step) before its
    deadline, to a task after the request opened. Later the worker is down across the
    deadline and an approval arrives after it. The reset run never reads the clock
    (``_past`` is False in any run whose run ID is not the original's), so the late
    approval, handled in the same task as the deadline's timer, counts and executes."""
    async with serving(core):
        handle = await core.start(
            "Reset, then approve late", approval_timeout_seconds=SHORT_DEADLINE
        )
        request = await pending_request(handle)
        reset = await reset_to(core, handle, await a_task_after_the_request_opened(handle, request))
        status = await wait_until(lambda: status_of(reset), lambda s: s.approval_request)
        assert status.approval_request == request  # the same request waits in the reset run
    await until_past(request.deadline)
    await reset.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))
    async with serving(core):
        result = await reset.result()
    assert result.outcome == Outcome.TIMED_OUT, result.message
    assert "send_email" not in await activity_names(reset)


async def test_resetting_a_timed_out_run_never_executes_the_approval_it_refused_as_late(
    core: CoreRuns,
) -> None:
    """A run timed out correctly: its worker was down across the deadline and the approval
    came after it (``decision_late``). An operator then resets it to a task before the
    deadline (to look again, to retry after a fix): Temporal reapplies the late signal to
    the new run, which judges by the timer alone, so the approval it refused executes."""
    async with serving(core):
        handle = await core.start("Time out, then reset", approval_timeout_seconds=SHORT_DEADLINE)
        request = await pending_request(handle)
        before_deadline = await a_task_after_the_request_opened(handle, request)
    await until_past(request.deadline)
    await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))
    async with serving(core):
        first = await handle.result()
        assert first.outcome == Outcome.TIMED_OUT
        assert "decision_late" in events(first)
        reset = await reset_to(core, handle, before_deadline)
        result = await reset.result()
    assert result.outcome == Outcome.TIMED_OUT, result.message
    assert "send_email" not in await activity_names(reset)


# Whether the first workflow task of a continued run is held (failed before it runs), as
# when the worker that ran the continue-as-new crashes before the new run's first task.
HOLD_CONTINUED = {"held": False}


class HoldContinuedRuns(client.Interceptor, Interceptor):
    """On the client, so the worker built from it (``build_worker``) takes it up."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _HoldContinued


class _HoldContinued(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        if HOLD_CONTINUED["held"] and workflow.info().continued_run_id is not None:
            raise RuntimeError("held: the worker is down before the new run's first task")
        return await super().execute_workflow(input)


async def test_a_decision_that_reaches_a_continued_run_in_its_first_task_counts(
    small_history_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
) -> None:
    """The request moved to a new run (continue-as-new). The approver's signal reaches the
    new run before its first workflow task ran (the worker was slow or down for a moment
    after the move): the SDK hands signals to their handlers before ``run`` starts, and the
    carried window is only opened in ``run`` (``_resume``), so the on-time approval is
    refused as "not waiting for a decision" and lost; the request times out."""
    config = small_history_server.client.config()
    config["interceptors"] = [HoldContinuedRuns()]
    core = CoreRuns(Client(**config), analysis_activities, llm_server)
    async with serving(core):
        handle = await core.start(
            "Approve as the request moves",
            # A held task's retry comes a workflow task timeout later (the continued run
            # keeps its run's): 2 s, not the default 10 s.
            task_timeout=timedelta(seconds=2),
            approval_timeout_seconds=30,
            approvers=["alice"],
        )
        request = await pending_request(handle)
        HOLD_CONTINUED["held"] = True
        try:
            wrong = decision_for(request, approved=True, reviewer="mallory")
            for _ in range(40):
                await handle.signal(APPROVAL_DECISION_SIGNAL, wrong)
            latest = core.client.get_workflow_handle(handle.id, result_type=WorkflowResult)
            await wait_until(lambda: latest.describe(), lambda d: d.run_id != handle.result_run_id)
            await latest.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))
        finally:
            HOLD_CONTINUED["held"] = False
        result = await latest.result()
    signalled = [
        e.event_id
        for e in (await latest.fetch_history()).events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signalled, "alice's approval is in the continued run's history"
    # Neither counted nor recorded: ``_resume`` replaces the audit trail its handler wrote
    # the refusal to.
    assert result.outcome == Outcome.APPROVED, result.message
