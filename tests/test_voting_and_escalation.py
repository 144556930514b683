"""Voting quorums and escalation, on the real workflow in the time-skipping server.

Decisions go through the ``submit_decision`` update with a reviewer name, as
``send_approval`` sends them, so every refusal is seen by the sender (its validator rejects
it before history; the status counts it in ``refused_updates``).
"""

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from benchmarks.fake_openai import FakeOpenAIServer
from constants import ALREADY_APPLIED_ERROR, DECISION_REFUSED_ERROR, SUBMIT_DECISION_UPDATE
from models.models import (
    ApprovalDecision,
    AuditEvent,
    EscalationPolicy,
    Outcome,
    ProposedAction,
    VotingPolicy,
    WorkflowInput,
    WorkflowState,
    WorkflowStatus,
)
from tests.helpers import (
    TimeSkippingRuns,
    script_risky_proposal,
    status_of,
    wait_for_state,
    wait_until,
)
from workflows.decision_rules import settled

ABC = ["a", "b", "c"]


@pytest.fixture
def risky_request(llm_server: FakeOpenAIServer, workflow_id: str) -> str:
    """A request text unique to the test, which the LLM answers with a risky proposal."""
    return script_risky_proposal(
        llm_server,
        f"Close the vendor accounts listed in ticket {workflow_id}",
        action_type="close_accounts",
        reasoning="closing accounts cannot be undone",
    )


def quorum_of_two(
    user_request: str, *, rejection_vetoes: bool = True, **fields: Any
) -> WorkflowInput:
    """Any two of a, b and c decide: the quorum most voting tests vote on."""
    return WorkflowInput(
        user_request=user_request,
        approvers=ABC,
        voting=VotingPolicy(required_approvals=2, rejection_vetoes=rejection_vetoes),
        **fields,
    )


async def vote(
    handle: WorkflowHandle,
    status: WorkflowStatus,
    reviewer: str,
    approved: bool,
    amended_action: ProposedAction | None = None,
) -> ApprovalDecision:
    assert status.approval_request is not None
    return await handle.execute_update(
        SUBMIT_DECISION_UPDATE,
        ApprovalDecision(
            request_id=status.approval_request.request_id,
            approved=approved,
            reviewer=reviewer,
            amended_action=amended_action,
        ),
        result_type=ApprovalDecision,
    )


def events(trail: list[AuditEvent], name: str) -> list[AuditEvent]:
    return [event for event in trail if event.event == name]


def within_a_second(elapsed: timedelta, seconds: int) -> bool:
    """Audit times are workflow-task times: a timer aimed at an instant fires a few
    milliseconds late, the time the server took to take the task's completion."""
    return timedelta(seconds=seconds) <= elapsed < timedelta(seconds=seconds + 1)


async def wait_until_escalated(handle: WorkflowHandle) -> WorkflowStatus:
    return await wait_until(
        lambda: status_of(handle),
        lambda s: s.approval_request is not None and s.approval_request.escalated,
    )


def vote_of(reviewer: str, approved: bool) -> ApprovalDecision:
    return ApprovalDecision(request_id="r", approved=approved, reviewer=reviewer)


# --- decision_rules.settled, directly -------------------------------------------------------


def test_single_approver_default_is_settled_by_the_first_vote() -> None:
    assert settled([vote_of("a", True)], VotingPolicy(), 0) is True
    assert settled([vote_of("a", False)], VotingPolicy(), 0) is False
    assert settled([], VotingPolicy(), 0) is None


def test_quorum_needs_enough_approvals() -> None:
    policy = VotingPolicy(required_approvals=2)
    assert settled([vote_of("a", True)], policy, 3) is None
    assert settled([vote_of("a", True), vote_of("b", True)], policy, 3) is True


def test_a_rejection_vetoes_by_default() -> None:
    policy = VotingPolicy(required_approvals=2)
    assert settled([vote_of("a", True), vote_of("b", False)], policy, 3) is False


def test_without_veto_rejection_waits_until_the_quorum_is_unreachable() -> None:
    policy = VotingPolicy(required_approvals=2, rejection_vetoes=False)
    assert settled([vote_of("a", False)], policy, 3) is None
    assert settled([vote_of("a", False), vote_of("b", True)], policy, 3) is None
    votes = [vote_of("a", False), vote_of("b", True), vote_of("c", True)]
    assert settled(votes, policy, 3) is True
    assert settled([vote_of("a", False), vote_of("b", False)], policy, 3) is False


def test_without_veto_and_anyone_may_vote_rejections_never_settle() -> None:
    """With no approver list the number of voters is open, so the quorum stays reachable."""
    policy = VotingPolicy(required_approvals=2, rejection_vetoes=False)
    rejections = [vote_of(name, False) for name in ("a", "b", "c", "d")]
    assert settled(rejections, policy, 0) is None


# --- WorkflowInput validation ---------------------------------------------------------------


def test_input_refuses_a_quorum_larger_than_the_approvers() -> None:
    with pytest.raises(ValidationError, match="3 approvals required but only 2 approvers"):
        WorkflowInput(
            user_request="x", approvers=["a", "b"], voting=VotingPolicy(required_approvals=3)
        )


def test_input_counts_escalation_approvers_towards_the_quorum() -> None:
    run_input = WorkflowInput(
        user_request="x",
        approvers=["a", "b"],
        voting=VotingPolicy(required_approvals=3),
        escalation=EscalationPolicy(after_seconds=60, approvers=["c"]),
    )
    assert run_input.voting.required_approvals == 3


# --- voting on the workflow -----------------------------------------------------------------


async def test_two_of_three_approvals_approve_and_the_status_shows_the_tally(
    runs: TimeSkippingRuns, risky_request: str
) -> None:
    """Before the quorum the run keeps waiting and shows who voted; the second approval settles."""
    async with runs.started(quorum_of_two(risky_request)) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        await vote(handle, status, "a", True)
        midway = await status_of(handle)
        assert midway.state == WorkflowState.AWAITING_APPROVAL
        assert midway.decision is None
        assert midway.required_approvals == 2
        assert [(v.reviewer, v.approved) for v in midway.votes] == [("a", True)]
        assert events(midway.audit_trail, "votes_tallied")[-1].detail.startswith("1/2 approvals")
        await vote(handle, status, "b", True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert [v.reviewer for v in result.votes] == ["a", "b"]
    assert result.decision is not None and result.decision.reviewer == "b"
    assert result.execution is not None


async def test_one_rejection_vetoes_by_default(runs: TimeSkippingRuns, risky_request: str) -> None:
    async with runs.started(quorum_of_two(risky_request)) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        await vote(handle, status, "a", True)
        await vote(handle, status, "b", False)
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert result.execution is None
    assert "Rejected by b" in result.message


async def test_without_veto_one_rejection_is_outvoted_by_two_approvals(
    runs: TimeSkippingRuns, risky_request: str
) -> None:
    async with runs.started(quorum_of_two(risky_request, rejection_vetoes=False)) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        await vote(handle, status, "a", False)
        assert (await status_of(handle)).state == WorkflowState.AWAITING_APPROVAL
        await vote(handle, status, "b", True)
        await vote(handle, status, "c", True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert [(v.reviewer, v.approved) for v in result.votes] == [
        ("a", False),
        ("b", True),
        ("c", True),
    ]


async def test_without_veto_two_rejections_of_three_reject_once_quorum_is_unreachable(
    runs: TimeSkippingRuns, risky_request: str
) -> None:
    async with runs.started(quorum_of_two(risky_request, rejection_vetoes=False)) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        await vote(handle, status, "a", False)
        assert (await status_of(handle)).decision is None
        await vote(handle, status, "b", False)
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert result.execution is None
    assert len(result.votes) == 2


async def test_a_second_vote_by_the_same_reviewer_is_refused_and_counted_once(
    runs: TimeSkippingRuns, risky_request: str
) -> None:
    """One person cannot reach a quorum of two by voting twice, nor change their vote: a
    repeat is answered "already applied" with the counted vote, a changed verdict refused.
    Neither reaches history (the validator rejects them): the status counts them instead."""
    async with runs.started(quorum_of_two(risky_request)) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        counted = await vote(handle, status, "a", True)
        with pytest.raises(WorkflowUpdateFailedError) as repeated:
            await vote(handle, status, "a", True)
        repeat = repeated.value.cause
        assert isinstance(repeat, ApplicationError) and repeat.type == ALREADY_APPLIED_ERROR
        assert ApprovalDecision.model_validate(repeat.details[0]) == counted
        with pytest.raises(WorkflowUpdateFailedError) as changed:
            await vote(handle, status, "a", False)
        refusal = changed.value.cause
        assert isinstance(refusal, ApplicationError) and refusal.type == DECISION_REFUSED_ERROR
        assert "'a' has already voted" in refusal.message
        after = await status_of(handle)
        assert after.state == WorkflowState.AWAITING_APPROVAL
        assert [v.reviewer for v in after.votes] == ["a"]
        assert after.refused_updates == 2
        assert events(after.audit_trail, "decision_refused") == []
        assert len(events(after.audit_trail, "decision_approved")) == 1
        await vote(handle, status, "c", True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert [v.reviewer for v in result.votes] == ["a", "c"]


async def test_a_quorum_not_reached_by_the_deadline_times_out(
    runs: TimeSkippingRuns, risky_request: str
) -> None:
    async with runs.started(quorum_of_two(risky_request, approval_timeout_seconds=120)) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        await vote(handle, status, "a", True)
        result = await handle.result()
    assert result.outcome == Outcome.TIMED_OUT
    assert result.execution is None
    assert [v.reviewer for v in result.votes] == ["a"]


async def test_a_quorum_that_needs_the_escalation_tier_waits_for_it(
    runs: TimeSkippingRuns, risky_request: str
) -> None:
    """WorkflowInput accepts this quorum (it counts the escalation tier), so the run must not
    judge it unreachable before the tier is asked (it once settled at the first approval)."""
    run_input = WorkflowInput(
        user_request=risky_request,
        approvers=["a", "b"],
        voting=VotingPolicy(required_approvals=3),
        escalation=EscalationPolicy(after_seconds=60, approvers=["c"]),
    )
    async with runs.started(run_input) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        await vote(handle, status, "a", True)
        await vote(handle, status, "b", True)
        after = await status_of(handle)
        assert after.decision is None
        assert after.state == WorkflowState.AWAITING_APPROVAL
        await runs.env.sleep(timedelta(seconds=61))
        escalated = await wait_until_escalated(handle)
        await vote(handle, escalated, "c", True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert [v.reviewer for v in result.votes] == ["a", "b", "c"]


def dormant_only(action: ProposedAction) -> ProposedAction:
    """The action with its call narrowed (here: the e-mail's subject), as an edit does."""
    assert action.tool_call is not None
    return action.with_arguments({**action.tool_call.arguments, "subject": "Dormant only"})


async def reopened(handle: WorkflowHandle, before: WorkflowStatus) -> WorkflowStatus:
    """The request the run opens once an approved edit reached the quorum: the edited call,
    previewed, asked about again."""
    assert before.approval_request is not None
    asked = before.approval_request.request_id
    return await wait_until(
        lambda: status_of(handle),
        lambda s: (
            s.state == WorkflowState.AWAITING_APPROVAL
            and s.approval_request is not None
            and s.approval_request.request_id != asked
        ),
    )


async def test_an_approval_with_edits_is_what_later_voters_see_and_what_executes(
    runs: TimeSkippingRuns, risky_request: str
) -> None:
    """Everyone votes on what will run: after a's edit, the status (which b reads) shows
    the edited call; once approved it is previewed and asked about again (a, who edited it,
    may not approve it), and it is what executes. The audit trail keeps both calls."""
    async with runs.started(quorum_of_two(risky_request)) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        assert status.approval_request is not None
        original = status.approval_request.proposed_action
        edited = dormant_only(original)
        await vote(handle, status, "a", True, amended_action=edited)
        seen_by_b = await status_of(handle)
        assert seen_by_b.approval_request is not None
        assert seen_by_b.approval_request.proposed_action == edited
        assert seen_by_b.decision is None
        await vote(handle, seen_by_b, "b", True)
        again = await reopened(handle, seen_by_b)
        assert again.approval_request is not None and again.approval_request.preview is not None
        assert "Dormant only" in again.approval_request.preview.summary
        await vote(handle, again, "b", True)
        await vote(handle, again, "c", True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.proposed_action == edited
    assert result.execution is not None and result.execution.tool_outcome is not None
    assert "subject 'Dormant only'" in result.execution.tool_outcome.preview.summary
    (amendment,) = events(result.audit_trail, "action_amended")
    assert amendment.detail.startswith("by a: send_email {") and "Dormant only" in amendment.detail


async def test_an_amendment_voids_the_approvals_given_to_the_earlier_action(
    runs: TimeSkippingRuns, risky_request: str
) -> None:
    """a approved the LLM's call, not b's narrower one: a's vote must not carry it over
    the quorum. a may vote again on the edited call."""
    async with runs.started(quorum_of_two(risky_request)) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        assert status.approval_request is not None
        await vote(handle, status, "a", True)
        edited = dormant_only(status.approval_request.proposed_action)
        await vote(handle, status, "b", True, amended_action=edited)
        after_amendment = await status_of(handle)
        assert after_amendment.decision is None, "a's approval of the old call counted"
        assert [v.reviewer for v in after_amendment.votes] == ["b"]
        await vote(handle, after_amendment, "a", True)
        again = await reopened(handle, after_amendment)
        await vote(handle, again, "a", True)
        await vote(handle, again, "c", True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert [v.reviewer for v in result.votes] == ["a", "c"]
    (reset,) = events(result.audit_trail, "votes_reset")
    assert "a" in reset.detail


# --- escalation -----------------------------------------------------------------------------


def escalating_input(user_request: str) -> WorkflowInput:
    return WorkflowInput(
        user_request=user_request,
        approvers=["alice"],
        escalation=EscalationPolicy(after_seconds=60, approvers=["boss"]),
        approval_timeout_seconds=300,
    )


async def test_without_a_decision_the_request_escalates_and_the_new_tier_may_approve(
    runs: TimeSkippingRuns,
    risky_request: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with runs.started(escalating_input(risky_request)) as handle:
        first = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        assert first.approval_request is not None
        assert not first.approval_request.escalated
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await vote(handle, first, "boss", True)
        assert "'boss' is not an approver" in str(refused.value.cause)
        await runs.env.sleep(timedelta(seconds=61))
        escalated = await wait_until_escalated(handle)
        assert escalated.approval_request is not None
        assert escalated.approval_request.approvers == ["alice", "boss"]
        assert escalated.approval_request.request_id == first.approval_request.request_id
        await vote(handle, escalated, "boss", True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "boss"
    (escalation,) = events(result.audit_trail, "escalated")
    assert within_a_second(escalation.at - first.approval_request.requested_at, 60)
    assert "boss" in escalation.detail
    notices = capsys.readouterr().out  # the terminal notices, printed by the notify activity
    assert notices.count("= APPROVAL REQUIRED =") == 1
    assert notices.count("= ESCALATED: APPROVAL STILL REQUIRED =") == 1
    assert "Who may decide: alice, boss" in notices


async def test_with_nobody_deciding_an_escalated_request_times_out_at_the_deadline(
    runs: TimeSkippingRuns, risky_request: str
) -> None:
    """Escalation reminds; it does not extend the deadline."""
    async with runs.started(escalating_input(risky_request)) as handle:
        result = await handle.result()
    assert result.outcome == Outcome.TIMED_OUT
    requested = events(result.audit_trail, "approval_requested")[0]
    (escalation,) = events(result.audit_trail, "escalated")
    (timed_out,) = events(result.audit_trail, "timed_out")
    assert within_a_second(escalation.at - requested.at, 60)
    assert within_a_second(timed_out.at - requested.at, 300)


async def test_a_decision_before_the_escalation_means_no_escalation(
    runs: TimeSkippingRuns,
    risky_request: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with runs.started(escalating_input(risky_request)) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        await vote(handle, status, "alice", True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "alice"
    assert events(result.audit_trail, "escalated") == []
    notices = capsys.readouterr().out
    assert notices.count("= APPROVAL REQUIRED =") == 1
    assert "ESCALATED" not in notices
