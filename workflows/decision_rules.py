"""When a decision may be counted, and when the votes settle a request.

Plain functions, so the rules are unit-tested directly and stay deterministic in workflow
code. With the default voting policy (one approval needed, a rejection vetoes) the first
valid decision settles the request: the single-approver case is just a quorum of one.
"""

from collections.abc import Callable, Collection

from models.models import ApprovalDecision, ApprovalRequest, ProposedAction, VotingPolicy


def amendment_problem(amended: ProposedAction, current: ProposedAction) -> str | None:
    """Why ``amended`` is no edit of ``current``, or None.

    An edit changes what runs: the tool call's arguments, and nothing else. Words alone
    would change what people read and not what executes; another tool is another request,
    not a narrower call. The reasons never quote the amendment (a refusal is recorded).
    """
    before, after = current.tool_call, amended.tool_call
    if before is None or after is None:
        return "an edit changes the tool call's arguments; this action has no tool call to edit"
    if after.tool != before.tool:
        return f"an edit changes the arguments of {before.tool}; it cannot switch to another tool"
    if amended.with_arguments(before.arguments) != current:
        return "an edit changes only the tool call's arguments, not the words about it"
    if after.arguments == before.arguments:
        return "the amended call is the one awaiting approval; approve it without edits"
    return None


# Whether an amendment may stand in for the action awaiting approval: ``amendment_problem``,
# or a 1.0 run's rule (``workflows/legacy_1_0.py``).
AmendmentRule = Callable[[ProposedAction, ProposedAction], str | None]


def refusal_reason(
    decision: ApprovalDecision,
    awaiting: ApprovalRequest,
    votes: list[ApprovalDecision],
    barred: Collection[str] = (),
    amendment_rule: AmendmentRule = amendment_problem,
) -> str | None:
    """Why ``decision`` must not be counted on ``awaiting``, or None when it may.

    ``votes`` are those already counted; ``barred`` requested or amended the action now
    awaiting approval, so they may not approve it (the four-eyes rule).
    """
    if decision.request_id != awaiting.request_id:
        return (
            f"request ID {decision.request_id!r} does not match the pending request "
            f"{awaiting.request_id!r}"
        )
    if decision.stage is not None and decision.stage != awaiting.stage:
        return f"the decision is for stage {decision.stage!r}; stage {awaiting.stage!r} waits"
    if awaiting.approvers and decision.reviewer not in awaiting.approvers:
        return f"{decision.reviewer!r} is not an approver of this request"
    if decision.approved and decision.reviewer in barred:
        return f"{decision.reviewer!r} requested or amended this action and cannot approve it"
    if decision.amended_action is not None and not decision.approved:
        return "only an approval can amend the action"
    if decision.amended_action is not None and (
        problem := amendment_rule(decision.amended_action, awaiting.proposed_action)
    ):
        return problem
    if any(vote.reviewer == decision.reviewer for vote in votes):
        return f"{decision.reviewer!r} has already voted; a vote counts once"
    return None


def duplicate_of(
    decision: ApprovalDecision, votes: list[ApprovalDecision]
) -> ApprovalDecision | None:
    """The counted vote ``decision`` repeats (same request, reviewer and verdict), if any: a
    retry or a second tab is answered "already applied", never counted twice. A request ID
    names one round, so a repeat of an earlier round's vote is no repeat here."""
    for vote in votes:
        same_stage = decision.stage is None or decision.stage == vote.stage
        if (vote.request_id, vote.reviewer, vote.approved) == (
            decision.request_id,
            decision.reviewer,
            decision.approved,
        ) and (same_stage and vote.amended_action == decision.amended_action):
            return vote
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
