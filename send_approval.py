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
import getpass
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from console_format import terminal_safe
from constants import ALREADY_APPLIED_ERROR, SUBMIT_DECISION_UPDATE
from encryption.codec import UndecryptablePayloadError
from models.limits import (
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    decision_problem,
    edited_arguments,
    first_problem,
    too_long,
)
from models.models import (
    ApprovalDecision,
    ProposedAction,
    StageOutcome,
    WorkflowState,
    WorkflowStatus,
)
from temporal_client import (
    WORKER_WAIT_SECONDS,
    StatusUnavailableError,
    TemporalUnavailableError,
    connect,
    exit_process,
    interrupted,
    means_no_such_workflow,
    means_no_worker,
    no_worker_message,
    not_progressing,
    query_status,
    reraise_if_cancelled,
)
from workflows.stage_ids import stage_child_id

VERDICTS = {"approve": True, "reject": False}
USAGE = 'send_approval <workflow-id> [<request-id>] approve|reject ["notes"] [options]'
# The parent's audit event for a stage's child, whose detail ends with the child's ID.
STAGE_STARTED = "stage_started"
AWAITS_CHILD = " awaits child "
# How a staged run refuses a decision sent to itself (it names the waiting stage's child).
STAGED_PARENT_REFUSAL = "decided stage by stage"


class DecisionNotAppliedError(Exception):
    """The workflow, or Temporal, did not apply the decision; the message says why."""


class DecisionRefusedError(DecisionNotAppliedError):
    """The workflow itself refused the decision; ``reason`` is its own words."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Refused: {reason}")
        self.reason = reason


class NoWorkerError(DecisionNotAppliedError):
    """No worker answered in time: the decision may still be applied when one starts."""


def new_update_id() -> str:
    """A fresh update ID for one sending of a decision (a run of this script, an inbox POST,
    a demo decision), reused only by that sending's own retries (the SDK's, or the demo
    sending again after no answer), so a retry is one update.

    Never derived from what was decided: Temporal answers an update ID it has seen with
    that update's first outcome, so a content-derived ID would hand a re-vote after an
    amendment reset the votes the old "applied" (and not count it), and an approver added
    by escalation the refusal from before. Repeats of a counted decision are recognised by
    the workflow instead (``AlreadyApplied``)."""
    return f"decision/{uuid.uuid4()}"


@dataclass(frozen=True)
class Applied:
    """A decision the workflow counted: ``decision`` as it recorded it; ``earlier`` when it
    was counted before (a repeat of an earlier send whose answer was lost)."""

    decision: ApprovalDecision
    earlier: bool = False


@dataclass
class Progress:
    """How far the script got, so that Ctrl-C can say what it leaves behind."""

    update_sent: bool = False


def os_user() -> str | None:
    """The OS user name, or None where there is none (a container running as a bare UID):
    a decision must name a real reviewer, never a guessed one."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


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


async def pending_status(
    client: Client, workflow_id: str, status: WorkflowStatus | None = None
) -> WorkflowStatus:
    """The run's status (``status`` if already read), which must be waiting for a decision."""
    if status is None:
        try:
            status = await query_status(client, workflow_id)
        except StatusUnavailableError as err:
            raise DecisionNotAppliedError(f"{err} Nothing was sent.") from None
    if status.state != WorkflowState.AWAITING_APPROVAL or status.approval_request is None:
        raise DecisionNotAppliedError(
            f"Workflow {workflow_id} is not waiting for a decision (state: {status.state.value})."
        )
    return status


async def send(args: argparse.Namespace, progress: Progress | None = None) -> Applied:
    """Send the decision (one update, fresh for this run of the script); return it as the
    workflow recorded it. For a staged request it decides one stage, bound to it."""
    progress = progress or Progress()
    client = await connect()
    if args.request_id is not None and args.stage is None and args.edit_arguments is None:
        # Everything is known: sent as it is, without asking the run first (a run whose
        # worker is down still gets it when one starts). A staged run refuses it and names
        # the waiting stage: then it goes to that stage, bound to it, as below.
        decision = new_decision(args, args.request_id)
        if problem := decision_problem(decision):
            raise DecisionNotAppliedError(f"Not sent: {problem}.")
        progress.update_sent = True
        try:
            return await deliver(client, args.workflow_id, decision)
        except DecisionRefusedError as refused:
            if STAGED_PARENT_REFUSAL not in refused.reason:
                raise
    try:
        status = await query_status(client, args.workflow_id)
    except StatusUnavailableError as err:
        raise DecisionNotAppliedError(f"{err} Nothing was sent.") from None
    stage = args.stage or (status.current_stage.stage if status.current_stage else None)
    request_id, amended = args.request_id, None
    if stage is not None and request_id is None and status.approval_request is not None:
        request_id = status.approval_request.request_id  # the round, even once it ended
    if stage is None or request_id is None:
        pending = await pending_status(client, args.workflow_id, status)
        assert pending.approval_request is not None
        request_id = request_id or pending.approval_request.request_id
        if args.edit_arguments is not None:
            try:
                amended = pending.approval_request.proposed_action.with_arguments(
                    args.edit_arguments
                )
            except ValueError as err:
                raise DecisionNotAppliedError(f"Not sent: {err}.") from None
    if stage is not None and amended is not None:
        raise DecisionNotAppliedError(
            "Not sent: a stage approves or rejects the action; it cannot amend it."
        )
    decision = new_decision(args, request_id, amended, stage)
    if problem := decision_problem(decision):
        raise DecisionNotAppliedError(f"Not sent: {problem}.")
    progress.update_sent = True
    if stage is not None:
        return await deliver_to_stage(client, args.workflow_id, status, decision)
    return await deliver(client, args.workflow_id, decision)


def new_decision(
    args: argparse.Namespace,
    request_id: str,
    amended: ProposedAction | None = None,
    stage: str | None = None,
) -> ApprovalDecision:
    return ApprovalDecision(
        request_id=request_id,
        approved=VERDICTS[args.verdict],
        reviewer=args.reviewer,
        reviewer_notes=args.notes,
        decided_at=datetime.now(UTC),
        amended_action=amended,
        stage=stage,
    )


async def deliver_to_stage(
    client: Client,
    workflow_id: str,
    status: WorkflowStatus,
    decision: ApprovalDecision,
    update_id: str | None = None,
) -> Applied:
    """Deliver a stage's decision (``decision.stage``, of the round ``decision.request_id``)
    to that stage of run ``workflow_id`` and no other; ``status`` is the run's, as read.

    A double click, a second tab or a retry after a lost answer may arrive after the stage
    was decided and the next one waits: it is answered "already applied" when the stage
    counted this reviewer's verdict, and refused with how the stage ended otherwise
    (``DecisionRefusedError``). It is never sent to the stage waiting now.
    """
    assert decision.stage is not None
    waiting, request = status.current_stage, status.approval_request
    if (
        status.state == WorkflowState.AWAITING_APPROVAL
        and waiting is not None
        and request is not None
        and (waiting.stage, request.request_id) == (decision.stage, decision.request_id)
    ):
        try:
            return await deliver(client, waiting.child_workflow_id, decision, update_id)
        except RPCError as err:  # the stage closed after the status was read
            if not means_no_such_workflow(err):
                raise
        child_id = waiting.child_workflow_id
    else:
        child_id = started_stage(status, workflow_id, decision.request_id, decision.stage)
    if child_id is None:
        now = f"; stage {waiting.stage} waits" if waiting is not None else ""
        raise DecisionRefusedError(
            f"stage {decision.stage} of request {decision.request_id} is not waiting{now}"
        )
    return await decided_stage(client, child_id, decision)


def started_stage(
    status: WorkflowStatus, workflow_id: str, request_id: str, stage: str
) -> str | None:
    """The child workflow ID of ``stage`` in round ``request_id``, if the run started it
    (its ``stage_started`` audit event names the child)."""
    for event in status.audit_trail:
        if event.event != STAGE_STARTED or AWAITS_CHILD not in event.detail:
            continue
        child_id = event.detail.rpartition(AWAITS_CHILD)[2]
        position = child_id.rpartition("/")[2].partition("-")[0]
        if position.isdigit() and child_id == stage_child_id(
            workflow_id, request_id, int(position), stage
        ):
            return child_id
    return None


async def decided_stage(client: Client, child_id: str, decision: ApprovalDecision) -> Applied:
    """The answer for a decision that reached its stage after the stage stopped waiting:
    "already applied" with the vote as counted, or why not."""
    handle = client.get_workflow_handle(child_id, result_type=StageOutcome)
    description = await handle.describe()
    if description.status == WorkflowExecutionStatus.RUNNING:  # still deciding: send it
        return await deliver(client, child_id, decision)
    for vote in await stage_votes(client, child_id):
        if (vote.request_id, vote.reviewer, vote.approved) == (
            decision.request_id,
            decision.reviewer,
            decision.approved,
        ):
            return Applied(vote, earlier=True)
    try:
        outcome: StageOutcome = await handle.result(follow_runs=False)
    except WorkflowFailureError:
        raise DecisionRefusedError(
            f"stage {decision.stage} ended without a decision; this one was not applied"
        ) from None
    if outcome.approved is None:
        how = outcome.detail or "it timed out"
        raise DecisionRefusedError(
            f"stage {decision.stage} ended without a decision ({how}); this one was not applied"
        )
    verdict = "approved" if outcome.approved else "rejected"
    raise DecisionRefusedError(
        f"stage {decision.stage} was decided by {outcome.reviewer} ({verdict}); "
        "this decision was not applied, and never goes to another stage"
    )


async def stage_votes(client: Client, child_id: str) -> list[ApprovalDecision]:
    """The votes a closed stage counted through the decision update: each accepted update's
    answer is the vote as recorded."""
    votes: list[ApprovalDecision] = []
    handle = client.get_workflow_handle(child_id)
    async for event in handle.fetch_history_events():
        if not event.HasField("workflow_execution_update_completed_event_attributes"):
            continue
        outcome = event.workflow_execution_update_completed_event_attributes.outcome
        if not outcome.HasField("success"):
            continue
        try:
            [vote] = await client.data_converter.decode(
                outcome.success.payloads, [ApprovalDecision]
            )
        except (ValueError, ValidationError):
            continue
        votes.append(vote)
    return votes


async def submit(
    client: Client, workflow_id: str, decision: ApprovalDecision, update_id: str | None = None
) -> ApprovalDecision:
    """Send the decision as an update; return it as recorded (now, or by an earlier send),
    or say why it was not applied. ``update_id``: the sending's own, for its retries."""
    return (await deliver(client, workflow_id, decision, update_id)).decision


async def deliver(
    client: Client, workflow_id: str, decision: ApprovalDecision, update_id: str | None = None
) -> Applied:
    """``submit``, saying whether the decision was counted now or before. Without
    ``update_id`` the update is new (``new_update_id``)."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        async with asyncio.timeout(WORKER_WAIT_SECONDS):
            recorded = await handle.execute_update(
                SUBMIT_DECISION_UPDATE,
                decision,
                id=update_id or new_update_id(),
                result_type=ApprovalDecision,
            )
            return Applied(recorded)
    except RPCError as err:  # the server refuses updates while the workflow task fails
        reraise_if_cancelled()
        stuck = err.status == RPCStatusCode.FAILED_PRECONDITION
        if not stuck or not (reason := await not_progressing(client, workflow_id)):
            raise
        raise DecisionNotAppliedError(f"{reason} The decision was not applied.") from err
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
        reraise_if_cancelled()
        if reason := await not_progressing(client, workflow_id):  # no task, no update
            raise DecisionNotAppliedError(f"{reason} The decision was not applied.") from err
        raise NoWorkerError(
            f"{no_worker_message()} The decision may still be applied when a worker starts: "
            f"check with `python -m approval_status {workflow_id}` before sending it again."
        ) from err
    except WorkflowUpdateFailedError as err:
        if isinstance(err.cause, ApplicationError) and err.cause.type == ALREADY_APPLIED_ERROR:
            return Applied(counted_vote(err.cause, decision), earlier=True)
        reason = getattr(err.cause, "message", str(err.cause))  # without the error type
        if "expected but not found" in reason:  # not a run of the agent, e.g. a stage
            try:
                await query_status(client, workflow_id)
            except StatusUnavailableError as what_it_is:
                raise DecisionNotAppliedError(str(what_it_is)) from err
        raise DecisionRefusedError(reason) from err


def counted_vote(repeat: ApplicationError, sent: ApprovalDecision) -> ApprovalDecision:
    """The vote an ``AlreadyApplied`` answer names (its first detail); the decision as sent,
    without a time, if the detail cannot be read."""
    try:
        return ApprovalDecision.model_validate(repeat.details[0])
    except (IndexError, ValidationError):
        return sent.model_copy(update={"decided_at": None})


def explain_rpc_error(err: RPCError, workflow_id: str) -> str:
    if means_no_such_workflow(err):
        return f"Workflow {workflow_id} is not running (unknown ID, or it already finished)."
    if means_no_worker(err):
        return no_worker_message()
    return f"Temporal refused the decision: {err.message}"


def interrupted_message(workflow_id: str, progress: Progress) -> str:
    if not progress.update_sent:
        return "nothing was sent."
    return (
        "the decision was already on its way and may still be applied: check with "
        f"`python -m approval_status {workflow_id}` before sending it again."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress()
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
    exit_process(main())
