"""When a decision may be applied, and when the votes settle a request.

Plain functions, so the rules are unit-tested directly and stay deterministic in workflow
code. With the default voting policy (one approval needed, a rejection vetoes) the first
valid decision settles the request: the single-approver case is just a quorum of one.
"""

from collections.abc import Collection

from models.models import ApprovalDecision, ApprovalRequest, RecordedWorkflowInput, VotingPolicy


def refusal_reason(
    decision: ApprovalDecision,
    awaiting: ApprovalRequest | None,
    votes: list[ApprovalDecision],
    run_input: RecordedWorkflowInput,
    amenders: Collection[str] = (),
) -> str | None:
    """Why ``decision`` must not be applied, or None when it may.

    ``awaiting`` is the request currently waiting for a decision (None when nothing waits,
    including once the votes have settled it); ``votes`` are those already counted;
    ``amenders`` wrote the action now awaiting approval, so they may not approve it.
    """
    if awaiting is None:
        return "the workflow is not waiting for a decision"
    if decision.request_id != awaiting.request_id:
        return (
            f"request ID {decision.request_id!r} does not match the pending request "
            f"{awaiting.request_id!r}"
        )
    if awaiting.approvers and decision.reviewer not in awaiting.approvers:
        return f"{decision.reviewer!r} is not an approver of this request"
    if decision.approved and decision.reviewer == run_input.requester:
        return f"{decision.reviewer!r} requested this action and cannot approve it"
    if decision.approved and decision.reviewer in amenders:
        return f"{decision.reviewer!r} amended this action and cannot approve the amendment"
    if decision.amended_action is not None and not decision.approved:
        return "only an approval can amend the action"
    if any(vote.reviewer == decision.reviewer for vote in votes):
        return f"{decision.reviewer!r} has already voted; a vote counts once"
    return None


def settled(votes: list[ApprovalDecision], policy: VotingPolicy, eligible: int) -> bool | None:
    """True once approved, False once rejected, None while the votes leave it open.

    ``eligible`` is how many people may vote (0 when anyone may).
    """
    approvals = sum(vote.approved for vote in votes)
    rejections = len(votes) - approvals
    if approvals >= policy.required_approvals:
        return True
    if rejections and policy.rejection_vetoes:
        return False
    if eligible and eligible - rejections < policy.required_approvals:
        return False
    return None
