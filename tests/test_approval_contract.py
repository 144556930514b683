"""The approval contract (issue 17): an action runs only if the right people approved *that*
action before its deadline, once; and every ending is recorded.

Each test is a way the contract used to break: a decision sent after the deadline while no
worker ran, notices that pushed the deadline out, an amendment that escaped the policy, a
rule change under a waiting run, settings dropped on a safe request, a stage ID taken,
cancellation and failed executions that left no outcome, a re-sent decision refused.
Workflows run on the shared time-skipping server through the real worker wiring, with the
execute activity replaced where a test must hold or fail it; tests that stop the worker or
cancel an activity in progress run on the dev server, in real time.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update import v1 as update_pb
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.notify_approval_needed import notify_approval_needed
from activities.preview_tool_call import preview_tool_call
from activities.propose_action import AnalysisActivities
from activities.send_approval_notices import ApprovalNotices
from activities.send_email_notice import EmailNotifier
from activities.send_webhook_notice import WebhookNotifier
from approval_status import list_pending
from benchmarks.fake_openai import FakeOpenAIServer, fallback_tool_call, ok
from client.decide import deliver
from constants import (
    ALREADY_APPLIED_ERROR,
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    APPROVE_SIGNAL,
    SHORTHAND_REVIEWER,
    STATE_DIR_ENV,
    SUBMIT_DECISION_UPDATE,
)
from models.models import (
    ApprovalDecision,
    ApprovalStatus,
    Outcome,
    WorkflowInput,
    WorkflowResult,
)
from models.tools import EffectPreview, ExecuteToolInput, ToolOutcome, ToolStatus
from policy import risk_policy
from tests.helpers import (
    STAGE_MEMBERS,
    Run,
    TimeSkippingRuns,
    decide_stage_as_member,
    is_running,
    member_of,
    start_run,
    status_of,
    wait_until,
)
from tests.record_histories import (
    decision_for,
    pending_request,
    started_children,
    wait_for_timers,
)
from tests.test_approval_core import SHORT_DEADLINE, until_past
from tools.registry import get_tool
from workflows.approval_workflow import ApprovalWorkflow
from workflows.human_in_the_loop_workflow import HumanInTheLoopWorkflow
from workflows.stage_ids import stage_child_id

# Only a tool acts; an e-mail to one address asks (default-deny), and its preview reads
# nothing another test changes.
RISKY = {
    "action_type": "pay_vendor",
    "description": "Pay $500 to ACME",
    "reasoning": "It is what the user asked for.",
    "risky_action": True,
    "tool_call": fallback_tool_call("Pay $500 to ACME"),
}
# A payment small enough for one approver, which an edit can make large.
SMALL_PAYMENT = {
    "action_type": "pay_vendor",
    "description": "Pay ACME for March",
    "reasoning": "It is what the user asked for.",
    "risky_action": True,
    "tool_call": {
        "tool": "pay_vendor",
        "arguments": {
            "vendor": "ACME",
            "amount_cents": 50_000,
            "from_account": "operating",
            "memo": "March",
        },
    },
}
SAFE = {
    "action_type": "summarise_document",
    "description": "Summarise the onboarding guide in five bullets",
    "reasoning": "It is what the user asked for.",
    "risky_action": False,
    # Only a read-only tool runs without a person (default-deny).
    "tool_call": {"tool": "account_balances", "arguments": {}},
}
TIMEOUT = 300
ADMITTED = UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
APPROVAL_STATUS = SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)


@pytest.fixture
def dev_runs(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> TimeSkippingRuns:
    """Like ``runs``, on the dev server: real time, and a worker that can really be away."""
    return TimeSkippingRuns(dev_server, analysis_activities, llm_server, task_queue, workflow_id)


def events(result: WorkflowResult) -> list[str]:
    return [entry.event for entry in result.audit_trail]


def details(result: WorkflowResult, event: str) -> list[str]:
    return [entry.detail for entry in result.audit_trail if entry.event == event]


async def waiting_run(runs: TimeSkippingRuns, request: str, **fields: Any) -> tuple[Run, Any]:
    handle = await runs.start(request, ok(RISKY), approval_timeout_seconds=TIMEOUT, **fields)
    return handle, await pending_request(handle)


# --- 1. deadlines hold ------------------------------------------------------------------------


@pytest.mark.timeout(240)  # two worker starts on a real server, on a loaded machine
async def test_a_signal_sent_after_the_deadline_while_no_worker_ran_is_refused(
    dev_runs: TimeSkippingRuns,
) -> None:
    """The SDK hands the late signal over before the deadline's timer, so the vote is
    counted; the task that settles it runs past the deadline, and the request times out."""
    async with dev_runs.worker():
        handle = await dev_runs.start(
            "Pay ACME [late while down]", ok(RISKY), approval_timeout_seconds=SHORT_DEADLINE
        )
        pending = await pending_request(handle)
    await until_past(pending.deadline)  # no worker: the deadline passes unseen
    await handle.signal(APPROVE_SIGNAL, True)
    async with dev_runs.worker():
        result = await handle.result()
    assert result.outcome == Outcome.TIMED_OUT
    assert result.execution is None and result.decision is None
    (late,) = details(result, "decision_late")
    assert late.startswith(f"from {SHORTHAND_REVIEWER}: handled after the deadline")
    assert "executed" not in events(result)
    assert events(result)[-1] == "timed_out"


@pytest.mark.timeout(240)  # two worker starts on a real server, on a loaded machine
async def test_a_signal_sent_before_the_deadline_but_handled_after_it_fails_closed(
    dev_runs: TimeSkippingRuns,
) -> None:
    """A decision counts only if the workflow handles it before the deadline: one stored in
    time while no worker ran, and handled after the deadline, times out; nothing executes."""
    async with dev_runs.worker():
        handle = await dev_runs.start(
            "Pay ACME [on time while down]", ok(RISKY), approval_timeout_seconds=SHORT_DEADLINE
        )
        pending = await pending_request(handle)
    await handle.signal(APPROVE_SIGNAL, True)  # stored now, before the deadline
    await until_past(pending.deadline)
    async with dev_runs.worker():
        result = await handle.result()
    assert result.outcome == Outcome.TIMED_OUT
    assert result.execution is None and result.decision is None
    (late,) = details(result, "decision_late")
    assert f"handled after the deadline ({pending.deadline.isoformat()})" in late
    assert "executed" not in events(result)
    assert events(result)[-1] == "timed_out"


async def admitted(client: Client, workflow_id: str, update_id: str) -> bool:
    """Whether Temporal holds update ``update_id`` for the run (admitted, not yet stored)."""
    try:
        await client.workflow_service.poll_workflow_execution_update(
            PollWorkflowExecutionUpdateRequest(
                namespace=client.namespace,
                update_ref=update_pb.UpdateRef(
                    workflow_execution=WorkflowExecution(workflow_id=workflow_id),
                    update_id=update_id,
                ),
                wait_policy=update_pb.WaitPolicy(lifecycle_stage=ADMITTED),
            ),
            timeout=timedelta(seconds=2),
        )
    except RPCError:
        return False
    return True


@pytest.mark.timeout(240)  # two worker starts on a real server, on a loaded machine
async def test_an_update_a_worker_receives_after_the_deadline_is_refused_and_its_sender_told(
    dev_runs: TimeSkippingRuns,
) -> None:
    """Temporal stores an update only when a worker accepts it, so an update is on time if a
    worker receives it before the deadline: one sent before the deadline while no worker
    ran, and received after it, is refused by the validator, its sender told why, and
    nothing applied or recorded (a rejected update leaves no history)."""
    async with dev_runs.worker():
        handle = await dev_runs.start(
            "Pay ACME [late update]", ok(RISKY), approval_timeout_seconds=SHORT_DEADLINE
        )
        pending = await pending_request(handle)
    decision = decision_for(pending, approved=True, reviewer="alice")
    sent = asyncio.create_task(
        handle.execute_update(SUBMIT_DECISION_UPDATE, decision, id="late-update")
    )
    await wait_until(lambda: admitted(dev_runs.client, handle.id, "late-update"), bool)
    # Sent in time, but no worker receives it before the deadline.
    await until_past(pending.deadline)
    async with dev_runs.worker():
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await sent
        result = await handle.result()
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "DecisionRefused"
    assert cause.message == f"arrived after the deadline ({pending.deadline.isoformat()})"
    assert result.outcome == Outcome.TIMED_OUT
    assert result.execution is None and result.decision is None and result.votes == []
    # Refused by the validator: counted in memory (refused_updates), never in history.
    assert not {"decision_refused", "decision_late", "decision_approved"} & set(events(result))
    assert events(result)[-1] == "timed_out"


@pytest.mark.timeout(240)  # two worker starts on a real server, on a loaded machine
async def test_a_stage_signal_sent_after_its_deadline_while_no_worker_ran_is_refused(
    dev_runs: TimeSkippingRuns,
) -> None:
    """The stage's child judges its ``approve`` signal by when it handles it, as the parent
    does: handled after the stage deadline, it does not count and the stage times out. The
    shorthand is the one signal a stage takes (a signal, unlike an update, is stored while
    no worker runs), so its reviewer, temporal-cli, is made the stage's member here: the
    signal is refused for being late, not for who sent it."""
    async with dev_runs.worker():
        handle = await dev_runs.start(
            "Pay ACME [late stage signal]",
            ok(RISKY),
            approval_timeout_seconds=SHORT_DEADLINE,
            approval_stages=["legal"],
            stage_approvers={"legal": [SHORTHAND_REVIEWER]},
        )
        status = await wait_until(lambda: status_of(handle), lambda s: s.current_stage is not None)
        assert status.current_stage is not None and status.approval_request is not None
        child = dev_runs.client.get_workflow_handle(status.current_stage.child_workflow_id)
        await wait_for_timers(child, 1)  # the stage waits for its decision
    await until_past(status.approval_request.deadline)  # the stage's own deadline
    await child.signal(APPROVE_SIGNAL, True)
    async with dev_runs.worker():
        result = await handle.result()
    assert result.outcome == Outcome.TIMED_OUT
    assert result.execution is None and result.decision is None
    (stage,) = result.stages
    assert (stage.stage, stage.approved) == ("legal", None)
    (refusal,) = details(result, "decision_refused")
    assert refusal.startswith("stage legal: from temporal-cli: handled after the deadline")
    assert "stage_timed_out" in events(result)


@asynccontextmanager
async def failing_webhook() -> AsyncIterator[WebhookNotifier]:
    """A webhook that answers 503 every time: its notice retries with back-off."""
    async with httpx2.AsyncClient(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(503))
    ) as http:
        yield WebhookNotifier("https://hooks.example.test/slow", None, http)


async def test_slow_notices_never_push_the_deadline_out(runs: TimeSkippingRuns) -> None:
    """The notice retries for longer than the 5 s the request allows: the request still
    closes at its deadline, not after the notices are done."""
    async with failing_webhook() as notifier, runs.worker(notifier=notifier):
        handle = await runs.start("Pay ACME [slow notices]", ok(RISKY), approval_timeout_seconds=5)
        result = await handle.result()
    assert result.outcome == Outcome.TIMED_OUT
    requested = next(e.at for e in result.audit_trail if e.event == "approval_requested")
    timed_out = next(e.at for e in result.audit_trail if e.event == "timed_out")
    assert timed_out - requested < timedelta(seconds=6)


@asynccontextmanager
async def slow_webhook(seconds: float) -> AsyncIterator[WebhookNotifier]:
    """A webhook that takes ``seconds`` to answer: the opening notice (a local activity) is
    still being sent meanwhile."""

    async def answer(_: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(seconds)
        return httpx2.Response(200)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        yield WebhookNotifier("https://hooks.example.test/slow", None, http)


async def test_a_stage_decided_while_its_opening_notice_is_sent_counts(
    runs: TimeSkippingRuns,
) -> None:
    """A quick approver decides a stage while its opening notice (a local activity) is still
    out: the notice is cancelled, moot, and the decision stands. The cancelled notice once
    ended the stage's window with an ActivityError, so the stage failed (stage_failed)."""
    run_input = WorkflowInput(
        user_request="Pay ACME [stage decided during its notice]",
        approval_stages=["legal"],
        stage_approvers=STAGE_MEMBERS,
    )
    runs.llm_server.on(run_input.user_request, ok(RISKY))
    # The notice takes longer than a workflow task's timeout: the task that opened the stage
    # completes (the SDK heartbeats it at 80% of the timeout, which the stage takes from its
    # run) while its local activity is still sending, and the decision is handled then.
    async with slow_webhook(15) as notifier, runs.worker(notifier=notifier):
        handle = await start_run(
            runs.client,
            runs.task_queue,
            runs.workflow_id,
            run_input,
            task_timeout=timedelta(seconds=2),
        )
        status = await wait_until(lambda: status_of(handle), lambda s: s.current_stage is not None)
        assert status.current_stage is not None
        child_id = status.current_stage.child_workflow_id
        child = runs.client.get_workflow_handle(child_id)
        await wait_until(lambda: is_running(child), bool)
        await decide_stage_as_member(runs.client, child_id)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED, result.message
    assert result.execution is not None
    assert [(stage.stage, stage.approved, stage.reviewer) for stage in result.stages] == [
        ("legal", True, member_of("legal"))
    ]


# --- 2. an approval covers what was assessed ------------------------------------------------


async def test_an_amendment_that_adds_risk_reopens_the_request_and_the_amender_cannot_approve(
    runs: TimeSkippingRuns,
) -> None:
    async with runs.worker():
        handle, pending = await waiting_run(runs, "Pay ACME [amend adds risk]")
        call = pending.proposed_action.tool_call
        assert call is not None
        amended = pending.proposed_action.with_arguments(
            {**call.arguments, "subject": "Pay $500 to ACME and DROP DATABASE prod"}
        )
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE,
            decision_for(pending, approved=True, reviewer="dana").model_copy(
                update={"amended_action": amended}
            ),
        )
        reopened = await wait_until(
            lambda: status_of(handle),
            lambda s: (
                s.approval_request is not None
                and s.approval_request.request_id != pending.request_id
            ),
        )
        assert reopened.approval_request is not None
        assert "targets production" in reopened.approval_request.risk_reasons
        again = decision_for(reopened.approval_request, approved=True, reviewer="dana")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(SUBMIT_DECISION_UPDATE, again)
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "DecisionRefused"
        assert cause.message == "'dana' requested or amended this action and cannot approve it"
        other = decision_for(reopened.approval_request, approved=True, reviewer="erin")
        await handle.execute_update(SUBMIT_DECISION_UPDATE, other)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "erin"
    assert result.execution is not None  # what was approved: the amendment
    assert result.proposed_action == amended
    (reopening,) = details(result, "approval_reopened")
    assert "targets production" in reopening and pending.request_id in reopening


async def test_an_amendment_that_crosses_into_stages_is_decided_stage_by_stage(
    runs: TimeSkippingRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stages record who decided them (``submit_decision`` on the child); the amender may
    not approve a stage of their own amendment, though a member of it."""
    members = {"manager": ["boss1", "dana"], "director": ["boss2"], "cfo": ["boss3"]}
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))  # the payment is made in its own books
    async with runs.worker():
        handle = await runs.start(
            "Pay ACME [amend into stages]",
            ok(SMALL_PAYMENT),
            approval_timeout_seconds=TIMEOUT,
            stage_approvers=members,
        )
        pending = await pending_request(handle)
        call = pending.proposed_action.tool_call
        assert call is not None
        amended = pending.proposed_action.with_arguments(
            {**call.arguments, "amount_cents": 50_000_000}  # $500,000
        )
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE,
            decision_for(pending, approved=True, reviewer="dana").model_copy(
                update={"amended_action": amended}
            ),
        )
        for number, stage in enumerate(risk_policy.LARGE_AMOUNT_STAGES, start=1):
            status = await wait_until(
                lambda: status_of(handle),
                lambda s, stage=stage: (
                    s.current_stage is not None and s.current_stage.stage == stage
                ),
            )
            assert status.current_stage is not None and status.approval_request is not None
            child = runs.client.get_workflow_handle(status.current_stage.child_workflow_id)
            await wait_until(lambda: started_children(handle), lambda c, n=number: len(c) == n)
            request_id = status.approval_request.request_id
            if number == 1:
                with pytest.raises(WorkflowUpdateFailedError) as refused:
                    await child.execute_update(
                        SUBMIT_DECISION_UPDATE,
                        ApprovalDecision(request_id=request_id, approved=True, reviewer="dana"),
                    )
                cause = refused.value.cause
                assert isinstance(cause, ApplicationError) and cause.type == "DecisionRefused"
                assert "'dana' requested or amended this action and cannot approve it" in (
                    cause.message
                )
            recorded = await child.execute_update(
                SUBMIT_DECISION_UPDATE,
                ApprovalDecision(request_id=request_id, approved=True, reviewer=f"boss{number}"),
                result_type=ApprovalDecision,
            )
            assert recorded.reviewer == f"boss{number}" and recorded.decided_at is not None
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert [(s.stage, s.reviewer) for s in result.stages] == [
        ("manager", "boss1"),
        ("director", "boss2"),
        ("cfo", "boss3"),
    ]
    assert "approval_reopened" in events(result)
    assert result.execution is not None  # what the stages approved: the amendment
    assert result.proposed_action == amended
    assert result.execution.summary == "paid $500,000.00 to ACME from operating"


# --- 4. explicit settings are honoured ------------------------------------------------------


async def test_named_approvers_on_a_safe_request_are_asked(runs: TimeSkippingRuns) -> None:
    async with runs.worker():
        handle = await runs.start(
            "Summarise the guide [approvers on safe]", ok(SAFE), approvers=["bob"]
        )
        pending = await pending_request(handle)
        assert pending.approvers == ["bob"]
        assert risk_policy.EXPLICIT_SETTINGS_REASON in pending.risk_reasons
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE, decision_for(pending, approved=False, reviewer="bob")
        )
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED and result.execution is None


async def test_explicit_stages_on_a_safe_request_are_run(runs: TimeSkippingRuns) -> None:
    async with runs.worker():
        handle = await runs.start(
            "Summarise the guide [stages on safe]",
            ok(SAFE),
            approval_stages=["legal"],
            stage_approvers=STAGE_MEMBERS,
        )
        status = await wait_until(lambda: status_of(handle), lambda s: s.current_stage is not None)
        assert status.current_stage is not None
        await wait_until(lambda: started_children(handle), bool)
        await decide_stage_as_member(
            runs.client, status.current_stage.child_workflow_id, approved=False
        )
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert [(s.stage, s.approved, s.reviewer) for s in result.stages] == [
        ("legal", False, member_of("legal"))
    ]


# --- 5. stage IDs are safe ----------------------------------------------------------------


@workflow.defn(name="Squatter", sandboxed=False)
class Squatter:
    """Holds a workflow ID until told to let go (then ends normally: a run closed by
    terminate would leave the time-skipping server waiting on its workflow task)."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.done)

    @workflow.signal
    def leave(self) -> None:
        self.done = True


async def test_a_taken_stage_id_is_a_recorded_outcome_not_a_failed_run(
    runs: TimeSkippingRuns,
) -> None:
    """A stage's child ID names the round's request ID, made when the round starts, so the
    first stage's cannot be taken first; the second's can, once the first waits."""
    run_input = WorkflowInput(
        user_request="Pay ACME [taken stage id]",
        approval_stages=["legal", "security"],
        stage_approvers=STAGE_MEMBERS,
    )
    runs.llm_server.on(run_input.user_request, ok(RISKY))
    handle = await start_run(runs.client, runs.task_queue, runs.workflow_id, run_input)
    squatters = f"{runs.task_queue}-squatters"
    async with Worker(runs.client, task_queue=squatters, workflows=[Squatter]), runs.worker():
        status = await wait_until(lambda: status_of(handle), lambda s: s.current_stage is not None)
        assert status.current_stage is not None and status.approval_request is not None
        legal = status.current_stage.child_workflow_id
        taken = stage_child_id(runs.workflow_id, status.approval_request.request_id, 2, "security")
        squatter = await runs.client.start_workflow(Squatter.run, id=taken, task_queue=squatters)
        try:
            await wait_until(lambda: started_children(handle), bool)
            await decide_stage_as_member(runs.client, legal)
            result = await handle.result()
        finally:
            with contextlib.suppress(RPCError):  # the test server may have closed it
                await squatter.signal(Squatter.leave)
            # Its worker must stay until it has ended (or timed out: skipping, the
            # server may reach its run timeout first). Stopped with the leave task still
            # out, the worker left the squatter open with that task, and closing it then
            # held the time-skipping server's clock for every later test.
            with contextlib.suppress(WorkflowFailureError):
                await squatter.result()
    assert result.outcome == Outcome.STAGE_FAILED
    assert result.execution is None
    assert [(s.stage, s.approved) for s in result.stages] == [("legal", True), ("security", None)]
    (failure,) = details(result, "stage_failed")
    assert taken in failure and "already in use" in failure


@pytest.mark.parametrize(
    ("stages", "problem"),
    [
        (["legal", "legal"], "repeated: legal"),
        (["x" * 41], "should match pattern"),
        (["legal team"], "should match pattern"),
        (["../cfo"], "should match pattern"),
    ],
)
def test_unsafe_stage_names_are_refused_at_the_entrance(stages: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(")):
        WorkflowInput(user_request="Pay ACME", approval_stages=stages)


# --- 6. every ending is visible ------------------------------------------------------------


async def test_cancelling_a_waiting_run_records_cancelled(runs: TimeSkippingRuns) -> None:
    async with runs.worker():
        handle, _ = await waiting_run(runs, "Pay ACME [cancel waiting]")
        await handle.cancel()
        result = await handle.result()
    assert result.outcome == Outcome.CANCELLED
    assert result.execution is None
    assert events(result)[-1] == "cancelled"


def committed(request: ExecuteToolInput) -> ToolOutcome:
    """What the held tool reports once it lets the action commit."""
    preview = EffectPreview(
        tool=request.call.tool,
        summary="committed",
        affected=1,
        fingerprint=request.approved_fingerprint or "",
    )
    return ToolOutcome(
        idempotency_key=request.idempotency_key,
        tool=request.call.tool,
        status=ToolStatus.EXECUTED,
        summary="committed",
        preview=preview,
    )


def not_acted(request: ExecuteToolInput) -> ToolOutcome:
    """What the held tool reports when it ends without acting (the target said no)."""
    return ToolOutcome(
        idempotency_key=request.idempotency_key,
        tool=request.call.tool,
        status=ToolStatus.INFEASIBLE,
        summary="nothing done: the invoice is no longer open",
        preview=committed(request).preview,
    )


class HeldExecute:
    """An execute activity the test holds, then lets act, end without acting, or fail."""

    def __init__(self, acts: bool = True, fail: bool = False) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.release = asyncio.Event()
        self.acts = acts
        self.fail = fail

    @activity.defn(name="send_email")  # the risky proposal's tool
    async def execute_action(self, request: ExecuteToolInput) -> ToolOutcome:
        if self.fail:
            raise ApplicationError("the target system refused the action", non_retryable=True)
        self.started.set()
        while not self.release.is_set():
            activity.heartbeat()
            try:
                await asyncio.wait_for(self.release.wait(), timeout=0.2)
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return committed(request) if self.acts else not_acted(request)


@asynccontextmanager
async def worker_with(
    runs: TimeSkippingRuns, execute: "HeldExecute | RefusingTarget"
) -> AsyncIterator[Worker]:
    async with httpx2.AsyncClient() as http:
        notifier = WebhookNotifier(None, None, http)
        emailer = EmailNotifier(None)  # registered, as worker.py does
        async with Worker(
            runs.client,
            task_queue=runs.task_queue,
            workflows=[HumanInTheLoopWorkflow, ApprovalWorkflow],
            activities=[
                runs.analysis.propose_action,
                ApprovalNotices(notifier, emailer).send_approval_notices,
                notify_approval_needed,
                notifier.send_webhook_notice,
                emailer.send_email_notice,
                preview_tool_call,
                execute.execute_action,
            ],
            # A held action's heartbeats reach the server (and bring back a cancel) this
            # often, not at 80% of the execute step's heartbeat timeout.
            max_heartbeat_throttle_interval=timedelta(milliseconds=500),
        ) as worker:
            yield worker


async def approved_run(runs: TimeSkippingRuns, request: str) -> Run:
    handle, pending = await waiting_run(runs, request)
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True, reviewer="alice")
    )
    return handle


@pytest.mark.parametrize(
    ("acts", "outcome"),
    [
        pytest.param(True, Outcome.APPROVED, id="finish-approved"),
        pytest.param(False, Outcome.CANCELLED, id="stop-cancelled"),
    ],
)
async def test_cancelling_while_executing_waits_for_the_action(
    dev_runs: TimeSkippingRuns, acts: bool, outcome: Outcome
) -> None:
    """Never "cancelled" while the action commits: a cancel during execution is deferred
    (``cancel_deferred``) and the execution is never told to stop; an action that then
    acted is reported approved and executed, one that ended without acting cancelled."""
    execute = HeldExecute(acts=acts)
    async with worker_with(dev_runs, execute):
        handle = await approved_run(dev_runs, f"Pay ACME [cancel while executing, {acts}]")
        await asyncio.wait_for(execute.started.wait(), 30)
        await handle.cancel()
        await wait_until(
            lambda: status_of(handle),
            lambda s: "cancel_deferred" in [entry.event for entry in s.audit_trail],
        )
        execute.release.set()
        result = await handle.result()
    assert not execute.cancelled.is_set()  # shielded: the execution was never cancelled
    assert result.outcome == outcome
    assert (result.execution is not None) == acts
    assert "cancel_deferred" in events(result)
    assert events(result)[-1] == ("executed" if acts else "cancelled")


@pytest.mark.timeout(240)  # a real server, on a loaded machine
async def test_terminating_while_executing_leaves_the_status_truthful(
    dev_runs: TimeSkippingRuns,
) -> None:
    """Terminate runs no workflow code: the status attribute says what was decided (it was
    set with the decision, before execution began) and the pending list does not show it."""
    execute = HeldExecute()
    run_input = WorkflowInput(
        user_request="Pay ACME [terminate while executing]", approval_timeout_seconds=TIMEOUT
    )
    dev_runs.llm_server.on(run_input.user_request, ok(RISKY))
    async with worker_with(dev_runs, execute):
        handle = await start_run(
            dev_runs.client,
            dev_runs.task_queue,
            dev_runs.workflow_id,
            run_input,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(APPROVAL_STATUS, ApprovalStatus.PENDING.value)]
            ),
        )
        pending = await pending_request(handle)
        await wait_until(lambda: list_pending(dev_runs.client), lambda listed: handle.id in listed)
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True, reviewer="alice")
        )
        await asyncio.wait_for(execute.started.wait(), 30)
        await handle.terminate("withdrawn while executing")
        described = await handle.describe()
        await asyncio.wait_for(execute.cancelled.wait(), 30)  # the action is told to stop
    assert described.status == WorkflowExecutionStatus.TERMINATED
    assert described.typed_search_attributes.get(APPROVAL_STATUS) == ApprovalStatus.APPROVED.value
    await wait_until(lambda: list_pending(dev_runs.client), lambda listed: handle.id not in listed)


async def test_an_execution_that_fails_for_good_is_recorded(runs: TimeSkippingRuns) -> None:
    async with worker_with(runs, HeldExecute(fail=True)):
        handle = await approved_run(runs, "Pay ACME [execution fails]")
        result = await handle.result()
    assert result.outcome == Outcome.EXECUTION_FAILED
    assert result.decision is not None and result.decision.reviewer == "alice"
    (failure,) = details(result, "execution_failed")
    assert "the target system refused the action" in failure


class RefusingTarget:
    """A target system that is down for good: every try fails, retryably."""

    def __init__(self) -> None:
        self.tries = 0

    @activity.defn(name="send_email")  # the risky proposal's tool
    async def execute_action(self, request: ExecuteToolInput) -> ToolOutcome:
        self.tries += 1
        raise ApplicationError("the target system is unavailable")


async def test_an_execution_that_exhausts_its_retries_is_recorded(runs: TimeSkippingRuns) -> None:
    """Execute retries for the tool's persistence (skipped here), then the run records why."""
    target = RefusingTarget()
    async with worker_with(runs, target):
        handle = await approved_run(runs, "Pay ACME [execution retries run out]")
        result = await handle.result()
    assert result.outcome == Outcome.EXECUTION_FAILED
    assert result.execution is None and target.tries > 1
    (failure,) = details(result, "execution_failed")
    assert "the target system is unavailable" in failure
    approved = next(e.at for e in result.audit_trail if e.event == "decision_approved")
    failed = next(e.at for e in result.audit_trail if e.event == "execution_failed")
    assert failed - approved >= get_tool("send_email").execute_persistence - timedelta(minutes=1)


# --- 7. decisions are idempotent -------------------------------------------------------------


async def test_a_decision_sent_again_gets_the_first_answer(runs: TimeSkippingRuns) -> None:
    """The answer to the first send was lost: sending the same decision again is answered
    ``AlreadyApplied`` by the validator, and the client returns the vote as first counted
    (stamped with the workflow's time, whatever time the sender gave), not a refusal."""
    execute = HeldExecute()  # holds the run open while the decision is sent again
    async with worker_with(runs, execute):
        handle, pending = await waiting_run(runs, "Pay ACME [sent twice]")
        first = decision_for(pending, approved=True, reviewer="alice").model_copy(
            update={"decided_at": datetime(2026, 1, 1, tzinfo=UTC)}
        )
        applied = await deliver(runs.client, handle.id, first)
        await asyncio.wait_for(execute.started.wait(), 30)
        again = first.model_copy(update={"decided_at": datetime(2026, 1, 2, tzinfo=UTC)})
        with pytest.raises(WorkflowUpdateFailedError) as repeat:
            await handle.execute_update(SUBMIT_DECISION_UPDATE, again)
        answer = await deliver(runs.client, handle.id, again)
        execute.release.set()
        result = await handle.result()
    cause = repeat.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == ALREADY_APPLIED_ERROR
    assert not applied.earlier and answer.earlier
    assert answer.decision == applied.decision
    assert applied.decision.decided_at not in (first.decided_at, again.decided_at)
    assert result.outcome == Outcome.APPROVED
    assert result.votes == [applied.decision]
    assert "decision_refused" not in events(result)
    assert "decision_duplicate" not in events(result)
