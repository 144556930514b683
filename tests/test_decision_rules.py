"""Who may decide what, and when: the rules that make a vote count once, apply only to the
pending request, and come only from someone allowed to give it."""

from datetime import UTC, datetime, timedelta

from models.models import ApprovalDecision, ApprovalRequest, ProposedAction, WorkflowInput
from workflows.decision_rules import refusal_reason

ACTION = ProposedAction(
    action_type="delete_records",
    description="Delete the test rows from production",
    reasoning="asked for",
    risky_action=True,
)
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
OPEN_INPUT = WorkflowInput(user_request="Delete test rows from production")
GUARDED_INPUT = WorkflowInput(
    user_request="Delete test rows from production", requester="alice", approvers=["bob", "alice"]
)


def _pending(approvers: list[str] | None = None) -> ApprovalRequest:
    return ApprovalRequest(
        workflow_id="wf-1",
        request_id="req-1",
        user_request="Delete test rows from production",
        proposed_action=ACTION,
        risk_reasons=["targets production"],
        requested_at=NOW,
        deadline=NOW + timedelta(minutes=5),
        approvers=approvers or [],
    )


OPEN = _pending()
GUARDED = _pending(["bob", "alice"])


def _decision(
    approved: bool = True,
    *,
    reviewer: str = "bob",
    request_id: str = "req-1",
    amended: ProposedAction | None = None,
) -> ApprovalDecision:
    return ApprovalDecision(
        request_id=request_id, approved=approved, reviewer=reviewer, amended_action=amended
    )


def test_matching_decision_is_applied() -> None:
    """The ordinary case: the pending request, answered by anyone when no approvers are set."""
    assert refusal_reason(_decision(), OPEN, [], OPEN_INPUT) is None
    assert refusal_reason(_decision(False), OPEN, [], OPEN_INPUT) is None


def test_listed_approver_may_decide() -> None:
    assert refusal_reason(_decision(reviewer="bob"), GUARDED, [], GUARDED_INPUT) is None


def test_second_vote_from_the_same_reviewer_is_refused() -> None:
    """A vote counts once; a reviewer cannot flip their approval or stack up a quorum alone."""
    reason = refusal_reason(_decision(False), OPEN, [_decision()], OPEN_INPUT)

    assert reason is not None
    assert "bob" in reason
    assert "already voted" in reason


def test_vote_from_another_reviewer_is_counted_alongside_earlier_ones() -> None:
    """Earlier votes by others do not block a new reviewer (quorum voting)."""
    assert refusal_reason(_decision(reviewer="carol"), OPEN, [_decision()], OPEN_INPUT) is None


def test_decision_when_nothing_awaits_is_refused() -> None:
    """Before the proposal exists, or once the request is settled, there is nothing to decide."""
    for votes in ([], [_decision(reviewer="carol")]):
        reason = refusal_reason(_decision(), None, votes, OPEN_INPUT)
        assert reason is not None
        assert "not waiting" in reason


def test_decision_for_another_request_is_refused_naming_both_ids() -> None:
    """A stale decision for an earlier request must not approve the current one."""
    reason = refusal_reason(_decision(request_id="req-old"), OPEN, [], OPEN_INPUT)

    assert reason is not None
    assert "req-old" in reason
    assert "req-1" in reason


def test_unlisted_approver_is_refused_whether_approving_or_rejecting() -> None:
    """When approvers are listed, only they may decide."""
    for approved in (True, False):
        reason = refusal_reason(_decision(approved, reviewer="mallory"), GUARDED, [], GUARDED_INPUT)
        assert reason is not None
        assert "mallory" in reason
        assert "not an approver" in reason


def test_requester_cannot_approve_their_own_request() -> None:
    """Four eyes: even a listed approver may not approve what they asked for."""
    reason = refusal_reason(_decision(reviewer="alice"), GUARDED, [], GUARDED_INPUT)

    assert reason is not None
    assert "alice" in reason
    assert "cannot approve" in reason


def test_requester_may_reject_their_own_request() -> None:
    """Withdrawing one's own request is always safe."""
    assert refusal_reason(_decision(False, reviewer="alice"), GUARDED, [], GUARDED_INPUT) is None


def test_requester_cannot_approve_even_when_anyone_may_decide() -> None:
    run_input = WorkflowInput(user_request="Delete prod rows", requester="alice")

    assert refusal_reason(_decision(reviewer="alice"), OPEN, [], run_input) is not None


def test_amendment_is_accepted_with_an_approval() -> None:
    """Approve-with-edits: the approver narrows the action and approves that."""
    amended = ACTION.model_copy(update={"description": "Delete 10 rows only"})

    assert refusal_reason(_decision(amended=amended), OPEN, [], OPEN_INPUT) is None


def test_amendment_with_a_rejection_is_refused() -> None:
    """An amended action that is not approved would be meaningless, and confusing in the trail."""
    amended = ACTION.model_copy(update={"description": "Delete 10 rows only"})

    reason = refusal_reason(_decision(False, amended=amended), OPEN, [], OPEN_INPUT)

    assert reason is not None
    assert "amend" in reason
