"""The whole human-in-the-loop flow in one terminal.

    uv run python -m demo "Delete all test data from the production database"
    uv run python -m demo --offline --approve "fine for staging" "Delete the staging cache"

Uses the Temporal server configured by env config; if none answers at a loopback address,
starts the embedded dev server (data kept in .temporal/demo.db). Runs a worker in this
process, starts the workflow, shows what the agent proposes and why it is risky, asks you to
decide, and prints the outcome with the audit trail. Ctrl-C stops everything this command
started; the run itself is kept and can be decided later with the ordinary scripts.
"""

import argparse
import asyncio
import sys
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client, WorkflowHandle

from activities.llm_settings import (
    LLMSettings,
    LLMSettingsError,
    analysis_activities,
    usable_settings,
)
from activities.offline_analysis import OFFLINE_LABEL
from console_format import format_result
from constants import STATUS_QUERY, task_queue
from dev_server import is_loopback, start_dev_server
from models.models import (
    DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    ApprovalDecision,
    ApprovalRequest,
    Outcome,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from send_approval import DecisionNotAppliedError, os_user, submit
from start_workflow import positive_int, start_run
from temporal_client import (
    DEV_SERVER_COMMAND,
    TemporalUnavailableError,
    configured_address,
    connect,
    exit_process,
)
from worker import build_worker

DEFAULT_DATA_DIR = Path(".temporal")
POLL_SECONDS = 0.25
PROGRESS_EVERY_SECONDS = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("request", help="what you want the agent to do")
    parser.add_argument("--offline", action="store_true", help=f"use the {OFFLINE_LABEL}")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--approve", metavar="NOTES", help="approve without asking")
    decision.add_argument("--reject", metavar="NOTES", help="reject without asking")
    parser.add_argument(
        "--approval-timeout",
        type=positive_int,
        default=DEFAULT_APPROVAL_TIMEOUT_SECONDS,
        metavar="SECONDS",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, metavar="DIR")
    args = parser.parse_args(argv)
    if not args.request.strip():
        parser.error("the request must not be empty")
    return args


def say(text: str) -> None:
    print(text, flush=True)


async def connect_or_start_server(stack: AsyncExitStack, data_dir: Path) -> tuple[Client, bool]:
    """The configured server, or an embedded one on its loopback port (stopped on exit).

    Returns the client and whether the server is the embedded one.
    """
    try:
        return await connect(), False
    except TemporalUnavailableError:
        address = configured_address()
        if not is_loopback(address):
            raise
    db_file = data_dir / "demo.db"
    say(f"No Temporal server at {address}; starting the embedded dev server ({db_file}).")
    server = await start_dev_server(address, db_file)
    stack.push_async_callback(server.shutdown)
    return server.client, True


async def watch_until_waiting(handle: WorkflowHandle) -> WorkflowStatus:
    """Show progress until the run waits for a human or finishes."""
    started = time.monotonic()
    last_report = started
    while True:
        status = await handle.query(STATUS_QUERY, result_type=WorkflowStatus)
        if status.state in (WorkflowState.AWAITING_APPROVAL, WorkflowState.COMPLETED):
            return status
        if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
            last_report = time.monotonic()
            say(f"  ... still {status.state.value} ({last_report - started:.0f}s)")
        await asyncio.sleep(POLL_SECONDS)


def describe_request(request: ApprovalRequest) -> str:
    action = request.proposed_action
    reasons = "\n".join(f"  - {reason}" for reason in request.risk_reasons)
    return (
        f"\nThe agent proposes: {action.action_type}: {action.description}\n"
        f"Its reasoning: {action.reasoning}\n"
        f"A human must decide because:\n{reasons}\n"
        f"Deadline: {request.deadline.isoformat(timespec='seconds')} "
        f"({time_left(request)} left)"
    )


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


async def ask(request: ApprovalRequest) -> tuple[bool, str]:
    while True:
        answer = (await read_line(f"Approve? [y/n] ({time_left(request)} left): ")).lower()
        if answer in ("y", "yes", "n", "no"):
            notes = await read_line("Notes (optional): ")
            return answer.startswith("y"), notes
        say("Please answer y or n.")


async def decide(
    client: Client, handle: WorkflowHandle, request: ApprovalRequest, args: argparse.Namespace
) -> None:
    """Take the decision from the flags or the terminal, and send it as send_approval does."""
    if args.approve is not None or args.reject is not None:
        approved, notes = args.approve is not None, args.approve or args.reject or ""
    elif sys.stdin.isatty():
        approved, notes = await ask(request)
    else:
        say(
            "No terminal to ask in. Decide from another terminal:\n"
            f'  uv run python -m send_approval {handle.id} approve|reject "notes"'
        )
        return
    decision = ApprovalDecision(
        request_id=request.request_id,
        approved=approved,
        reviewer=os_user() or "demo terminal",
        reviewer_notes=notes,
        decided_at=datetime.now(UTC),
    )
    try:
        await submit(client, handle.id, decision)
    except DecisionNotAppliedError as err:
        say(str(err))


async def await_result_with_countdown(
    handle: WorkflowHandle[object, WorkflowResult], request: ApprovalRequest | None
) -> WorkflowResult:
    result = asyncio.ensure_future(handle.result())
    while True:
        done, _ = await asyncio.wait({result}, timeout=30)
        if done:
            return result.result()
        if request is not None:
            say(f"  ... waiting for a decision ({time_left(request)} left)")


async def run_demo(args: argparse.Namespace, settings: LLMSettings) -> WorkflowResult:
    async with AsyncExitStack() as stack:
        client, embedded = await connect_or_start_server(stack, args.data_dir)
        analysis = analysis_activities(settings, offline=args.offline)
        await stack.enter_async_context(build_worker(client, task_queue(), analysis))
        run_input = WorkflowInput(
            user_request=args.request, approval_timeout_seconds=args.approval_timeout
        )
        handle = await start_run(client, run_input)
        source = OFFLINE_LABEL if args.offline else settings.describe()
        say(f"Started workflow {handle.id}. Analysing the request with {source}...")
        try:
            return await follow(client, handle, args)
        except asyncio.CancelledError:
            say(resume_hint(handle.id, args.data_dir if embedded else None))
            raise


async def follow(
    client: Client, handle: WorkflowHandle[object, WorkflowResult], args: argparse.Namespace
) -> WorkflowResult:
    status = await watch_until_waiting(handle)
    request = status.approval_request
    if status.state == WorkflowState.AWAITING_APPROVAL and request is not None:
        say(describe_request(request))
        await decide(client, handle, request, args)
    return await await_result_with_countdown(handle, request)


def resume_hint(workflow_id: str, data_dir: Path | None) -> str:
    port = configured_address().rpartition(":")[2]
    server = (
        f"  {DEV_SERVER_COMMAND} --port {port} --db-filename {data_dir / 'demo.db'}\n"
        if data_dir
        else ""
    )
    return (
        f"\nStopped. Workflow {workflow_id} is kept by Temporal. To decide it later:\n"
        f"{server}"
        "  uv run python -m worker\n"
        f'  uv run python -m send_approval {workflow_id} approve "notes"'
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = usable_settings(offline=args.offline)
    except LLMSettingsError as err:
        print(err, file=sys.stderr)
        return 1
    try:
        result = asyncio.run(run_demo(args, settings))
    except TemporalUnavailableError as err:
        print(err, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    say(format_result(result))
    return 1 if result.outcome == Outcome.ANALYSIS_FAILED else 0


if __name__ == "__main__":
    exit_process(main())
