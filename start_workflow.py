"""Start the agent on one request and wait for its result.

uv run python -m start_workflow "Delete all test data from the production database"
"""

import argparse
import asyncio
import sys
from collections.abc import Awaitable
from dataclasses import dataclass

from pydantic import ValidationError
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from client.connection import TemporalUnavailableError, connect
from client.start import (
    FAILED_OUTCOMES,
    ResultUnavailableError,
    new_workflow_id,
    no_worker_polling,
    result_unless_stuck,
    start_run,
)
from console_args import positive_int, wait_seconds
from console_exit import interrupted, run_script
from console_format import format_result, terminal_safe
from constants import STAGE_APPROVERS_ENV, STAGE_ID_MARKER, task_queue
from encryption.codec import UndecryptablePayloadError
from models.limits import run_input_problem
from models.models import (
    DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    EscalationPolicy,
    VotingPolicy,
    WorkflowInput,
    WorkflowResult,
)
from models.validation import summarise
from stage_approvers import StageApprovers, StageApproversError, load_stage_approvers, unstaffed
from workflows.stage_ids import reserved_for_stages

# How long a started run may wait for a worker before the script says none polls.
WORKER_CHECK_SECONDS = 3


@dataclass
class Progress:
    """How far the script got, so that Ctrl-C can say what it leaves behind."""

    workflow_id: str
    start_sent: bool = False
    started: bool = False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="start_workflow", description=__doc__.splitlines()[0])
    parser.add_argument("request", help="what you want the agent to do")
    parser.add_argument(
        "--approval-timeout",
        type=wait_seconds,
        default=DEFAULT_APPROVAL_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for a human decision (default {DEFAULT_APPROVAL_TIMEOUT_SECONDS})",
    )
    parser.add_argument(
        "--require-approval", action="store_true", help="ask a human even if the action is safe"
    )
    parser.add_argument("--requester", help="who asks; they may not approve their own request")
    parser.add_argument(
        "--approver",
        action="append",
        default=[],
        dest="approvers",
        metavar="NAME",
        help="who may decide (repeatable; default: anyone)",
    )
    parser.add_argument(
        "--required-approvals",
        type=positive_int,
        default=1,
        metavar="N",
        help="votes needed to approve (default 1); a rejection vetoes unless --no-veto",
    )
    parser.add_argument(
        "--no-veto",
        dest="rejection_vetoes",
        action="store_false",
        help="reject only once the approvals can no longer reach the quorum",
    )
    parser.add_argument(
        "--escalate-after", type=wait_seconds, metavar="SECONDS", help="remind and escalate then"
    )
    parser.add_argument(
        "--escalate-to", action="append", default=[], metavar="NAME", help="next tier (repeatable)"
    )
    parser.add_argument(
        "--stage",
        action="append",
        default=[],
        dest="stages",
        metavar="NAME",
        help="approve stage by stage, each a child workflow (repeatable, in order)",
    )
    parser.add_argument("--workflow-id", help="choose the workflow ID (default: generated)")
    args = parser.parse_args(argv)
    if not args.request.strip():
        parser.error("the request must not be empty")
    if args.workflow_id is not None and not args.workflow_id.strip():
        parser.error("--workflow-id must not be empty")
    if args.workflow_id is not None and reserved_for_stages(args.workflow_id):
        parser.error(f"--workflow-id must not contain {STAGE_ID_MARKER!r}: kept for stage IDs")
    if bool(args.escalate_after) != bool(args.escalate_to):
        parser.error("--escalate-after and --escalate-to go together")
    try:
        args.run_input = run_input_from(args, load_stage_approvers())
    except ValidationError as err:
        parser.error(summarise(err))
    except StageApproversError as err:
        parser.error(str(err))
    if nobody := unstaffed(args.stages, args.run_input.stage_approvers):
        parser.error(
            f"no approvers for stage {', '.join(nobody)}: name them in {STAGE_APPROVERS_ENV} "
            '(a JSON file: {"stage": ["name", ...]})'
        )
    if problem := run_input_problem(args.run_input):
        parser.error(problem)
    return args


def run_input_from(args: argparse.Namespace, stage_approvers: StageApprovers) -> WorkflowInput:
    escalation = (
        EscalationPolicy(after_seconds=args.escalate_after, approvers=args.escalate_to)
        if args.escalate_after
        else None
    )
    return WorkflowInput(
        user_request=args.request,
        approval_timeout_seconds=args.approval_timeout,
        require_approval=args.require_approval,
        requester=args.requester,
        approvers=args.approvers,
        voting=VotingPolicy(
            required_approvals=args.required_approvals, rejection_vetoes=args.rejection_vetoes
        ),
        escalation=escalation,
        approval_stages=args.stages,
        stage_approvers=stage_approvers,
    )


async def start_and_wait(args: argparse.Namespace, progress: Progress) -> WorkflowResult:
    client = await connect()
    progress.start_sent = True
    handle = await start_run(client, args.run_input, progress.workflow_id)
    progress.started = True
    print(f"Started workflow. Workflow ID: {handle.id}", flush=True)
    print("Waiting for the result; watch the worker terminal for approval requests.", flush=True)
    try:
        return await result_or_no_worker(client, result_unless_stuck(client, handle))
    except RPCError as err:  # the server went away or refused the read: the run goes on
        raise ResultUnavailableError(
            f"Workflow {handle.id} was started, but waiting for its result failed "
            f"({err.message}). Check it later with `uv run python -m approval_status {handle.id}`."
        ) from None


async def result_or_no_worker(client: Client, waiting: Awaitable[WorkflowResult]) -> WorkflowResult:
    """``waiting``'s result; if none came within ``WORKER_CHECK_SECONDS`` and no worker polls
    the task queue, that is said on stderr, and the wait goes on."""
    result = asyncio.ensure_future(waiting)
    try:
        done, _ = await asyncio.wait({result}, timeout=WORKER_CHECK_SECONDS)
        if not done and (missing := await no_worker_polling(client, task_queue())):
            print(missing, file=sys.stderr, flush=True)
        return await result
    finally:
        result.cancel()  # no-op once done


def interrupted_message(progress: Progress) -> str:
    workflow_id = progress.workflow_id
    check = f"check with `uv run python -m approval_status {workflow_id}`"
    if progress.started:
        return f"stopped waiting; workflow {workflow_id} keeps running in Temporal ({check})."
    if progress.start_sent:
        return f"workflow {workflow_id} was being started and may be running: {check}."
    return "no workflow was started."


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress(args.workflow_id or new_workflow_id())
    try:
        result = asyncio.run(start_and_wait(args, progress))
    except (TemporalUnavailableError, ResultUnavailableError, UndecryptablePayloadError) as err:
        print(err, file=sys.stderr)
        return 1
    except WorkflowAlreadyStartedError:
        print(
            f"Workflow ID {args.workflow_id} is in use by a running workflow; "
            "choose another --workflow-id, or leave it out for a generated one.",
            file=sys.stderr,
        )
        return 1
    except RPCError as err:
        print(
            terminal_safe(f"Temporal refused to start the workflow: {err.message}"), file=sys.stderr
        )
        return 1
    except WorkflowFailureError as err:
        print(terminal_safe(f"The workflow failed: {err.cause}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted(interrupted_message(progress))
    print(format_result(result))
    return 1 if result.outcome in FAILED_OUTCOMES else 0


if __name__ == "__main__":
    run_script(main)
