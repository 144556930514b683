"""Record one workflow history per main path, for the replay (determinism) tests.

    uv run python -m tests.record_histories [PATH ...]

runs every main path (or only those named) on a time-skipping test server with the local
LLM, through the real worker wiring, and writes each history to
``tests/histories/<path>.json``; a staged path's stages (``ApprovalWorkflow`` children) go
to ``tests/histories/children/<path>/<stage>.json``. These are today's paths, each run
holding the live version's marker. A versioned change (``workflows/versions.py``) keeps
the histories its old branches made (``tests/histories/1.0/``) until it is retired.
``tests/test_replay.py`` replays the committed files so that an accidental change that would
break running workflows fails the build. The path-running code is shared with the tests.
"""

import asyncio
import logging
import os
import sqlite3
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
from openai import AsyncOpenAI
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.propose_action import AnalysisActivities
from activities.send_webhook_notice import WebhookNotifier
from benchmarks.fake_openai import FakeOpenAIServer, Reply, ok
from console_exit import exit_process
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVE_SIGNAL,
    STATE_DIR_ENV,
    SUBMIT_DECISION_UPDATE,
    WORKFLOW_ID_PREFIX,
)
from models.limits import (
    MAX_ITEMISED_REFUSALS,
    MAX_NOTES_CHARS,
    MAX_REQUEST_CHARS,
    MAX_TOOL_CALL_BYTES,
)
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationPolicy,
    Outcome,
    ProposedAction,
    VotingPolicy,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from tests.helpers import (
    LOCAL_ACTIVITY_MARKER,
    TEMPORAL_TEST_SERVER,
    TEST_MODEL,
    Run,
    is_running,
    start_run,
    status_of,
    wait_until,
)
from tools.database import database_path
from worker_setup import build_worker

HISTORIES_DIR = Path(__file__).resolve().parent / "histories"
CHILD_HISTORIES_DIR = HISTORIES_DIR / "children"
# Histories 1.0 recorded of the paths a live version changed, kept as they were (this
# script records today's paths only) until that version is retired.
HISTORIES_1_0_DIR = HISTORIES_DIR / "1.0"
RECORDING_TAG = "recorded"
APPROVAL_TIMEOUT_SECONDS = 300
ESCALATION_AFTER_SECONDS = 60
VOTERS = ("alice", "bob", "carol")
STAGES = ("manager", "director")
# Who approves each of STAGES: one member a stage, nobody in two (one person, one stage).
STAGE_APPROVERS = {"manager": ["mia"], "director": ["carol"]}
# The first of the test customers (numbered after the 2,000 seeded ones): an edit narrows
# the deletion of all of them to this one.
ONE_TEST_CUSTOMER = {
    "table": "customers",
    "filters": [{"column": "id", "op": "=", "value": "2001"}],
}


@dataclass(frozen=True)
class PathRun:
    """What a person deciding a path acts on: the run, and the time-skipping environment,
    whose client reaches a stage's child workflow and whose clock can be moved ahead."""

    env: WorkflowEnvironment
    handle: Run

    @property
    def client(self) -> Client:
        return self.env.client


Decide = Callable[[PathRun], Awaitable[None]]


def main_workflow_id(path_name: str, tag: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}-{path_name}-{tag}"


def stage_workflow_id(workflow_id: str, stage: str) -> str:
    """The ID a committed stage history is replayed under (its code never reads it)."""
    return f"{workflow_id}-{stage}"


async def started_children(handle: WorkflowHandle) -> list[str]:
    """The child workflow IDs a run started, in order (one per stage it reached); none
    while the run itself is not there yet (a script may still be starting it)."""
    try:
        history = await handle.fetch_history()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return []
    return [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for event in history.events
        if event.HasField("start_child_workflow_execution_initiated_event_attributes")
    ]


def recorded(status: WorkflowStatus, event: str) -> int:
    """How many times ``event`` is in the run's audit trail."""
    return [entry.event for entry in status.audit_trail].count(event)


async def pending_request(handle: Run) -> ApprovalRequest:
    """Wait until the run has asked for a decision and return what the approver is shown.

    Waits for the notices to be settled too: they are sent alongside the wait, and a
    decision that arrives while one is still being sent is valid but cancels it, which adds
    ``notification_cancelled`` to the trail the tests compare.
    """
    status = await wait_until(
        lambda: status_of(handle),
        lambda s: (
            s.state == WorkflowState.AWAITING_APPROVAL and recorded(s, "approval_requested") > 0
        ),
    )
    if status.current_stage is None:  # a staged run's notices are its stages' own
        await wait_until(lambda: notices_settled(handle), bool)
    assert status.approval_request is not None, status
    return status.approval_request


NOTICE_ACTIVITIES = {
    "send_approval_notices",
    "notify_approval_needed",
    "send_webhook_notice",
    "send_email_notice",
}
ACTIVITY_CLOSED = (
    "activity_task_completed_event_attributes",
    "activity_task_failed_event_attributes",
    "activity_task_timed_out_event_attributes",
    "activity_task_canceled_event_attributes",
)


async def notices_settled(handle: WorkflowHandle) -> bool:
    """Whether the run has sent its opening notice (a local activity, recorded with the
    deadline's timer) and every notice it retried has closed, read from history (the status
    tells of failures only, not of notices that went out)."""
    scheduled: set[int] = set()
    closed: set[int] = set()
    events = (await handle.fetch_history()).events
    if not any(
        event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
        for event in events
        if event.HasField("marker_recorded_event_attributes")
    ):  # the opening notice's (a version's patch marker is one too)
        return False
    for event in events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            activity = event.activity_task_scheduled_event_attributes.activity_type.name
            if activity in NOTICE_ACTIVITIES:
                scheduled.add(event.event_id)
        for name in ACTIVITY_CLOSED:
            if event.HasField(name):
                closed.add(getattr(event, name).scheduled_event_id)
    return scheduled <= closed


async def wait_for_refusals(handle: Run, count: int) -> WorkflowStatus:
    """Signals are fire-and-forget: wait until the run has recorded ``count`` refusals."""
    return await wait_until(
        lambda: status_of(handle), lambda s: recorded(s, "decision_refused") >= count
    )


def decision_for(
    request: ApprovalRequest,
    *,
    approved: bool,
    reviewer: str = "alice",
    notes: str = "",
    amended_action: ProposedAction | None = None,
) -> ApprovalDecision:
    return ApprovalDecision(
        request_id=request.request_id,
        approved=approved,
        reviewer=reviewer,
        reviewer_notes=notes,
        amended_action=amended_action,
    )


async def timers_started(handle: WorkflowHandle) -> int:
    history = await handle.fetch_history()
    return sum(event.event_type == EventType.EVENT_TYPE_TIMER_STARTED for event in history.events)


async def wait_for_timers(handle: WorkflowHandle, count: int) -> None:
    """Wait until the run has started ``count`` durable timers: it parks on one once its
    notice is out, so a decision sent after that lands at the same place in every recording."""
    await wait_until(lambda: timers_started(handle), lambda started: started >= count)


async def _approve_by_update(run: PathRun) -> None:
    request = await pending_request(run.handle)
    decision = decision_for(request, approved=True, notes="Looks good")
    await run.handle.execute_update(SUBMIT_DECISION_UPDATE, decision)


async def _reject_by_update(run: PathRun) -> None:
    request = await pending_request(run.handle)
    decision = decision_for(request, approved=False, notes="Not during the sale")
    await run.handle.execute_update(SUBMIT_DECISION_UPDATE, decision)


async def _refuse_then_approve(run: PathRun) -> None:
    """A decision for another request (an update: refused by its validator, so not in
    history) and a signal of the wrong shape (recorded), then a valid signal."""
    handle = run.handle
    request = await pending_request(handle)
    wrong = decision_for(request, approved=True).model_copy(update={"request_id": "not-it"})
    try:
        await handle.execute_update(SUBMIT_DECISION_UPDATE, wrong)
    except WorkflowUpdateFailedError:
        pass
    else:
        raise RuntimeError("a decision for another request was applied")
    await handle.signal(APPROVAL_DECISION_SIGNAL, True)
    await wait_for_refusals(handle, 1)
    await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))


def amended_call_over_limit(request: ApprovalRequest) -> ApprovalDecision:
    """An approval amending the tool call to one byte over its limit, as JSON."""
    call = request.proposed_action.tool_call
    assert call is not None
    empty = call.model_copy(update={"arguments": {**call.arguments, "body": ""}})
    body = "b" * (MAX_TOOL_CALL_BYTES + 1 - len(empty.model_dump_json().encode()))
    longer = call.model_copy(update={"arguments": {**call.arguments, "body": body}})
    amended = request.proposed_action.model_copy(update={"tool_call": longer})
    return decision_for(request, approved=True, amended_action=amended)


async def _refuse_over_limits_then_approve(run: PathRun) -> None:
    """Notes one character over the limit, by update and by signal, an amended tool call
    over its limit, then enough refused
    decisions that the trail starts counting them, then a valid approval."""
    handle = run.handle
    request = await pending_request(handle)
    too_long = decision_for(request, approved=True, notes="n" * (MAX_NOTES_CHARS + 1))
    try:
        await handle.execute_update(SUBMIT_DECISION_UPDATE, too_long)
    except WorkflowUpdateFailedError:
        pass
    else:
        raise RuntimeError("a decision over the notes limit was applied")
    await handle.signal(APPROVAL_DECISION_SIGNAL, too_long)
    await handle.signal(APPROVAL_DECISION_SIGNAL, amended_call_over_limit(request))
    wrong = decision_for(request, approved=True).model_copy(update={"request_id": "not-it"})
    for _ in range(MAX_ITEMISED_REFUSALS):
        await handle.signal(APPROVAL_DECISION_SIGNAL, wrong)
    await wait_until(lambda: status_of(handle), lambda s: recorded(s, "not_itemised") > 0)
    await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))


async def _approve_by_shorthand(run: PathRun) -> None:
    await pending_request(run.handle)
    await run.handle.signal(APPROVE_SIGNAL, True)


async def _vote(handle: Run, request: ApprovalRequest, reviewer: str, approved: bool) -> None:
    """One approver's vote, through the update, as ``send_approval`` sends it."""
    decision = decision_for(request, approved=approved, reviewer=reviewer)
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)


async def _approve_by_quorum(run: PathRun) -> None:
    """Two of the three approve; the first vote alone leaves the run waiting."""
    request = await pending_request(run.handle)
    await _vote(run.handle, request, VOTERS[0], True)
    await _vote(run.handle, request, VOTERS[1], True)


async def _veto(run: PathRun) -> None:
    """An approval, then one rejection: the rejection vetoes the request."""
    request = await pending_request(run.handle)
    await _vote(run.handle, request, VOTERS[0], True)
    await _vote(run.handle, request, VOTERS[1], False)


async def _escalate_then_approve(run: PathRun) -> None:
    """Nobody decides in time, so the request escalates; the second tier approves.

    Two timers: the escalation's, then (after the reminder is out) the deadline's.
    """
    request = await pending_request(run.handle)
    await run.env.sleep(ESCALATION_AFTER_SECONDS + 1)
    await wait_for_timers(run.handle, 2)
    await _vote(run.handle, request, "boss", True)


async def waiting_stage(run: PathRun, stage: str) -> WorkflowHandle:
    """Wait until the run waits on ``stage`` and that stage's child waits for its decision
    (its notice out, its deadline timer started); return the child to signal."""
    status = await wait_until(
        lambda: status_of(run.handle),
        lambda s: s.current_stage is not None and s.current_stage.stage == stage,
    )
    assert status.current_stage is not None, status
    child = run.client.get_workflow_handle(status.current_stage.child_workflow_id)
    await wait_until(lambda: is_running(child), bool)
    await wait_for_timers(child, 1)
    return child


async def _decide_stages(run: PathRun, *verdicts: bool) -> None:
    """Decide the stages in order, as each stage's member does (send_approval, the inbox):
    the decision update to its child, naming the stage it decides."""
    for stage, approved in zip(STAGES, verdicts, strict=False):
        child = await waiting_stage(run, stage)
        request = (await status_of(run.handle)).approval_request
        assert request is not None
        decision = decision_for(request, approved=approved, reviewer=STAGE_APPROVERS[stage][0])
        await child.execute_update(
            SUBMIT_DECISION_UPDATE, decision.model_copy(update={"stage": stage})
        )


async def _approve_every_stage(run: PathRun) -> None:
    await _decide_stages(run, True, True)


async def _reject_at_the_second_stage(run: PathRun) -> None:
    await _decide_stages(run, True, False)


async def _approve_with_edits(run: PathRun) -> None:
    """dana narrows the deletion of the test customers to one of them: her edited call is
    previewed and asked about again (her approval does not carry it), and erin's approval
    executes it."""
    request = await pending_request(run.handle)
    narrowed = request.proposed_action.with_arguments(ONE_TEST_CUSTOMER)
    decision = decision_for(request, approved=True, reviewer="dana", amended_action=narrowed)
    await run.handle.execute_update(SUBMIT_DECISION_UPDATE, decision)
    reopened = await wait_until(
        lambda: status_of(run.handle),
        lambda s: (
            s.approval_request is not None
            and s.approval_request.request_id != request.request_id
            and recorded(s, "approval_requested") == 2
        ),
    )
    assert reopened.approval_request is not None
    await wait_for_timers(run.handle, 2)
    again = decision_for(reopened.approval_request, approved=True, reviewer="erin")
    await run.handle.execute_update(SUBMIT_DECISION_UPDATE, again)


async def _cancel_while_waiting(run: PathRun) -> None:
    await pending_request(run.handle)
    await wait_for_timers(run.handle, 1)
    await run.handle.cancel()


async def _bob_approves(run: PathRun) -> None:
    request = await pending_request(run.handle)
    await wait_for_timers(run.handle, 1)
    decision = decision_for(request, approved=True, reviewer="bob")
    await run.handle.execute_update(SUBMIT_DECISION_UPDATE, decision)


async def _drift_then_approve(run: PathRun) -> None:
    """The rows change after the preview: the approved effect is not run; the run asks
    again with the fresh preview, and that one is approved."""
    request = await pending_request(run.handle)
    with closing(sqlite3.connect(database_path())) as db, db:
        db.execute(
            "INSERT INTO customers (name, email, country, status, created_at) VALUES "
            "('Late Arrival', 'late@example.com', 'ES', 'inactive', '2026-11-30')"
        )
    await run.handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(request, approved=True))
    fresh = await wait_until(
        lambda: pending_request(run.handle), lambda again: again.request_id != request.request_id
    )
    decision = decision_for(fresh, approved=True, reviewer="bob")
    await run.handle.execute_update(SUBMIT_DECISION_UPDATE, decision)


@dataclass(frozen=True)
class MainPath:
    """One way a run can go: the request, how a person decides (if at all), the outcome."""

    name: str
    user_request: str
    outcome: Outcome
    decide: Decide | None = None
    llm_replies: tuple[Reply, ...] = ()
    approvers: tuple[str, ...] = ()
    voting: VotingPolicy | None = None
    escalation: EscalationPolicy | None = None
    approval_stages: tuple[str, ...] = ()

    def run_input(self, user_request: str) -> WorkflowInput:
        """The run's input: one approver by default, or this path's quorum, escalation or
        stages, with their members (defaults serialise the same as before, so older
        histories keep their input)."""
        return WorkflowInput(
            user_request=user_request,
            approval_timeout_seconds=APPROVAL_TIMEOUT_SECONDS,
            approvers=list(self.approvers),
            voting=self.voting or VotingPolicy(),
            escalation=self.escalation,
            approval_stages=list(self.approval_stages),
            stage_approvers={stage: STAGE_APPROVERS[stage] for stage in self.approval_stages},
        )


# The LLM is the local server's default offline analyser unless ``llm_replies`` says otherwise.
MAIN_PATHS: tuple[MainPath, ...] = (
    MainPath("auto_approved", "Summarise last week's support tickets", Outcome.AUTO_APPROVED),
    MainPath(
        "approved", "Delete the stale feature flags", Outcome.APPROVED, decide=_approve_by_update
    ),
    MainPath(
        "rejected", "Refund every order from March", Outcome.REJECTED, decide=_reject_by_update
    ),
    MainPath("timed_out", "Drop the analytics staging table", Outcome.TIMED_OUT),
    MainPath(
        "analysis_failed",
        "Tidy up the shared drive",
        Outcome.ANALYSIS_FAILED,
        llm_replies=(ok("Sure! I would tidy it up."),) * 3,
    ),
    MainPath(
        "refused_then_approved",
        "Revoke the intern's VPN access",
        Outcome.APPROVED,
        decide=_refuse_then_approve,
    ),
    MainPath(
        "approve_with_edits",
        "Delete the test customers",
        Outcome.APPROVED,
        decide=_approve_with_edits,
    ),
    MainPath(
        "shorthand_approve",
        "Reset the build server",
        Outcome.APPROVED,
        decide=_approve_by_shorthand,
    ),
    MainPath(
        "quorum_approved",
        "Rotate the production database password",
        Outcome.APPROVED,
        decide=_approve_by_quorum,
        approvers=VOTERS,
        voting=VotingPolicy(required_approvals=2),
    ),
    MainPath(
        "vetoed",
        "Grant the contractors admin rights on billing",
        Outcome.REJECTED,
        decide=_veto,
        approvers=VOTERS,
        voting=VotingPolicy(required_approvals=2),
    ),
    MainPath(
        "escalated_then_approved",
        "Purge the archived mailboxes",
        Outcome.APPROVED,
        decide=_escalate_then_approve,
        approvers=("alice",),
        escalation=EscalationPolicy(after_seconds=ESCALATION_AFTER_SECONDS, approvers=["boss"]),
    ),
    MainPath(
        "staged_approved",
        "Transfer the company domains to the new registrar",
        Outcome.APPROVED,
        decide=_approve_every_stage,
        approval_stages=STAGES,
    ),
    MainPath(
        "input_refused",
        "Delete the rows listed here:" + " row" * (MAX_REQUEST_CHARS // 4),
        Outcome.INPUT_REFUSED,
    ),
    MainPath(
        "over_limits_refused_then_approved",
        "Remove the expired API keys",
        Outcome.APPROVED,
        decide=_refuse_over_limits_then_approve,
    ),
    MainPath(
        "staged_rejected_at_second_stage",
        "Disable the legacy single sign-on",
        Outcome.REJECTED,
        decide=_reject_at_the_second_stage,
        approval_stages=STAGES,
    ),
    MainPath(
        "cancelled_while_waiting",
        "Delete the temporary build caches",
        Outcome.CANCELLED,
        decide=_cancel_while_waiting,
    ),
    MainPath(
        "safe_with_approvers_asked",
        "Summarise last week's support tickets for the board",
        Outcome.APPROVED,
        decide=_bob_approves,
        approvers=("bob",),
    ),
    # Tool calls (the offline analyser proposes them): a read-only look-up runs unasked; a
    # tool that changes data asks with its effect previewed; data changed after approval
    # is not acted on, and the run asks again.
    MainPath("tool_read_only", "Show me five customers in Japan", Outcome.AUTO_APPROVED),
    MainPath(
        "tool_approved",
        "Delete inactive customers in France",
        Outcome.APPROVED,
        decide=_approve_by_update,
    ),
    MainPath(
        "tool_drift_then_approved",
        "Delete inactive customers in Spain",
        Outcome.APPROVED,
        decide=_drift_then_approve,
    ),
)


@dataclass(frozen=True)
class RecordedRun:
    """A path's result and history, and the history of each stage's child, by stage."""

    path: MainPath
    result: WorkflowResult
    history: WorkflowHistory
    stage_histories: dict[str, WorkflowHistory] = field(default_factory=dict)


async def stage_histories(
    client: Client, workflow_id: str, result: WorkflowResult
) -> dict[str, WorkflowHistory]:
    """The history of every stage the run started: each is a workflow of its own to guard."""
    child_ids = await started_children(client.get_workflow_handle(workflow_id))
    return {
        outcome.stage: await client.get_workflow_handle(child_id).fetch_history()
        for outcome, child_id in zip(result.stages, child_ids, strict=True)
    }


async def run_main_path(
    env: WorkflowEnvironment, task_queue: str, path: MainPath, tag: str
) -> RecordedRun:
    """Start the path's run, decide it as the path says, and check how it ended."""
    workflow_id = main_workflow_id(path.name, tag)
    run_input = path.run_input(f"{path.user_request} ({tag})")
    handle = await start_run(env.client, task_queue, workflow_id, run_input)
    if path.decide is not None:
        await path.decide(PathRun(env, handle))
    result = await handle.result()
    if result.outcome != path.outcome:
        raise RuntimeError(f"path {path.name} ended {result.outcome}: {result.message}")
    children = await stage_histories(env.client, workflow_id, result)
    return RecordedRun(path, result, await handle.fetch_history(), children)


async def run_main_paths(
    env: WorkflowEnvironment,
    task_queue: str,
    analysis: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    tag: str,
    paths: tuple[MainPath, ...] = MAIN_PATHS,
) -> list[RecordedRun]:
    """Run every main path, one after another, and return each result and history.

    One at a time on purpose: waiting for a result (or moving the clock for an
    escalation) lets the time-skipping server jump ahead, which would time out any other
    run still waiting for its decision. ``tag`` makes request texts and workflow IDs
    unique, so LLM scripts never collide.
    """
    runs: list[RecordedRun] = []
    # No webhook, whatever the environment says: the recorded histories must not depend on it.
    async with (
        httpx2.AsyncClient() as http,
        build_worker(env.client, task_queue, analysis, notifier=WebhookNotifier(None, None, http)),
    ):
        for path in paths:
            llm_server.on(f"{path.user_request} ({tag})", *path.llm_replies)
            runs.append(await run_main_path(env, task_queue, path, tag))
    return runs


def history_file(path_name: str, directory: Path = HISTORIES_DIR) -> Path:
    return directory / f"{path_name}.json"


def child_history_file(path_name: str, stage: str, directory: Path = HISTORIES_DIR) -> Path:
    return directory / CHILD_HISTORIES_DIR.name / path_name / f"{stage}.json"


def write_history(history: WorkflowHistory, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(history.to_json() + "\n")
    return target


async def record(directory: Path = HISTORIES_DIR, names: list[str] | None = None) -> list[Path]:
    """Start a local LLM and a time-skipping server, run every path (or those ``names``d),
    write the histories."""
    paths = tuple(path for path in MAIN_PATHS if not names or path.name in names)
    if names and len(paths) != len(set(names)):
        raise ValueError(f"unknown path among {names}; known: {[p.name for p in MAIN_PATHS]}")
    llm_server = FakeOpenAIServer().start()
    try:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(TEMPORAL_TEST_SERVER),
            data_converter=pydantic_data_converter,
        )
        try:
            llm = AsyncOpenAI(base_url=llm_server.url, api_key="test-key", max_retries=0)
            analysis = AnalysisActivities(llm, TEST_MODEL)
            runs = await run_main_paths(
                env, "record-histories", analysis, llm_server, RECORDING_TAG, paths
            )
        finally:
            await env.shutdown()
    finally:
        llm_server.stop()
    written = []
    for run in runs:
        written.append(write_history(run.history, history_file(run.path.name, directory)))
        for stage, history in run.stage_histories.items():
            target = child_history_file(run.path.name, stage, directory)
            written.append(write_history(history, target))
    return written


def main() -> int:
    # The analysis_failed path fails on purpose; its warnings and tracebacks are expected.
    logging.basicConfig(level=logging.ERROR)
    # The tools act on a fresh operations database in a temporary folder, not the project's.
    os.environ[STATE_DIR_ENV] = tempfile.mkdtemp(prefix="record-histories-")
    for path in asyncio.run(record(names=sys.argv[1:])):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_process(main())
