"""When a decision may be applied. Plain functions, so the rules are unit-tested directly."""

from models.models import ApprovalDecision, ApprovalRequest


def refusal_reason(
    decision: ApprovalDecision,
    awaiting: ApprovalRequest | None,
    earlier: ApprovalDecision | None,
) -> str | None:
    """Why ``decision`` must not be applied, or None when it may.

    ``awaiting`` is the request currently waiting for a decision (None when nothing waits);
    ``earlier`` is a decision already applied. A decision is applied at most once.
    """
    if earlier is not None:
        return f"request {earlier.request_id} was already decided"
    if awaiting is None:
        return "the workflow is not waiting for a decision"
    if decision.request_id != awaiting.request_id:
        return (
            f"request ID {decision.request_id!r} does not match the pending request "
            f"{awaiting.request_id!r}"
        )
    return None
