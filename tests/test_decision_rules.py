"""Who may decide what, and when: the rules that make a vote count once, apply only to the
pending request, and come only from someone allowed to give it.

``refusal_reason`` judges a decision on an open request; ``barred`` are the requester and
whoever amended the action (the four-eyes rule). Whether anything is waiting at all is the
``ApprovalWindow``'s state, judged by ``ApprovalWindow.refusal``."""

from datetime import UTC, datetime, timedelta

import pytest

from models.models import ApprovalDecision, ApprovalRequest, ProposedAction
from models.tools import ToolCall
from workflows.approval_window import AlreadyApplied, ApprovalWindow, WindowRules
from workflows.decision_rules import AmendmentRule, amendment_problem, refusal_reason
from workflows.legacy_1_0 import any_amendment

ACTION = ProposedAction(
    action_type="delete_records",
    description="Delete the test rows from production",
    reasoning="asked for",
    risky_action=True,
    tool_call=ToolCall(
        tool="delete_records",
        arguments={"table": "customers", "filters": [{"column": "status", "value": "test"}]},
    ),
)
ONE_ROW = {"table": "customers", "filters": [{"column": "id", "value": 2001}]}
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
NOBODY_BARRED: list[str] = []
REQUESTER = ["alice"]  # the run's requester is barred from approving


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
    assert refusal_reason(_decision(), OPEN, [], NOBODY_BARRED) is None
    assert refusal_reason(_decision(False), OPEN, [], NOBODY_BARRED) is None


def test_listed_approver_may_decide() -> None:
    assert refusal_reason(_decision(reviewer="bob"), GUARDED, [], REQUESTER) is None


def test_second_vote_from_the_same_reviewer_is_refused() -> None:
    """A vote counts once; a reviewer cannot flip their approval or stack up a quorum alone."""
    reason = refusal_reason(_decision(False), OPEN, [_decision()], NOBODY_BARRED)

    assert reason is not None
    assert "bob" in reason
    assert "already voted" in reason


def test_vote_from_another_reviewer_is_counted_alongside_earlier_ones() -> None:
    """Earlier votes by others do not block a new reviewer (quorum voting)."""
    assert refusal_reason(_decision(reviewer="carol"), OPEN, [_decision()], NOBODY_BARRED) is None


def _window(request: ApprovalRequest = OPEN) -> ApprovalWindow:
    return ApprovalWindow(request, WindowRules(barred=REQUESTER), lambda event, detail: None)


def test_decision_when_the_window_is_closed_or_decided_is_refused() -> None:
    """Once the request is settled or its window closed, there is nothing to decide."""
    closed = _window()
    closed.open = False
    reason = closed.refusal(_decision())
    assert reason is not None
    assert "no longer waiting" in reason

    decided = _window()
    decided.decision = _decision(reviewer="carol")
    reason = decided.refusal(_decision())
    assert reason is not None
    assert "already decided by carol" in reason


def test_an_open_window_applies_the_rules_with_its_barred_reviewers() -> None:
    """The window passes its request and barred list to the rules: the requester may not
    approve, another reviewer may."""
    window = _window()
    assert window.refusal(_decision()) is None
    reason = window.refusal(_decision(reviewer="alice"))
    assert reason is not None
    assert "cannot approve" in reason


def test_a_repeat_of_a_counted_vote_is_already_applied_not_refused() -> None:
    """A retry or a second tab is answered with the counted vote; a changed verdict from
    the same reviewer is a refusal (a vote counts once)."""
    window = _window()
    counted = _decision()
    window.votes.append(counted)
    with pytest.raises(AlreadyApplied) as repeat:
        window.refusal(_decision())
    assert repeat.value.vote == counted
    reason = window.refusal(_decision(False))
    assert reason is not None
    assert "already voted" in reason


def test_decision_for_another_request_is_refused_naming_both_ids() -> None:
    """A stale decision for an earlier request must not approve the current one."""
    reason = refusal_reason(_decision(request_id="req-old"), OPEN, [], NOBODY_BARRED)

    assert reason is not None
    assert "req-old" in reason
    assert "req-1" in reason


def test_unlisted_approver_is_refused_whether_approving_or_rejecting() -> None:
    """When approvers are listed, only they may decide."""
    for approved in (True, False):
        reason = refusal_reason(_decision(approved, reviewer="mallory"), GUARDED, [], REQUESTER)
        assert reason is not None
        assert "mallory" in reason
        assert "not an approver" in reason


def test_requester_cannot_approve_their_own_request() -> None:
    """Four eyes: even a listed approver may not approve what they asked for."""
    reason = refusal_reason(_decision(reviewer="alice"), GUARDED, [], REQUESTER)

    assert reason is not None
    assert "alice" in reason
    assert "cannot approve" in reason


def test_requester_may_reject_their_own_request() -> None:
    """Withdrawing one's own request is always safe."""
    assert refusal_reason(_decision(False, reviewer="alice"), GUARDED, [], REQUESTER) is None


def test_requester_cannot_approve_even_when_anyone_may_decide() -> None:
    assert refusal_reason(_decision(reviewer="alice"), OPEN, [], REQUESTER) is not None


def test_an_amender_cannot_approve_what_they_amended() -> None:
    """Whoever edited the action is barred from approving it in a later round, like the
    requester; the reason says so."""
    reason = refusal_reason(_decision(reviewer="dave"), OPEN, [], [*REQUESTER, "dave"])
    assert reason is not None
    assert "dave" in reason
    assert "requested or amended" in reason


def test_amendment_of_the_call_is_accepted_with_an_approval() -> None:
    """Approve-with-edits: the approver narrows the call's arguments and approves that."""
    amended = ACTION.with_arguments(ONE_ROW)

    assert refusal_reason(_decision(amended=amended), OPEN, [], NOBODY_BARRED) is None


@pytest.mark.parametrize(
    ("amended", "reason"),
    [
        (ACTION, "the amended call is the one awaiting approval; approve it without edits"),
        (
            ACTION.model_copy(update={"description": "Delete only customer 2001"}),
            "an edit changes only the tool call's arguments, not the words about it",
        ),
        (
            ACTION.with_arguments(ONE_ROW).model_copy(update={"parameters": {"id": "2001"}}),
            "an edit changes only the tool call's arguments, not the words about it",
        ),
        (
            ACTION.model_copy(
                update={"tool_call": ToolCall(tool="run_sql", arguments={"sql": "SELECT 1"})}
            ),
            "an edit changes the arguments of delete_records; it cannot switch to another tool",
        ),
        (
            ACTION.model_copy(update={"tool_call": None}),
            "an edit changes the tool call's arguments; this action has no tool call to edit",
        ),
    ],
    ids=["same call", "words only", "words and call", "another tool", "call removed"],
)
def test_an_amendment_that_does_not_edit_the_call_is_refused(
    amended: ProposedAction, reason: str
) -> None:
    """What executes is the call: an "edit" that leaves it as it was would approve the old
    call under new words, and another tool is another request, not a narrower call."""
    assert refusal_reason(_decision(amended=amended), OPEN, [], NOBODY_BARRED) == reason


def test_a_run_started_on_1_0_keeps_its_rule_any_amendment_counts() -> None:
    """1.0 counted whatever an approval amended; a run started then keeps that rule
    (``legacy_1_0.any_amendment``) until it ends."""
    reworded = ACTION.model_copy(update={"description": "Delete only customer 2001"})
    for amended in (ACTION, reworded, ACTION.model_copy(update={"tool_call": None})):
        decision = _decision(amended=amended)
        assert refusal_reason(decision, OPEN, [], NOBODY_BARRED, any_amendment) is None


@pytest.mark.parametrize("rule", [amendment_problem, any_amendment], ids=["today", "1.0"])
def test_a_stage_takes_no_amendment_under_either_rule(rule: AmendmentRule) -> None:
    """A stage's window (``may_amend=False``) refuses an amendment before any amendment rule
    is asked, so the stage's child workflow needs no version."""
    window = ApprovalWindow(
        OPEN, WindowRules(may_amend=False, amendment_rule=rule), lambda event, detail: None
    )
    reason = window.refusal(_decision(amended=ACTION.with_arguments(ONE_ROW)))
    assert reason == "this request cannot be amended; reject it and ask for a new request"


def test_amendment_with_a_rejection_is_refused() -> None:
    """An amended action that is not approved would be meaningless, and confusing in the trail."""
    amended = ACTION.with_arguments(ONE_ROW)

    reason = refusal_reason(_decision(False, amended=amended), OPEN, [], NOBODY_BARRED)

    assert reason is not None
    assert "amend" in reason
