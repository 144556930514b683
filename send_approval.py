"""Send an approver's decision to a waiting workflow, and say whether it was applied.

    uv run python -m send_approval <workflow-id> [<request-id>] approve|reject ["notes"]

Without a request ID the decision targets the request pending now. For a request decided
in stages it decides one stage, ``--stage NAME`` (default: the stage waiting now), and is
bound to it: once that stage no longer waits, the same decision is answered "already
applied" if the stage counted it, and is refused otherwise; it never decides the next stage.
Exit 0 only when the workflow applied the decision (now, or when the same decision was
counted before: the workflow answers "already applied" with the vote it counted); a refusal
says why and exits 1.
"""

import argparse
import asyncio
import sys
from typing import Any

from temporalio.service import RPCError

from client.connection import TemporalUnavailableError, connect
from client.decide import (
    Applied,
    DecisionNotAppliedError,
    Sending,
    Verdict,
    decide,
    explain_rpc_error,
)
from console_args import os_user
from console_exit import interrupted, run_script
from console_format import terminal_safe
from encryption.codec import UndecryptablePayloadError
from models.limits import (
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    edited_arguments,
    first_problem,
    too_long,
)

VERDICTS = {"approve": True, "reject": False}
USAGE = 'send_approval <workflow-id> [<request-id>] approve|reject ["notes"] [options]'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="send_approval", usage=USAGE, description=__doc__.splitlines()[0]
    )
    parser.add_argument("workflow_id")
    parser.add_argument("decision", nargs="+", help='[<request-id>] approve|reject ["notes"]')
    parser.add_argument("--reviewer", default=os_user(), help="default: your OS user")
    parser.add_argument(
        "--edit-arguments",
        metavar="JSON",
        type=edit_arguments,
        help="approve the tool call with these arguments instead (a JSON object, whole); "
        "the edited call is previewed and asked about again",
    )
    parser.add_argument(
        "--stage",
        metavar="NAME",
        help="the stage you decide, for a request decided in stages (default: the one waiting)",
    )
    args = parser.parse_args(argv)
    if not args.workflow_id.strip():
        parser.error("the workflow ID must not be empty")
    words = args.decision
    if words[0] not in VERDICTS:
        args.request_id, words = words[0], words[1:]
    else:
        args.request_id = None
    if not words or words[0] not in VERDICTS or len(words) > 2:
        parser.error("expected approve or reject, then optional notes in quotes")
    args.verdict, args.notes = words[0], words[1] if len(words) == 2 else ""
    if args.reviewer is None:
        parser.error("cannot tell who you are from the OS; name yourself with --reviewer NAME")
    if not args.reviewer.strip():
        parser.error("--reviewer must not be empty")
    if args.edit_arguments is not None and args.verdict != "approve":
        parser.error("--edit-arguments only goes with approve")
    if args.stage is not None and not args.stage.strip():
        parser.error("--stage must not be empty")
    if args.stage is not None and args.edit_arguments is not None:
        parser.error("a stage approves or rejects the action; it cannot amend it")
    if problem := over_a_limit(args):
        parser.error(problem)
    return args


def edit_arguments(text: str) -> dict[str, Any]:
    """``--edit-arguments``, parsed and bounded (``models.limits.edited_arguments``)."""
    try:
        return edited_arguments(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def over_a_limit(args: argparse.Namespace) -> str | None:
    """What the workflow would refuse for its size, said before anything is sent."""
    return first_problem(
        too_long("the request ID", args.request_id or "", MAX_NAME_CHARS),
        too_long("the reviewer name", args.reviewer, MAX_NAME_CHARS),
        too_long("the notes", args.notes, MAX_NOTES_CHARS),
        too_long("--stage", args.stage or "", MAX_NAME_CHARS),
    )


async def send(args: argparse.Namespace, progress: Sending | None = None) -> Applied:
    """Send the decision (one update, fresh for this run of the script); return it as the
    workflow recorded it. For a staged request it decides one stage, bound to it."""
    verdict = Verdict(
        approved=VERDICTS[args.verdict],
        reviewer=args.reviewer,
        notes=args.notes,
        request_id=args.request_id,
        stage=args.stage,
        arguments=args.edit_arguments,
    )
    return await decide(await connect(), args.workflow_id, verdict, sending=progress)


def interrupted_message(workflow_id: str, progress: Sending) -> str:
    if not progress.update_sent:
        return "nothing was sent."
    return (
        "the decision was already on its way and may still be applied: check with "
        f"`python -m approval_status {workflow_id}` before sending it again."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Sending()
    try:
        applied = asyncio.run(send(args, progress))
    except (TemporalUnavailableError, DecisionNotAppliedError, UndecryptablePayloadError) as err:
        print(terminal_safe(err), file=sys.stderr)  # a refusal may quote what others wrote
        return 1
    except RPCError as err:
        print(terminal_safe(explain_rpc_error(err, args.workflow_id)), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return interrupted(interrupted_message(args.workflow_id, progress))
    # "alice approved", not "Approved": with a quorum one approval is a vote, not the outcome.
    decision = applied.decision
    verdict = "approved" if decision.approved else "rejected"
    request = f"request {decision.request_id} of workflow {args.workflow_id}"
    if decision.stage is not None:
        request = f"stage {decision.stage} of {request}"
    if applied.earlier:  # counted before: an earlier send whose answer was lost
        when = decision.decided_at.isoformat() if decision.decided_at else "earlier"
        print(terminal_safe(f"Already applied: {decision.reviewer} {verdict} {request} at {when}."))
        return 0
    print(terminal_safe(f"{decision.reviewer} {verdict} {request}."))
    return 0


if __name__ == "__main__":
    run_script(main)
