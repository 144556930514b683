"""When a decision may be applied. Plain functions, so the rules are unit-tested directly."""

from models.models import ApprovalDecision, ApprovalRequest, WorkflowInput


def refusal_reason(
    decision: ApprovalDecision,
    awaiting: ApprovalRequest | None,
    earlier: ApprovalDecision | None,
    run_input: WorkflowInput,
) -> str | None:
    """Why ``decision`` must not be applied, or None when it may.

    ``awaiting`` is the request currently waiting for a decision (None when nothing waits);
    ``earlier`` is a decision already applied. A decision is applied at most once.
    """
    if earlier is not None:
        return f"request {earlier.request_id} was already decided by {earlier.reviewer}"
    if awaiting is None:
        return "the workflow is not waiting for a decision"
    if decision.request_id != awaiting.request_id:
        return (
            f"request ID {decision.request_id!r} does not match the pending request "
            f"{awaiting.request_id!r}"
        )
    if run_input.approvers and decision.reviewer not in run_input.approvers:
        return f"{decision.reviewer!r} is not an approver of this request"
    if decision.approved and decision.reviewer == run_input.requester:
        return f"{decision.reviewer!r} requested this action and cannot approve it"
    if decision.amended_action is not None and not decision.approved:
        return "only an approval can amend the action"
    return None
