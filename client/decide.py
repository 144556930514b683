"""Deciding: build a reviewer's decision and send it, the one way the CLI, the inbox and the
demo all do.

A decision goes as the workflow's decision update, with an update ID fresh for each sending
(``new_update_id``); the workflow stamps when it received it (``decided_at``). For a request
decided in stages it goes to that stage's child workflow, bound to that stage, never to the
next one. A repeat of a decision the run counted (a lost answer, a second tab, a re-run of
the script) is success, "already applied", by every route: the workflow answers it so while
it waits, and once the run stopped waiting its status or result shows the vote.
"""

import asyncio
import uuid
from dataclasses import dataclass
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

from client import connection
from client.connection import (
    means_no_such_workflow,
    means_no_worker,
    no_worker_message,
    reraise_if_cancelled,
)
from client.status import (
    StatusUnavailableError,
    closed_result,
    closed_status,
    not_progressing,
    query_status,
)
from constants import ALREADY_APPLIED_ERROR, STAGED_PARENT_REFUSAL, SUBMIT_DECISION_UPDATE
from models.limits import decision_problem
from models.models import (
    ApprovalDecision,
    ProposedAction,
    StageOutcome,
    WorkflowState,
    WorkflowStatus,
)
from workflows.decision_rules import duplicate_of
from workflows.stage_ids import stage_child_id

# The parent's audit event for a stage's child, whose detail ends with the child's ID.
STAGE_STARTED = "stage_started"
AWAITS_CHILD = " awaits child "


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


@dataclass(frozen=True)
class Verdict:
    """What a reviewer decided, before it is bound to a request (and, staged, to a stage)."""

    approved: bool
    reviewer: str
    notes: str = ""
    request_id: str | None = None  # None: the request waiting now
    stage: str | None = None  # None: the stage waiting now, for a request decided in stages
    arguments: dict[str, Any] | None = None  # approve the tool call with these arguments


@dataclass
class Sending:
    """How far a sending got, so that an interrupted one can say whether it may still apply."""

    update_sent: bool = False


async def decide(
    client: Client,
    workflow_id: str,
    verdict: Verdict,
    *,
    status: WorkflowStatus | None = None,
    update_id: str | None = None,
    sending: Sending | None = None,
) -> Applied:
    """Send ``verdict`` to run ``workflow_id``; return it as the workflow recorded it.

    With everything known (a request ID, no stage, no edit) it is sent without asking the
    run first: a run whose worker is down still gets it when one starts. Otherwise the
    run's status (``status``, when the caller has read it) says which request, and which
    stage, it decides. A run that no longer waits answers a repeat of a vote it counted
    "already applied", and anything else "not waiting". ``update_id``: the sending's own,
    for its retries (default: a fresh one).
    """
    sending = sending or Sending()
    if (
        status is None
        and verdict.request_id is not None
        and verdict.stage is None
        and verdict.arguments is None
    ):
        # A staged run refuses it and names the waiting stage: then it goes to that stage,
        # bound to it, as below.
        decision = bound(verdict, verdict.request_id)
        sending.update_sent = True
        try:
            return await deliver(client, workflow_id, decision, update_id)
        except DecisionRefusedError as refused:
            if STAGED_PARENT_REFUSAL not in refused.reason:
                raise
        except RPCError as err:  # the run has closed: did it count this decision?
            if not means_no_such_workflow(err):
                raise
            result = await closed_result(client, workflow_id)
            if result is None or (vote := counted(closed_status(result), decision)) is None:
                raise
            return Applied(vote, earlier=True)
    if status is None:
        status = await run_status(client, workflow_id)
    stage = verdict.stage or (status.current_stage.stage if status.current_stage else None)
    request = status.approval_request
    # The request shown: the one waiting, or (staged) the round, even once it ended; or
    # the one a closed run's result names.
    closed = status.result.request_id if status.result is not None else None
    request_id = verdict.request_id or (request.request_id if request is not None else closed)
    if request_id is None:
        raise not_waiting(workflow_id, status)
    amended = None
    if verdict.arguments is not None:
        if stage is not None:
            raise DecisionNotAppliedError(
                "Not sent: a stage approves or rejects the action; it cannot amend it."
            )
        if request is None:
            raise not_waiting(workflow_id, status)
        try:
            amended = request.proposed_action.with_arguments(verdict.arguments)
        except ValueError as err:
            raise DecisionNotAppliedError(f"Not sent: {err}.") from None
    decision = bound(verdict, request_id, amended, stage)
    if stage is None and status.state != WorkflowState.AWAITING_APPROVAL:
        return repeated(workflow_id, status, decision)
    if problem := decision_problem(decision):
        raise DecisionNotAppliedError(f"Not sent: {problem}.")
    sending.update_sent = True
    if stage is not None:
        return await deliver_to_stage(client, workflow_id, status, decision, update_id)
    return await deliver(client, workflow_id, decision, update_id)


def bound(
    verdict: Verdict,
    request_id: str,
    amended: ProposedAction | None = None,
    stage: str | None = None,
) -> ApprovalDecision:
    """The decision the workflow takes: ``decided_at`` is left to the workflow, which stamps
    when it received it."""
    return ApprovalDecision(
        request_id=request_id,
        approved=verdict.approved,
        reviewer=verdict.reviewer,
        reviewer_notes=verdict.notes,
        amended_action=amended,
        stage=stage,
    )


async def run_status(client: Client, workflow_id: str) -> WorkflowStatus:
    """The run's status: a closed run's from its result (no worker needed), an open run's
    from its status query."""
    if (result := await closed_result(client, workflow_id)) is not None:
        return closed_status(result)
    try:
        return await query_status(client, workflow_id)
    except StatusUnavailableError as err:
        raise DecisionNotAppliedError(f"{err} Nothing was sent.") from None


def repeated(workflow_id: str, status: WorkflowStatus, decision: ApprovalDecision) -> Applied:
    """A decision for a run that no longer waits: "already applied" when the run counted
    the same vote, else not applied."""
    if (vote := counted(status, decision)) is not None:
        return Applied(vote, earlier=True)
    raise not_waiting(workflow_id, status)


def counted(status: WorkflowStatus, decision: ApprovalDecision) -> ApprovalDecision | None:
    """The vote of the run (as ``status`` shows it) that ``decision`` repeats, by the
    workflow's own rule (``duplicate_of``)."""
    return duplicate_of(decision, [*status.votes, *(status.result.votes if status.result else [])])


def not_waiting(workflow_id: str, status: WorkflowStatus) -> DecisionNotAppliedError:
    return DecisionNotAppliedError(
        f"Workflow {workflow_id} is not waiting for a decision (state: {status.state.value})."
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
        async with asyncio.timeout(connection.WORKER_WAIT_SECONDS):
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
