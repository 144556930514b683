"""The approval window: one request, open for decisions until its deadline.

Composed by ``HumanInTheLoopWorkflow`` (a single decision or a quorum) and by each stage's
``ApprovalWorkflow``, so the waiting logic exists once. It opens the request, sends the
notices alongside the wait, escalates, counts the votes and closes at the deadline.

The deadline rule: a decision counts only if the workflow handles it before the deadline.
Handlers judge a decision by the window's state alone, never by the clock, so a replay
judges it the same. The clock is read once, where the votes settle the request: if that
workflow task runs at or after the deadline, a worker was down across it (the SDK hands a
task's signals and updates over before its timers, so the decision would otherwise win),
and the request times out. Fail closed: nothing approved late executes. That task always
issues commands (execute, complete or preview), so a replay runs it at the same time.
An update's validator refuses a late update at once; a rejected update leaves no history.

A run made by a reset is judged the same way. Temporal hands it again the decisions that
came after the reset's point, as if they came at the reset's time: before the deadline
they count, after it they are late. The run cannot tell a decision its first run took in
time from one it refused as late without reading that run's history, so it fails closed:
a reset after the deadline asks for a new request rather than executing an old approval.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from models.limits import MAX_AUDIT_DETAIL_CHARS, cut, decision_problem, votes_problem
    from models.models import (
        ApprovalDecision,
        ApprovalRequest,
        EscalationPolicy,
        ProposedAction,
        SlackMessage,
        VotingPolicy,
    )
    from workflows.decision_rules import (
        AmendmentRule,
        amendment_problem,
        duplicate_of,
        refusal_reason,
        settled,
    )
    from workflows.notifications import close_slack_messages, send_notices

Record = Callable[[str, str], None]


class ContinueAsNewSuggested(Exception):
    """The run's history has grown enough that Temporal suggests a new run: the request
    goes on there, as it is (``HumanInTheLoopWorkflow`` carries it)."""


class DecisionRefused(Exception):
    """A decision the window does not count; the message says why."""


class AlreadyApplied(Exception):
    """The same decision, already counted: a retry or a second browser tab."""

    def __init__(self, vote: ApprovalDecision) -> None:
        super().__init__(f"already applied: {vote.reviewer} {_verdict(vote)}")
        self.vote = vote


@dataclass
class WindowRules:
    """Who may decide a window's request and how the votes settle it."""

    voting: VotingPolicy = field(default_factory=VotingPolicy)
    barred: list[str] = field(default_factory=list)  # the requester, and amenders
    escalation: EscalationPolicy | None = None
    may_amend: bool = True
    amendment_rule: AmendmentRule = amendment_problem  # a 1.0 run's is legacy_1_0's
    continues_as_new: bool = False  # the request's workflow carries it into a new run


class ApprovalWindow:
    """One request awaiting a decision: its votes, its deadline, its notices."""

    def __init__(self, request: ApprovalRequest, rules: WindowRules, record: Record) -> None:
        self.request = request
        self.rules = rules
        self.votes: list[ApprovalDecision] = []
        self.decision: ApprovalDecision | None = None
        self.amenders: list[str] = []  # who edited the action this request now shows
        self.slack_messages: list[SlackMessage] = []  # shown the outcome once it closes
        self.open = True
        self._record = record
        self._notices: list[asyncio.Task[None]] = []

    def refusal(self, decision: ApprovalDecision) -> str | None:
        """Why ``decision`` would not count now, or None; raises ``AlreadyApplied`` for a
        repeat of a counted vote. State only: no clock (see the module's deadline rule)."""
        if (vote := duplicate_of(decision, self.votes)) is not None:
            raise AlreadyApplied(vote)
        if problem := decision_problem(decision):
            return problem
        if (decided := self.decision) is not None:
            return f"request {self.request.request_id} was already decided by {decided.reviewer}"
        if not self.open:
            return f"request {self.request.request_id} is no longer waiting for a decision"
        if problem := votes_problem(len(self.votes)):
            return problem
        if decision.amended_action is not None and not self.rules.may_amend:
            return "this request cannot be amended; reject it and ask for a new request"
        rules = self.rules
        return refusal_reason(
            decision, self.request, self.votes, rules.barred, rules.amendment_rule
        )

    def late(self) -> str | None:
        """Why an update handled now is too late: only for validators, whose rejections
        leave no history (so reading the clock cannot differ on replay)."""
        if _past(self.request.deadline):
            return f"arrived after the deadline ({self.request.deadline.isoformat()})"
        return None

    def apply(self, decision: ApprovalDecision) -> ApprovalDecision:
        """Count the vote (raises ``DecisionRefused`` or ``AlreadyApplied``); the decision
        as recorded, stamped with the workflow's time of handling."""
        if reason := self.refusal(decision):
            raise DecisionRefused(reason)
        vote = decision.model_copy(
            update={"decided_at": workflow.now(), "stage": self.request.stage}
        )
        self.votes.append(vote)
        notes = vote.reviewer_notes or "-"
        self._record(f"decision_{_verdict(vote)}", f"by {vote.reviewer}: {notes}")
        if vote.amended_action is not None:
            self._amend(vote.reviewer, vote.amended_action)
        voting = self.rules.voting
        if voting.required_approvals > 1:
            approvals = sum(v.approved for v in self.votes)
            self._record(
                "votes_tallied",
                f"{approvals}/{voting.required_approvals} approvals, "
                f"{len(self.votes) - approvals} rejections",
            )
        if settled(self.votes, voting, self._eligible()) is not None:
            self.decision = vote
        return vote

    def _amend(self, reviewer: str, amended: ProposedAction) -> None:
        """Approve-with-edits: the amended call is what runs, so it is what the request
        shows from now on; votes cast on the earlier call no longer count."""
        before = self.request.proposed_action
        self._record(
            "action_amended", f"by {reviewer}: {call_text(before)} -> {call_text(amended)}"
        )
        self.request = self.request.model_copy(update={"proposed_action": amended})
        if reviewer not in self.amenders:
            self.amenders.append(reviewer)
        earlier, self.votes = self.votes[:-1], self.votes[-1:]
        if earlier:
            voters = ", ".join(vote.reviewer for vote in earlier)
            self._record("votes_reset", f"votes by {voters} were for the earlier action")

    async def wait(self, *, resumed: bool = False) -> ApprovalDecision | None:
        """Notify (unless ``resumed`` in a new run), then wait durably for the votes to
        settle or the deadline to pass. Raises ``ContinueAsNewSuggested`` when the run's
        history should move to a new run first.

        Notices go out alongside the wait, never before it: a slow webhook never moves the
        deadline the notice announced. Whatever is still sending when the window closes is
        cancelled, so nothing holds a decided request open."""
        if not resumed:
            self._notify(self.request, opening=True)
        continuing = False
        try:
            escalation = self.rules.escalation
            if escalation is not None and not self.request.escalated:
                at = self.request.requested_at + timedelta(seconds=escalation.after_seconds)
                if at < self.request.deadline and not await self._wait_until(at):
                    self._escalate(escalation)
            await self._wait_until(self.request.deadline)
            continuing = self.decision is None and self._continue_suggested()
            if continuing:
                raise ContinueAsNewSuggested()
            # Read in the task that settled it, before anything else can take a task.
            late = self.decision is not None and _past(self.request.deadline)
        except asyncio.CancelledError:
            if self.slack_messages:  # no live buttons on a request that can no longer run
                closing = await close_slack_messages(self.slack_messages, self.request, None, True)
                for event, detail in closing:
                    self._record(event, detail)
            raise
        finally:
            self.open = continuing  # the request goes on in the next run
            await self._stop_notices()
        if late and self.decision is not None:
            self._record(
                "decision_late",
                f"from {self.decision.reviewer}: handled after the deadline "
                f"({self.request.deadline.isoformat()}); the request timed out",
            )
            self.decision = None
        if self.slack_messages:  # none unless Slack is configured: no command otherwise
            closing = await close_slack_messages(self.slack_messages, self.request, self.decision)
            for event, detail in closing:
                self._record(event, detail)
        return self.decision

    async def _wait_until(self, until: datetime) -> bool:
        """Whether the votes settled before ``until``: a durable timer, no worker held. The
        timer is left to fire on its own once the votes settle (cancelling it would be one
        more event in every decided run's history)."""
        remaining = until - workflow.now()
        if self.decision is None and remaining > timedelta(0):
            timer = asyncio.ensure_future(workflow.sleep(remaining))
            await workflow.wait_condition(
                lambda: self.decision is not None or timer.done() or self._continue_suggested()
            )
        return self.decision is not None

    def _continue_suggested(self) -> bool:
        """Temporal suggests a new run (refused signals grew the history), and this
        window's workflow can carry it there."""
        return self.rules.continues_as_new and workflow.info().is_continue_as_new_suggested()

    def _escalate(self, escalation: EscalationPolicy) -> None:
        """Remind, and let the next tier decide too (only widens an explicit approver list)."""
        approvers = self.request.approvers
        self.request = self.request.model_copy(
            update={
                "escalated": True,
                "approvers": [*approvers, *escalation.approvers] if approvers else [],
            }
        )
        tier = ", ".join(escalation.approvers)
        self._record("escalated", f"no decision after {escalation.after_seconds}s; to {tier}")
        self._notify(self.request)

    def _eligible(self) -> int:
        """Everyone who may ever vote (0: anyone), escalation included, so a quorum is never
        judged unreachable before the next tier is asked."""
        if not self.request.approvers:
            return 0
        escalation = self.rules.escalation
        later = escalation.approvers if escalation is not None else []
        return len({*self.request.approvers, *later})

    def _notify(self, request: ApprovalRequest, *, opening: bool = False) -> None:
        self._notices.append(asyncio.create_task(self._send(request, opening)))

    async def _send(self, request: ApprovalRequest, opening: bool) -> None:
        for event, detail in await send_notices(request, self.slack_messages, opening=opening):
            self._record(event, detail)

    async def _stop_notices(self) -> None:
        """Cancel notices still retrying: moot once the request closed (failures already
        met are in the audit trail). A notice cancelled while its activity runs ends in the
        activity's cancellation (an ``ActivityError``), not ``CancelledError``: that is this
        cancellation too, never the run's (which reaches the run by its own path)."""
        for notices in self._notices:
            if not notices.done():
                notices.cancel()
                self._record("notification_cancelled", "the request closed before its notices")
            try:
                await notices
            except (asyncio.CancelledError, ActivityError) as err:
                if not is_cancelled_exception(err):
                    raise


def _past(deadline: datetime) -> bool:
    """Whether this workflow task runs at or after ``deadline``."""
    return workflow.now() >= deadline


def describe(action: ProposedAction) -> str:
    return f"{action.action_type}: {action.description}"


def call_text(action: ProposedAction) -> str:
    """The action's tool call as the audit trail shows an edit of it: short enough that an
    amendment's detail holds both calls, before and after."""
    call = action.tool_call
    if call is None:
        return "no tool call"
    return cut(call.as_text(), MAX_AUDIT_DETAIL_CHARS // 2 - 100)


def _verdict(vote: ApprovalDecision) -> str:
    return "approved" if vote.approved else "rejected"
