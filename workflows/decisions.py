"""How a decision reaches a window: by signal (fire and forget) or by update (answered).

Shared by the request's workflow and each stage's. A signal is in history whatever it
says, so its refusal is recorded in the audit trail. An update is judged by its validator
first: one that cannot count is rejected there, its sender told why, and nothing reaches
history, so no number of refused updates can fill a run's history or its update budget.

Both take ``*payloads`` and validate the one decision they expect here, so a payload the
worker could not decode (a key it does not hold, or no encryption while it is on) is
refused with its reason by either path, never a failed task or a bare decoding error.
"""

from collections.abc import Callable, Sequence

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from constants import ALREADY_APPLIED_ERROR, DECISION_REFUSED_ERROR
    from models.limits import MAX_NAME_CHARS, cut
    from models.models import ApprovalDecision
    from models.validation import PayloadRefused, single_payload
    from workflows.approval_window import AlreadyApplied, ApprovalWindow, DecisionRefused

Record = Callable[[str, str], None]
EXPECTED = "a valid ApprovalDecision"


def signalled(waiting: ApprovalWindow | str, decision: ApprovalDecision, record: Record) -> None:
    """Count a signalled decision on the ``waiting`` window (or the reason none waits), or
    record why not; a repeat is recorded as one."""
    reviewer = cut(decision.reviewer, MAX_NAME_CHARS)
    try:
        if isinstance(waiting, str):
            raise DecisionRefused(waiting)
        waiting.apply(decision)
    except DecisionRefused as refused:
        record("decision_refused", f"from {reviewer}: {refused}")
    except AlreadyApplied as repeat:
        record("decision_duplicate", f"from {reviewer}: {repeat}")


def submitted(payloads: Sequence[object]) -> ApprovalDecision:
    """The update's one decision; its validator has refused anything else (a replayed
    update is not validated again, and was valid when it was accepted)."""
    return single_payload(payloads, ApprovalDecision, EXPECTED)


def refused_update(waiting: ApprovalWindow | str, payloads: Sequence[object]) -> None:
    """Raise the update's rejection if its ``payloads`` are not one decision that can count
    on the ``waiting`` window (or the reason none waits); the deadline is judged by the
    clock here only, where a rejection leaves no history to replay."""
    try:
        decision = submitted(payloads)
        reason = (
            waiting if isinstance(waiting, str) else waiting.refusal(decision) or waiting.late()
        )
    except PayloadRefused as refused:
        reason = str(refused)
    except AlreadyApplied as repeat:
        raise ApplicationError(
            str(repeat), repeat.vote, type=ALREADY_APPLIED_ERROR, non_retryable=True
        ) from None
    if reason is not None:
        raise ApplicationError(reason, type=DECISION_REFUSED_ERROR, non_retryable=True)
