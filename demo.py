"""The whole human-in-the-loop flow in one terminal.

    uv run python -m demo "Delete all test data from the production database"
    uv run python -m demo --offline --approve "checked" "Delete inactive customers in France"
    uv run python -m demo --local-model "Summarise the weekly sales report"

Uses the Temporal server configured by env config; if none answers at a loopback address,
starts the embedded dev server (data kept in .temporal/demo.db). Runs a worker in this
process, starts the workflow, shows what the agent proposes and why it is risky, asks you to
decide, and prints the outcome with the audit trail. A request approved in stages (a large
amount of money) is asked stage by stage, each answer sent to that stage as one of its
members (``HITL_STAGE_APPROVERS``: a stage without members ends the run ``stage_failed``),
your OS user where it is a member. Ctrl-C stops everything this command started; the run
itself is kept and can be decided later with the ordinary scripts. ``--local-model`` first
starts a small real model on 127.0.0.1 (``python -m local_llm``, the local-llm dependency
group) and uses it.
"""

import argparse
import asyncio
import logging
import os
import shlex
import sqlite3
import sys
import time
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.llm_settings import (
    LLMApi,
    LLMSettings,
    LLMSettingsError,
    analysis_activities,
    usable_settings,
)
from activities.offline_analysis import OFFLINE_LABEL
from activities.send_webhook_notice import WebhookSettingsError, webhook_settings
from client import connection
from client.connection import (
    DEV_SERVER_COMMAND,
    TemporalSettingsError,
    TemporalUnavailableError,
    configured_address,
    configured_namespace,
    connect,
)
from client.decide import (
    DecisionNotAppliedError,
    NoWorkerError,
    Verdict,
    decide,
    explain_rpc_error,
    new_update_id,
)
from client.start import FAILED_OUTCOMES, start_run
from console_args import os_user, wait_seconds
from console_exit import INTERRUPTED_EXIT_CODE, interrupted, run_script
from console_format import format_preview, format_result, terminal_safe
from console_logging import configure_logging
from constants import (
    INBOX_URL_ENV,
    STAGE_APPROVERS_ENV,
    STATE_DIR_ENV,
    STATUS_QUERY,
    TASK_QUEUE_ENV,
    demo_task_queue,
)
from dev_server import DevServerError, is_loopback, start_dev_server
from encryption.codec import UndecryptablePayloadError
from local_llm.model_file import ModelFileError, packaged_model
from local_llm.server import LocalModelError, serving
from models.limits import MAX_NOTES_CHARS, MAX_REQUEST_CHARS, first_problem, too_long
from models.models import (
    DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    ApprovalRequest,
    StageProgress,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from stage_approvers import StageApprovers, StageApproversError, load_stage_approvers
from tools.database import DATABASE_FILE, reset_database
from worker_setup import WorkerStartError, build_worker, check_namespace

DEFAULT_DATA_DIR = Path(".temporal")
SAMPLE_DATA_FOLDER = "sample-data"  # under --data-dir: the demo's own operations database
POLL_SECONDS = 0.25
LOCAL_PROBE_SECONDS = 5.0
STAGE_LOOKUP_SECONDS = 2.0  # how long a loopback address gets to answer as Temporal
PROGRESS_EVERY_SECONDS = 5.0
COUNTDOWN_EVERY_SECONDS = 30.0
# A stage's child workflow starts a moment after the parent's status names it.
CHILD_START_SECONDS = 10.0
ANALYSIS_ACTIVITY = "propose_action"  # the model's answer and its effect preview
WORKER_COMMAND = "uv run python -m worker"
RUN_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}
# Temporal's ways of saying "not now" to an update (down, restarting, busy, the run's
# workflow task retrying): the same update is sent again after a pause.
RESEND_STATUSES = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.RESOURCE_EXHAUSTED,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.DEADLINE_EXCEEDED,
}
RESEND_PAUSE_SECONDS = 1.0
LOCAL_MODEL_COMMAND = "uv run python -m local_llm  # and export the settings it prints"

T = TypeVar("T")
Run = WorkflowHandle[Any, WorkflowResult]
# What a run waits on a person for: its request, and the stage's child workflow if staged.
WaitPoint = tuple[str, str | None]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("request", help="what you want the agent to do")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--offline", action="store_true", help=f"use the {OFFLINE_LABEL}")
    model.add_argument(
        "--local-model",
        action="store_true",
        help="serve a small real model on 127.0.0.1 and use it (uv sync --group local-llm)",
    )
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--approve", metavar="NOTES", help="approve without asking")
    decision.add_argument("--reject", metavar="NOTES", help="reject without asking")
    parser.add_argument(
        "--approval-timeout",
        type=wait_seconds,
        default=DEFAULT_APPROVAL_TIMEOUT_SECONDS,
        metavar="SECONDS",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, metavar="DIR")
    parser.add_argument(
        "--inbox",
        action="store_true",
        help="also serve the approval inbox (HITL_INBOX_PORT, default 8000) with a demo account",
    )
    args = parser.parse_args(argv)
    args.stage_approvers = {}  # read by run(), which reports a bad file in one line
    if not args.request.strip():
        parser.error("the request must not be empty")
    notes = args.approve if args.approve is not None else args.reject
    if problem := first_problem(
        too_long("the request", args.request, MAX_REQUEST_CHARS),
        too_long("the notes", notes or "", MAX_NOTES_CHARS),
    ):
        parser.error(problem)
    return args


def say(text: str) -> None:
    print(text, flush=True)


async def connect_or_start_server(stack: AsyncExitStack, data_dir: Path) -> tuple[Client, bool]:
    """The configured server, or an embedded one on its loopback port (stopped on exit).

    Returns the client and whether the server is the embedded one.
    """
    address = configured_address()
    try:
        # A local server answers at once; something else on the port may never answer.
        probe = LOCAL_PROBE_SECONDS if is_loopback(address) else None
        return await asyncio.wait_for(connect(), probe), False
    except TemporalSettingsError:
        raise  # a mistake in the settings, not a missing server
    except (TemporalUnavailableError, TimeoutError):
        if not is_loopback(address):
            raise
    db_file = data_dir / "demo.db"
    say(f"No Temporal server at {address}; starting the embedded dev server ({db_file}).")
    # The namespace the scripts are configured for, so the resume commands work on it.
    server = await start_dev_server(address, db_file, configured_namespace())
    stack.push_async_callback(server.shutdown)
    return server.client, True


class SetupError(Exception):
    """What the demo sets up for itself (its sample data, its inbox) cannot be; the message
    says why, in one line."""


def start_inbox(stack: AsyncExitStack, data_dir: Path) -> None:
    """Serve the approval inbox next to the terminal prompt; notices link to it.

    The web stack is imported here, only with ``--inbox``: about a second of CPU that every
    other demo would spend before its first line."""
    from inbox.background import DEMO_USER, InboxStartError, serve_demo_inbox

    try:
        inbox, password = serve_demo_inbox(data_dir / "inbox-users.json")
    except InboxStartError as err:
        raise SetupError(str(err)) from None
    stack.callback(inbox.stop)
    os.environ[INBOX_URL_ENV] = inbox.url  # read by the notices this process sends
    say(f"Approval inbox: {inbox.url}/ (user {DEMO_USER}, password {password})")


def sample_data_dir(data_dir: Path) -> Path:
    return data_dir.resolve() / SAMPLE_DATA_FOLDER


def use_own_sample_data(data_dir: Path) -> None:
    """The demo's worker acts on its own copy of the sample data, seeded afresh for each
    demo: what an earlier demo deleted is back, and no other worker's data is touched."""
    folder = sample_data_dir(data_dir)
    try:
        reset_database(folder / DATABASE_FILE)
    except (OSError, sqlite3.Error) as err:
        raise SetupError(
            terminal_safe(
                f"Cannot seed the demo's sample data in {folder} ({err}); "
                "choose another --data-dir."
            )
        ) from None
    os.environ[STATE_DIR_ENV] = str(folder)  # read by the tools at each call
    say(terminal_safe(f"Sample data: a fresh copy for this demo, in {folder}."))


@dataclass
class Progress:
    """How far the demo got, so that Ctrl-C can say what it leaves behind."""

    start_sent: bool = False
    hint_shown: bool = False


async def run_demo(
    args: argparse.Namespace, settings: LLMSettings, progress: Progress
) -> WorkflowResult:
    async with AsyncExitStack() as stack:
        client, embedded = await connect_or_start_server(stack, args.data_dir)
        await check_namespace(client)
        analysis = analysis_activities(settings, offline=args.offline)
        if args.inbox:
            start_inbox(stack, args.data_dir)
        use_own_sample_data(args.data_dir)
        queue = demo_task_queue()
        await stack.enter_async_context(build_worker(client, queue, analysis))
        run_input = WorkflowInput(
            user_request=args.request,
            approval_timeout_seconds=args.approval_timeout,
            stage_approvers=args.stage_approvers,
        )
        progress.start_sent = True
        handle = await start_run(client, run_input, queue=queue)
        source = OFFLINE_LABEL if args.offline else settings.describe()
        say(f"Started workflow {handle.id}. Analysing the request with {source}...")
        try:
            if args.local_model:
                await report_answer_time(handle, settings.model)
            return await follow(client, handle, args)
        except asyncio.CancelledError:
            stage = await waiting_stage(handle)
            data_dir = args.data_dir if embedded else None
            say(resume_hint(handle.id, data_dir, worker_command(args), stage))
            progress.hint_shown = True
            raise


async def report_answer_time(handle: Run, model: str) -> None:
    """Once the analysis activity has finished, say how long the model took to answer."""
    seconds = await answer_seconds(handle)
    if seconds is not None:
        say(f"{model} answered in {seconds:.1f} s.")


async def answer_seconds(handle: Run) -> float | None:
    """How long the analysis activity took, from the run's history (scheduled to finished,
    retries included), once it has finished; None if the run ended without it."""
    while True:
        scheduled: dict[int, datetime] = {}
        async for event in handle.fetch_history_events():
            if event.event_type in RUN_CLOSED:
                return None
            if event.HasField("activity_task_scheduled_event_attributes"):
                attributes = event.activity_task_scheduled_event_attributes
                if attributes.activity_type.name == ANALYSIS_ACTIVITY:
                    scheduled[event.event_id] = event.event_time.ToDatetime()
            for ended in ("completed", "failed", "timed_out"):
                field = f"activity_task_{ended}_event_attributes"
                if event.HasField(field):
                    started = scheduled.get(getattr(event, field).scheduled_event_id)
                    if started is not None:
                        return (event.event_time.ToDatetime() - started).total_seconds()
        await asyncio.sleep(POLL_SECONDS)


async def follow(client: Client, handle: Run, args: argparse.Namespace) -> WorkflowResult:
    """Be the run's approver: its one request, or each stage in turn, until it ends."""
    result = asyncio.ensure_future(handle.result())
    try:
        seen: WaitPoint | None = None
        while (status := await next_wait(handle, result, seen)) is not None:
            seen = wait_point(status)
            say(describe_wait(status))
            await settle(client, handle, status, args)
        return await result
    finally:
        result.cancel()  # only on Ctrl-C is it still pending


async def status_of(handle: WorkflowHandle) -> WorkflowStatus:
    return await handle.query(STATUS_QUERY, result_type=WorkflowStatus)


def wait_point(status: WorkflowStatus) -> WaitPoint | None:
    """What the run waits on a person for right now, or None."""
    request = status.approval_request
    if status.state != WorkflowState.AWAITING_APPROVAL or request is None:
        return None
    stage = status.current_stage
    return request.request_id, stage.child_workflow_id if stage else None


async def next_wait(
    handle: Run, result: asyncio.Future[WorkflowResult], seen: WaitPoint | None
) -> WorkflowStatus | None:
    """Show progress until the run waits on a person for something new; None once it ends.
    While it still waits on the request shown (a decision sent and not yet applied, or to
    come from elsewhere), that is a countdown to the deadline."""
    started = last_report = time.monotonic()
    while not result.done():
        status = await status_of(handle)
        point = wait_point(status)
        if point is not None and point != seen:
            return status
        shown = status.approval_request if point is not None else None
        every = COUNTDOWN_EVERY_SECONDS if shown else PROGRESS_EVERY_SECONDS
        if time.monotonic() - last_report >= every:
            last_report = time.monotonic()
            if shown is not None:
                say(f"  ... waiting for a decision ({time_left(shown)} left)")
            else:
                say(f"  ... still {status.state.value} ({last_report - started:.0f}s)")
        await asyncio.wait({result}, timeout=POLL_SECONDS)
    return None


async def moved_on(handle: Run, point: WaitPoint | None) -> WorkflowStatus:
    """The run's status once it no longer waits on ``point`` (decided, next stage, deadline)."""
    while True:
        status = await status_of(handle)
        if wait_point(status) != point:
            return status
        await asyncio.sleep(POLL_SECONDS)


def describe_wait(status: WorkflowStatus) -> str:
    request = status.approval_request
    assert request is not None
    stage = status.current_stage
    if stage is not None and stage.position > 1:  # the proposal was shown for stage 1
        return f"\n{stage_line(stage)}\nDeadline: {deadline_line(request)}"
    action = request.proposed_action
    safe = terminal_safe
    reasons = "\n".join(f"  - {safe(reason)}" for reason in request.risk_reasons)
    text = (
        f"\nThe agent proposes: {safe(action.action_type)}: {safe(action.description)}\n"
        f"Its reasoning: {safe(action.reasoning)}\n"
        + "".join(f"{line}\n" for line in effect_lines(request))
        + f"A human must decide because:\n{reasons}\n"
    )
    if stage is not None:
        text += f"It is approved in {stage.of} stages, each by its own approver.\n"
        text += f"{stage_line(stage)}\n"
    return text + f"Deadline: {deadline_line(request)}"


def effect_lines(request: ApprovalRequest) -> list[str]:
    """What the tool call would change, worked out before asking (none without a tool)."""
    return format_preview(request.preview, width=15) if request.preview is not None else []


def stage_line(stage: StageProgress) -> str:
    name, child = terminal_safe(stage.stage), terminal_safe(stage.child_workflow_id)
    return f"Stage {stage.position}/{stage.of}: {name} (child workflow {child})"


def deadline_line(request: ApprovalRequest) -> str:
    return f"{request.deadline.isoformat(timespec='seconds')} ({time_left(request)} left)"


def time_left(request: ApprovalRequest) -> str:
    seconds = max(0, int((request.deadline - datetime.now(UTC)).total_seconds()))
    return f"{seconds // 60}:{seconds % 60:02d}"


async def read_line(prompt: str) -> str:
    """Read one line from the terminal without blocking the event loop (Ctrl-C still works)."""
    print(prompt, end="", flush=True)
    loop = asyncio.get_running_loop()
    line: asyncio.Future[str] = loop.create_future()
    loop.add_reader(
        sys.stdin.fileno(), lambda: line.done() or line.set_result(sys.stdin.readline())
    )
    try:
        return (await line).strip()
    finally:
        loop.remove_reader(sys.stdin.fileno())


async def ask(
    request: ApprovalRequest, stage: StageProgress | None, member: str | None
) -> tuple[bool, str]:
    what = f"Approve stage {stage.stage!r} as {member}" if stage else "Approve"
    while True:
        answer = (await read_line(f"{what}? [y/n] ({time_left(request)} left): ")).lower()
        if answer in ("y", "yes", "n", "no"):
            # Stage by stage, a y or n each: the notes are asked once, for a single request.
            notes = "" if stage else await read_line("Notes (optional): ")
            return answer.startswith("y"), notes
        say("Please answer y or n.")


async def unless_moved_on(prompt: Awaitable[T], run_moved_on: asyncio.Future[Any]) -> T | None:
    """The prompt's answer, or None if the run stopped waiting for it first."""
    answer = asyncio.ensure_future(prompt)
    try:
        await asyncio.wait({answer, run_moved_on}, return_when=asyncio.FIRST_COMPLETED)
        return answer.result() if answer.done() else None
    finally:
        answer.cancel()


async def settle(
    client: Client, handle: Run, status: WorkflowStatus, args: argparse.Namespace
) -> None:
    """Take the decision from the flags or the terminal and send it; with neither, say how
    to decide elsewhere. Returns once sent, or once the run stopped waiting for it."""
    request, stage = status.approval_request, status.current_stage
    assert request is not None
    member = stage_member(args.stage_approvers, status) if stage is not None else None
    if stage is not None and member is None:
        say(
            f"Nobody you may play can decide stage {terminal_safe(stage.stage)}: its members "
            f"(in {STAGE_APPROVERS_ENV}) approved earlier stages. Decide it as a member:\n"
            f"  {command_for(handle.id, stage)}"
        )
        return
    if args.approve is not None or args.reject is not None:
        verdict = (args.approve is not None, args.approve or args.reject or "")
    elif sys.stdin.isatty():
        run_moved_on = asyncio.ensure_future(moved_on(handle, wait_point(status)))
        try:
            answer = await unless_moved_on(ask(request, stage, member), run_moved_on)
        finally:
            run_moved_on.cancel()
        if answer is None:
            say(f"\n{why_moved_on(run_moved_on.result())}")
            return
        verdict = answer
    else:
        # Nothing to ask: the caller's progress loop counts down until it is decided.
        command = command_for(handle.id, stage)
        say(f"No terminal to ask in. Decide from another terminal:\n  {command}")
        return
    await send_verdict(client, handle, status, *verdict, member=member)


def stage_member(members: StageApprovers, status: WorkflowStatus) -> str | None:
    """Who the demo decides the waiting stage as: one of its members (you, if you are one)
    who approved no earlier stage of the request, since one person approves one stage."""
    stage = status.current_stage
    assert stage is not None
    earlier = {
        event.detail.rpartition(" by ")[2]
        for event in status.audit_trail
        if event.event == "stage_approved" and " by " in event.detail
    }
    free = [name for name in members.get(stage.stage, []) if name not in earlier]
    you = os_user()
    return you if you in free else (free[0] if free else None)


def command_for(workflow_id: str, stage: StageProgress | None) -> str:
    if stage is None:
        return f'uv run python -m send_approval {workflow_id} approve|reject "notes"'
    return (
        f'uv run python -m send_approval {workflow_id} approve|reject "notes" '
        f"--stage {terminal_safe(stage.stage)} --reviewer MEMBER"
    )


def why_moved_on(status: WorkflowStatus) -> str:
    """Why the prompt ended without an answer."""
    if status.state == WorkflowState.AWAITING_APPROVAL:
        return "That stage was decided elsewhere."
    if status.decision is not None:
        return f"Decided elsewhere, by {terminal_safe(status.decision.reviewer)}."
    return "The deadline passed before a decision."


async def send_verdict(
    client: Client,
    handle: Run,
    status: WorkflowStatus,
    approved: bool,
    notes: str,
    member: str | None = None,
) -> None:
    """Send the decision as send_approval does (``client.decide``; for a stage, as
    ``member``, bound to that stage); a decision not applied (refused, or too late) is
    reported, and the run's outcome follows."""
    request, stage = status.approval_request, status.current_stage
    assert request is not None
    verdict = Verdict(
        approved=approved,
        reviewer=member or os_user() or "demo terminal",
        notes=notes,
        request_id=request.request_id,
        stage=stage.stage if stage is not None else None,
    )
    try:
        if stage is not None:
            await decide_stage(client, handle, status, verdict)
            what = "approve" if approved else "reject"
            name = terminal_safe(stage.stage)
            say(f"Sent {what} to stage {name} ({stage.position}/{stage.of}) as {member}.")
            return
        await submit_until_taken(client, handle, status, verdict)
    except DecisionNotAppliedError as err:
        say(terminal_safe(err))
    except RPCError as err:
        workflow_id = stage.child_workflow_id if stage else handle.id
        say(terminal_safe(f"Your decision was not applied. {explain_rpc_error(err, workflow_id)}"))


async def submit_until_taken(
    client: Client, handle: Run, status: WorkflowStatus, verdict: Verdict
) -> None:
    """Send the decision until the run answers it (applied or refused), or its deadline.

    Until a worker accepts an update, Temporal holds it in the server's memory only: a
    server restart, or the server reloading the run (after an error, or to make room in its
    cache), drops it, and the sender is meant to send it again until it is accepted (the
    SDK does so itself while nobody cuts the call short). Giving up after one unanswered
    send could lose the verdict while the run waits out its deadline; the demo's worker
    runs in this process, so no answer in time means a busy machine, not a missing worker.
    Every send is the same update (one ID, fresh for this decision), so the run applies it
    once, whichever send gets through; a send the run sees after another was counted is
    answered "already applied", which is success too.
    """
    request = status.approval_request
    assert request is not None
    update_id = new_update_id()
    while True:
        try:
            await decide(client, handle.id, verdict, status=status, update_id=update_id)
            return
        except NoWorkerError:
            why = f"no answer within {connection.WORKER_WAIT_SECONDS}s"
        except RPCError as err:
            if err.status not in RESEND_STATUSES:
                raise
            why = f"Temporal answered: {err.message}"
        if datetime.now(UTC) >= request.deadline:
            # A send still in flight may yet reach the run, which judges it by when it
            # arrived: only the outcome can say whether it counted.
            raise DecisionNotAppliedError(
                f"Your decision was not confirmed by the deadline ({why}); "
                "the result below says whether it counted."
            )
        say(
            terminal_safe(
                f"  ... your decision is not taken yet ({why}); sending it again, as the "
                f"same update, so it counts once ({time_left(request)} left)"
            )
        )
        await asyncio.sleep(RESEND_PAUSE_SECONDS)


async def decide_stage(
    client: Client, handle: Run, status: WorkflowStatus, verdict: Verdict
) -> None:
    """Send a stage's decision to its child workflow, which may start a moment after the
    parent names it."""
    give_up = time.monotonic() + CHILD_START_SECONDS
    while True:
        try:
            await decide(client, handle.id, verdict, status=status)
            return
        except RPCError as err:
            not_yet = err.status == RPCStatusCode.NOT_FOUND and time.monotonic() < give_up
            if not not_yet or wait_point(await status_of(handle)) != wait_point(status):
                raise
        await asyncio.sleep(POLL_SECONDS)


async def waiting_stage(handle: Run) -> StageProgress | None:
    """The stage the run waits in, if any, so the resume hint names what decides it."""
    try:
        query = handle.query(STATUS_QUERY, result_type=WorkflowStatus)
        return (await asyncio.wait_for(query, STAGE_LOOKUP_SECONDS)).current_stage
    except (TimeoutError, RPCError, WorkflowQueryFailedError):
        return None  # the hint then gives the ordinary command, which says where to go


def worker_command(args: argparse.Namespace) -> str:
    """How to run a worker like this demo's; the local model stops with the demo, so it is
    served again first. It polls the demo's queue and acts on the demo's copy of the sample
    data, as the demo's own worker did."""
    state = shlex.quote(str(sample_data_dir(args.data_dir)))
    queue = shlex.quote(demo_task_queue())
    worker = f"{TASK_QUEUE_ENV}={queue} {STATE_DIR_ENV}={state} {WORKER_COMMAND}"
    if args.offline:
        return f"{worker} --offline"
    if args.local_model:
        return f"{LOCAL_MODEL_COMMAND}\n  {worker}"
    return worker


def resume_hint(
    workflow_id: str, data_dir: Path | None, worker: str, stage: StageProgress | None
) -> str:
    port = configured_address().rpartition(":")[2]
    server = (
        f"  {DEV_SERVER_COMMAND} --port {port} --db-filename {data_dir / 'demo.db'}\n"
        if data_dir
        else ""
    )
    decide = (
        f'uv run python -m send_approval {workflow_id} approve "notes"'
        if stage is None
        else f'uv run python -m send_approval {workflow_id} approve "notes" '
        f"--stage {terminal_safe(stage.stage)} --reviewer MEMBER"
    )
    return (
        f"\nStopped. Workflow {workflow_id} is kept by Temporal. To decide it later:\n"
        f"{server}"
        f"  {worker}\n"
        f"  {decide}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Warnings only: the demo's own lines tell the story. The in-process worker's and
    # inbox's warnings quote model, requester and reviewer text.
    configure_logging(logging.WARNING)
    progress = Progress()
    try:
        return run(args, progress)
    except KeyboardInterrupt:
        if progress.hint_shown:  # it already said where the run is and how to decide it
            return INTERRUPTED_EXIT_CODE
        if progress.start_sent:
            return interrupted("the run was being started and may exist; it was not decided.")
        return interrupted("no run was started.")


def run(args: argparse.Namespace, progress: Progress) -> int:
    try:
        args.stage_approvers = load_stage_approvers()
    except StageApproversError as err:
        print(terminal_safe(err), file=sys.stderr)  # one line: the file and the problem
        return 2
    try:
        webhook_settings()  # the embedded worker would refuse them later, with a server up
        settings = None if args.local_model else usable_settings(offline=args.offline)
    except (WebhookSettingsError, LLMSettingsError) as err:
        print(err, file=sys.stderr)
        return 1
    if settings is None:
        return run_with_local_model(args, progress)
    return run_with(args, settings, progress)


def run_with_local_model(args: argparse.Namespace, progress: Progress) -> int:
    """Serve the packaged model for this demo only, and point the worker at it."""
    try:
        model_path = packaged_model()
        say(f"Loading the local model {model_path.name} ...")
        with serving(model_path) as model:
            say(f"Loaded {model.name} in {model.load_seconds:.1f} s, at {model.base_url}.")
            api = LLMApi.CHAT_COMPLETIONS  # llama.cpp's Responses API ignores the schema
            settings = LLMSettings(api_key=None, base_url=model.base_url, model=model.name, api=api)
            return run_with(args, settings, progress)
    except (ModelFileError, LocalModelError) as err:
        print(err, file=sys.stderr)
        return 1


def run_with(args: argparse.Namespace, settings: LLMSettings, progress: Progress) -> int:
    try:
        result = asyncio.run(run_demo(args, settings, progress))
    except (
        TemporalUnavailableError,
        DevServerError,
        WorkerStartError,
        UndecryptablePayloadError,
        SetupError,
    ) as err:
        print(err, file=sys.stderr)
        return 1
    except RPCError as err:
        print(terminal_safe(f"Temporal refused the request: {err.message}"), file=sys.stderr)
        return 1
    except WorkflowFailureError as err:
        print(terminal_safe(f"The workflow failed: {err.cause}"), file=sys.stderr)
        return 1
    say(format_result(result))
    return 1 if result.outcome in FAILED_OUTCOMES else 0


if __name__ == "__main__":
    run_script(main)
