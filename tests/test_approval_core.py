"""The approval contract under attack: each confirmed break of the old core, as a test.

An action runs only if the right people approved that action before the deadline. These
tests run on a real dev server (its clock is the wall clock, resets and history folding
are real), with the project's own worker wiring in this process, each on its own task
queue. Each is named after what it protects.
"""

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingActivityState, WorkflowTaskFailedCause
from temporalio.api.workflowservice.v1 import (
    ResetWorkflowExecutionRequest,
    SignalWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer, fallback_tool_call, ok
from constants import (
    APPROVAL_DECISION_SIGNAL,
    DECISION_REFUSED_ERROR,
    STATUS_QUERY,
    SUBMIT_DECISION_UPDATE,
)
from models.models import (
    ApprovalDecision,
    EscalationPolicy,
    Outcome,
    VotingPolicy,
    WorkflowInput,
    WorkflowResult,
)
from tests.helpers import (
    Run,
    start_run,
    status_of,
    wait_until,
)
from tests.record_histories import decision_for, pending_request, recorded
from tools.database import connect, database_path, ensure_database
from worker_setup import build_worker
from workflows.approval_workflow import ApprovalWorkflow
from workflows.human_in_the_loop_workflow import HumanInTheLoopWorkflow

pytestmark = pytest.mark.timeout(180)
# A deadline the test waits out. What must come before it (the request opening, a decision,
# a worker stopping) takes 0.1-0.3 s at load 9 on two cores, and ``until_past`` fails the
# test if it did not.
SHORT_DEADLINE = 2


@pytest.fixture
def core(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
) -> "CoreRuns":
    return CoreRuns(dev_server.client, analysis_activities, llm_server)


class CoreRuns:
    """Runs on the dev server, served by workers this test starts and stops at will."""

    def __init__(self, client: Client, analysis: AnalysisActivities, llm: FakeOpenAIServer):
        self.client = client
        self.analysis = analysis
        self.llm = llm
        self.task_queue = f"core-{uuid.uuid4().hex[:10]}"

    def worker(self) -> Worker:
        return build_worker(self.client, self.task_queue, self.analysis)

    async def start(
        self,
        text: str,
        proposal: dict[str, Any] | None = None,
        task_timeout: timedelta | None = None,
        **fields: Any,
    ) -> Run:
        """A run whose model proposes ``proposal`` (an e-mail to one address by default);
        ``task_timeout``, the run's workflow task timeout (Temporal's default if None)."""
        self.llm.on(text, ok(proposal or risky(fallback_tool_call(text))))
        run_input = WorkflowInput(user_request=text, **fields)
        workflow_id = f"core-{uuid.uuid4().hex[:10]}"
        return await start_run(
            self.client, self.task_queue, workflow_id, run_input, task_timeout=task_timeout
        )


def replayer() -> Replayer:
    return Replayer(
        workflows=[HumanInTheLoopWorkflow, ApprovalWorkflow], data_converter=pydantic_data_converter
    )


def risky(tool_call: dict[str, Any]) -> dict[str, Any]:
    return {
        "action_type": tool_call["tool"],
        "description": f"Run {tool_call['tool']}",
        "reasoning": "requested",
        "risky_action": True,
        "tool_call": tool_call,
    }


@asynccontextmanager
async def serving(core: CoreRuns) -> AsyncIterator[None]:
    async with core.worker():
        yield


async def raw_signal(client: Client, handle: Run, name: str, payload: Payload) -> None:
    """A signal whose payload no codec touched: what a forger with namespace access sends."""
    await client.workflow_service.signal_workflow_execution(
        SignalWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            signal_name=name,
            input=Payloads(payloads=[payload]),
            identity="forger",
            request_id=str(uuid.uuid4()),
        )
    )


async def until_past(deadline: datetime) -> None:
    """Wait (wall clock: the dev server's clock) until ``deadline`` has passed. What the
    test did so far was meant to happen before it: if it did not, the test is not showing
    what it says, so it fails."""
    remaining = (deadline - datetime.now(UTC)).total_seconds()
    assert remaining > 0, "the steps meant to come before the deadline came after it: too slow"
    await asyncio.sleep(remaining + 0.2)


async def activity_names(handle: Run) -> list[str]:
    history = await handle.fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]


def events(result: WorkflowResult) -> list[str]:
    return [entry.event for entry in result.audit_trail]


async def test_a_late_approval_never_executes_after_an_undecodable_signal(core: CoreRuns) -> None:
    """Worker down across the deadline: an undecodable signal before it, a valid approval
    after it. The approval is handled with the deadline in one task: the request times out."""
    async with serving(core):
        handle = await core.start(
            "Late approval after a forged signal", approval_timeout_seconds=SHORT_DEADLINE
        )
        request = await pending_request(handle)
    forged = Payload(metadata={"encoding": b"binary/unknown"}, data=b"\x00")
    await raw_signal(core.client, handle, APPROVAL_DECISION_SIGNAL, forged)
    await until_past(request.deadline)
    await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))
    async with serving(core):
        result = await handle.result()
    assert result.outcome == Outcome.TIMED_OUT, result.message
    assert result.execution is None
    assert "send_email" not in await activity_names(handle)
    assert "decision_late" in events(result)


async def test_a_late_update_is_refused_to_its_sender(core: CoreRuns) -> None:
    """An update a worker receives after the deadline is refused, and its sender told."""
    async with serving(core):
        handle = await core.start("Late update", approval_timeout_seconds=SHORT_DEADLINE)
        request = await pending_request(handle)
    await until_past(request.deadline)
    async with serving(core):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                SUBMIT_DECISION_UPDATE, decision_for(request, approved=True)
            )
        result = await handle.result()
    assert "after the deadline" in str(refused.value.cause)
    assert result.outcome in (Outcome.TIMED_OUT,)
    assert result.execution is None


async def test_a_cancel_during_an_escalation_notice_ends_the_run_cancelled(
    core: CoreRuns, slow_webhook: "SlowWebhook", monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reminder is in flight (a webhook that does not answer) when the run is
    cancelled: the cancellation is the run's ending, not a notice failure to wait past."""
    monkeypatch.setenv("HITL_WEBHOOK_URL", slow_webhook.url)
    async with serving(core):
        handle = await core.start(
            "Cancel during the reminder",
            approval_timeout_seconds=120,
            approvers=["alice"],
            escalation=EscalationPolicy(after_seconds=1, approvers=["boss"]),
        )
        await wait_until(lambda: asyncio.sleep(0, slow_webhook.requests), lambda n: n >= 2)
        await handle.cancel()
        result = await handle.result()
    assert result.outcome == Outcome.CANCELLED, result.message
    assert result.execution is None
    assert "notification_failed" not in events(result)


async def test_a_stage_decision_of_one_round_cannot_approve_the_next(core: CoreRuns) -> None:
    """Round 2 of a staged request (the data drifted after round 1's approval) runs in
    children of its own IDs: round 1's manager stage, signalled again, decides nothing."""
    text = "Staged delete that drifts"
    email = f"round-{uuid.uuid4().hex[:8]}@example.com"
    add_customer(email)
    where = [{"column": "email", "op": "=", "value": email}]
    call = {"tool": "delete_records", "arguments": {"table": "customers", "filters": where}}
    async with serving(core):
        handle = await core.start(
            text, risky(call), approval_stages=["manager", "director"], stage_approvers=ROLES
        )
        first = await stage_child(core, handle, "manager")
        await decide_stage(handle, first, "mia")
        director = await stage_child(core, handle, "director")
        add_customer(email)  # the data changes under the approval
        await decide_stage(handle, director, "carol")
        second = await wait_until(
            lambda: stage_child(core, handle, "manager"), lambda child: child.id != first.id
        )
        with contextlib.suppress(Exception):  # round 1's child is closed: refused by Temporal
            await decide_stage(handle, first, "mia")
        status = await status_of(handle)
        assert status.current_stage is not None and status.current_stage.stage == "manager"
        assert await second.query(STATUS_QUERY) is None  # round 2's manager still waits
        await handle.cancel()
        await handle.result()


ROLES = {"manager": ["mia"], "director": ["carol"], "cfo": ["dana"]}


async def decide_stage(handle: Run, child: Any, reviewer: str, *, approved: bool = True) -> None:
    """Decide the stage ``child`` runs as one of its members, for the request ``handle``
    shows now, as the inbox does."""
    request = (await status_of(handle)).approval_request
    assert request is not None
    decision = ApprovalDecision(request_id=request.request_id, approved=approved, reviewer=reviewer)
    await child.execute_update(SUBMIT_DECISION_UPDATE, decision)


def add_customer(email: str) -> None:
    with closing(connect(database_path())) as db, db:
        db.execute(
            "INSERT INTO customers (name, email, country, status, created_at) VALUES "
            "('Round Test', ?, 'DE', 'inactive', '2026-12-01')",
            (email,),
        )


async def stage_child(core: CoreRuns, handle: Run, stage: str) -> Any:
    status = await wait_until(
        lambda: status_of(handle),
        lambda s: s.current_stage is not None and s.current_stage.stage == stage,
    )
    assert status.current_stage is not None
    child = core.client.get_workflow_handle(status.current_stage.child_workflow_id)
    await wait_until(lambda: child_waits(child), bool)
    return child


async def child_waits(child: Any) -> bool:
    with contextlib.suppress(Exception):
        history = await child.fetch_history()
        return any(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in history.events)
    return False


class SlowWebhook:
    """A webhook that answers its first request at once and holds every later one until the
    test ends: a reminder that is in flight for as long as the test wants."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests = 0
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.requests += 1
                if owner.requests > 1:
                    owner.release.wait(timeout=60)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def slow_webhook() -> Any:
    webhook = SlowWebhook()
    yield webhook
    webhook.stop()


def open_invoice_under(limit_cents: int) -> int:
    ensure_database(database_path())
    with closing(connect(database_path())) as db:
        (invoice,) = db.execute(
            "SELECT MAX(id) FROM invoices WHERE status = 'open' AND amount_cents < ?",
            (limit_cents,),
        ).fetchone()
    return int(invoice)


def payments_for(invoice: int) -> int:
    with closing(connect(database_path())) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM payments WHERE invoice_id = ?", (invoice,)
        ).fetchone()
    return int(count)


async def started_activity(handle: Run, name: str) -> bool:
    """Whether a worker is running activity ``name`` now (history records the start only
    once the attempt ends, so ask for the run's pending activities)."""
    pending = (await handle.describe()).raw_description.pending_activities
    return any(
        activity.activity_type.name == name
        and activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for activity in pending
    )


async def test_a_cancel_while_a_payment_waits_for_the_database_never_hides_the_payment(
    core: CoreRuns,
) -> None:
    """The approved payment waits for the database's write lock when the run is cancelled.
    It is never abandoned to commit after "nothing was executed": it finishes, and the run
    says so; the database and the result agree."""
    invoice = open_invoice_under(5_000_00)
    call = {
        "tool": "pay_invoice",
        "arguments": {"invoice_id": invoice, "from_account": "operating"},
    }
    async with serving(core):
        handle = await core.start(f"Pay invoice {invoice} now", risky(call))
        request = await pending_request(handle)
        with closing(sqlite3.connect(database_path(), isolation_level=None)) as lock:
            lock.execute("BEGIN IMMEDIATE")  # holds the write lock the payment needs
            await handle.execute_update(
                SUBMIT_DECISION_UPDATE, decision_for(request, approved=True)
            )
            await wait_until(lambda: started_activity(handle, "pay_invoice"), bool)
            await handle.cancel()
            await wait_until(lambda: status_of(handle), lambda s: recorded(s, "cancel_deferred"))
            lock.execute("COMMIT")
        result = await handle.result()
    assert payments_for(invoice) == 1
    assert result.outcome == Outcome.APPROVED, result.message
    assert result.execution is not None and "paid" in result.execution.summary
    assert "cancel_deferred" in events(result)


@pytest.mark.parametrize("point", ["before the stage started", "while the stage waits"])
async def test_resetting_a_staged_run_replays_and_still_decides(core: CoreRuns, point: str) -> None:
    """A reset of the parent once a stage has started: the child's ID is rebuilt from the
    recorded request ID (not the run ID a reset changes), so the new run replays, and the
    request is still decided stage by stage."""
    async with serving(core):
        handle = await core.start(
            f"Reset me {point}", approval_stages=["manager"], stage_approvers=ROLES
        )
        await stage_child(core, handle, "manager")
        history = (await handle.fetch_history()).events
        initiated = next(
            e.event_id
            for e in history
            if e.HasField("start_child_workflow_execution_initiated_event_attributes")
        )
        completed = [
            e.event_id
            for e in history
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            and (e.event_id < initiated or point == "while the stage waits")
        ]
        reset = await reset_to(core, handle, completed[-1])
        child = await stage_child(core, reset, "manager")
        await decide_stage(reset, child, "mia", approved=False)
        result = await reset.result()
    assert result.outcome == Outcome.REJECTED, result.message
    reset_cause = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
    failures = [
        e
        for e in (await reset.fetch_history()).events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        and e.workflow_task_failed_event_attributes.cause != reset_cause
    ]
    assert not failures


async def reset_to(core: CoreRuns, handle: Run, task_completed: int) -> Run:
    """Reset the run to the workflow task that ``task_completed`` completed; the new run."""
    response = await core.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=core.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            reason="test: reset",
            workflow_task_finish_event_id=task_completed,
            request_id=str(uuid.uuid4()),
        )
    )
    return core.client.get_workflow_handle(
        handle.id, run_id=response.run_id, result_type=WorkflowResult
    )


async def test_replay_judges_every_decision_as_it_was_judged_live(core: CoreRuns) -> None:
    """Refused signals (tasks with no commands, which a replay may fold into the next
    task, at its later time) and a vote counted before the deadline: replayed on a fresh
    worker after the deadline, the run decides the same and its status answers."""
    async with serving(core):
        handle = await core.start(
            "Replay the refusals",
            approval_timeout_seconds=SHORT_DEADLINE,
            approvers=["alice", "bob"],
            voting=VotingPolicy(required_approvals=2),
        )
        request = await pending_request(handle)
        wrong = decision_for(request, approved=True).model_copy(update={"request_id": "nope"})
        await handle.signal(APPROVAL_DECISION_SIGNAL, wrong)
        await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))
        await wait_until(lambda: status_of(handle), lambda s: len(s.votes) == 1)
        result = await handle.result()
    assert result.outcome == Outcome.TIMED_OUT
    await replayer().replay_workflow(await handle.fetch_history())  # raises if it differs
    async with serving(core):  # a new worker rebuilds the closed run to answer
        replayed = await status_of(handle)
    assert replayed.votes == result.votes
    assert replayed.audit_trail == result.audit_trail


async def test_refused_updates_spend_neither_history_nor_the_update_budget(
    core: CoreRuns,
) -> None:
    """Decisions that cannot count are rejected by the update's validator: they leave no
    event, so no number of them can fill the run's history or exhaust its update limit."""
    async with serving(core):
        handle = await core.start("Flood the updates", approvers=["alice"])
        request = await pending_request(handle)
        before = len((await handle.fetch_history()).events)
        for n in range(60):
            bogus = decision_for(request, approved=True, reviewer=f"mallory{n}", notes=f"#{n}")
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(SUBMIT_DECISION_UPDATE, bogus)
            assert refused.value.cause.type == DECISION_REFUSED_ERROR
        assert len((await handle.fetch_history()).events) == before
        assert (await status_of(handle)).refused_updates == 60
        vote = await handle.execute_update(
            SUBMIT_DECISION_UPDATE,
            decision_for(request, approved=False),
            result_type=ApprovalDecision,
        )
        result = await handle.result()
    assert vote.reviewer == "alice"
    assert result.outcome == Outcome.REJECTED


async def test_a_terminated_stage_is_a_recorded_stage_failed_ending(core: CoreRuns) -> None:
    async with serving(core):
        handle = await core.start(
            "Terminate my stage", approval_stages=["manager", "cfo"], stage_approvers=ROLES
        )
        child = await stage_child(core, handle, "manager")
        await child.terminate("an operator ended it")
        result = await handle.result()
    assert result.outcome == Outcome.STAGE_FAILED, result.message
    assert result.execution is None
    assert "stage_failed" in events(result)


async def test_a_cancel_during_analysis_ends_with_a_result_and_its_audit_trail(
    core: CoreRuns,
) -> None:
    text = "Cancel me while the model thinks"
    core.llm.on(text, ok(risky(fallback_tool_call(text)), delay_seconds=30))
    async with serving(core):
        handle = await start_run(
            core.client,
            core.task_queue,
            f"core-{uuid.uuid4().hex[:8]}",
            WorkflowInput(user_request=text),
        )
        await wait_until(lambda: started_activity(handle, "propose_action"), bool)
        await handle.cancel()
        result = await handle.result()
    assert result.outcome == Outcome.CANCELLED
    assert events(result) == ["cancelled"]


@pytest.mark.parametrize("when", ["before the deadline", "after the deadline"])
async def test_a_reset_judges_redelivered_decisions_by_when_it_handles_them(
    core: CoreRuns, when: str
) -> None:
    """A reset hands the new run the decisions after its point again, stamped with the
    reset's time. Before the deadline, the on-time rejection still counts. After it, the
    run cannot tell an on-time decision from a late one without reading its first run's
    history, so it fails closed: the request times out, and nothing is wedged."""
    # Before the deadline, the reset run must be decided before it: far off, never waited.
    deadline = SHORT_DEADLINE if when == "after the deadline" else 300
    async with serving(core):
        handle = await core.start(f"Reset {when}", approval_timeout_seconds=deadline)
        request = await pending_request(handle)
        await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(request, approved=False))
        assert (await handle.result()).outcome == Outcome.REJECTED
        if when == "after the deadline":
            await until_past(request.deadline)
        history = (await handle.fetch_history()).events
        opened = next(
            i for i, e in enumerate(history) if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        )
        task = next(  # the task that opened the request: the decision comes after it
            e.event_id
            for e in history[opened:]
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        reset = await reset_to(core, handle, task)
        result = await reset.result()
    expected = Outcome.REJECTED if when == "before the deadline" else Outcome.TIMED_OUT
    assert result.outcome == expected, result.message
    assert result.execution is None


async def test_a_failing_reminder_never_holds_the_request_past_its_deadline(
    core: CoreRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The escalation reminder's webhook keeps failing: its retries go on beside the wait,
    and the run closes in the task that handles the deadline, not after the retries."""
    monkeypatch.setenv("HITL_WEBHOOK_URL", "http://127.0.0.1:9/refused")
    async with serving(core):
        handle = await core.start(
            "Failing reminder",
            approval_timeout_seconds=SHORT_DEADLINE,
            approvers=["alice"],
            escalation=EscalationPolicy(after_seconds=1, approvers=["boss"]),
        )
        result = await handle.result()
    assert result.outcome == Outcome.TIMED_OUT
    history = (await handle.fetch_history()).events
    fired = max(
        i for i, e in enumerate(history) if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    )
    after = [e.event_type for e in history[fired:]]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in after
    assert after.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1


async def test_decided_at_is_the_workflows_time_not_the_senders_claim(core: CoreRuns) -> None:
    async with serving(core):
        handle = await core.start("Backdate my approval")
        request = await pending_request(handle)
        claimed = datetime(2020, 1, 1, tzinfo=UTC)
        backdated = decision_for(request, approved=False).model_copy(update={"decided_at": claimed})
        vote = await handle.execute_update(
            SUBMIT_DECISION_UPDATE, backdated, result_type=ApprovalDecision
        )
        result = await handle.result()
    assert vote.decided_at is not None and vote.decided_at >= request.requested_at
    assert result.decision is not None and result.decision.decided_at == vote.decided_at


async def test_a_flood_of_signals_moves_the_waiting_request_to_a_new_run(
    small_history_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
) -> None:
    """Refused signals grow a run's history (signals are stored whatever they say). Before
    that can bite, the run continues as new, carrying the request as it was: the same
    request ID and deadline, the votes and the audit trail; it is then decided there."""
    core = CoreRuns(small_history_server.client, analysis_activities, llm_server)
    async with serving(core):
        handle = await core.start(
            "Flood me with signals",
            approvers=["alice", "bob"],
            voting=VotingPolicy(required_approvals=2),
        )
        request = await pending_request(handle)
        await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))
        wrong = decision_for(request, approved=True, reviewer="mallory")
        for _ in range(40):
            await handle.signal(APPROVAL_DECISION_SIGNAL, wrong)
        latest = core.client.get_workflow_handle(handle.id, result_type=WorkflowResult)
        moved = await wait_until(
            lambda: status_of(latest), lambda s: recorded(s, "continued_as_new") > 0
        )
        assert moved.approval_request is not None
        assert moved.approval_request.request_id == request.request_id
        assert moved.approval_request.deadline == request.deadline
        assert [vote.reviewer for vote in moved.votes] == ["alice"]
        bob = decision_for(request, approved=True, reviewer="bob")
        await latest.execute_update(SUBMIT_DECISION_UPDATE, bob)
        result = await latest.result()
    assert result.outcome == Outcome.APPROVED, result.message
    assert [vote.reviewer for vote in result.votes] == ["alice", "bob"]
    assert events(result).count("approval_requested") == 1
    for run in (handle, latest):  # both runs replay as they ran
        await replayer().replay_workflow(await run.fetch_history())
