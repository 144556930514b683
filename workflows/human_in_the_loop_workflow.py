"""The human-in-the-loop agent: an LLM proposes, a person decides, Temporal remembers.

Message surface (names in ``constants.py``):
- signal ``approval_decision`` (``ApprovalDecision`` JSON): an approver's decision, from
  ``temporal workflow signal`` or any client. Fire-and-forget: the sender learns nothing.
- signal ``approve`` (``true`` / ``false``): the short form for the CLI; it decides the
  pending request, recorded with reviewer ``temporal-cli``.
  Both signal handlers take ``*payloads`` and validate the one they expect themselves, so a
  payload of the wrong shape, or a signal sent with none or two (which would make a
  one-parameter handler raise TypeError and fail every workflow task), is refused and
  recorded.
- update ``submit_decision`` (``ApprovalDecision``): the same decision, but the sender is
  told whether it was applied. ``send_approval`` uses it. It has no validator on purpose:
  a validator's rejection leaves no trace in history, and every refusal belongs in the
  audit trail.
- query ``get_status``: state, the approval request, votes, the current stage, the audit
  trail.

A decision is applied at most once per reviewer. One for another request, one that arrives
when nothing waits, one from someone who may not decide, or a signal without exactly one
valid payload is refused and recorded; it never changes the outcome. (A payload the data
converter cannot decode at all, e.g. in an unknown encoding, never reaches the handler: the
SDK drops it and logs that on the worker. A malformed ``submit_decision`` is refused by the
SDK the same way, but its sender is told.)

Extensions, each off by default so the single-approver story reads as before:
voting (``WorkflowInput.voting``), escalation (``WorkflowInput.escalation``) and staged
approval, one ``ApprovalWorkflow`` child per stage (``approval_stages``, or chosen by the
risk policy for large amounts). Stages replace the single decision: ``WorkflowInput``
refuses explicit stages with approvers, voting or escalation, and when the risk policy
stages a request that has them, the audit trail records that they do not apply.
"""

import contextlib
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.execute_action import execute_action
    from activities.openai_responses import AnalysisActivities
    from constants import (
        APPROVAL_DECISION_SIGNAL,
        APPROVAL_STATUS_SEARCH_ATTRIBUTE,
        APPROVE_SIGNAL,
        SHORTHAND_REVIEWER,
        STATUS_QUERY,
        SUBMIT_DECISION_UPDATE,
        WORKFLOW_TYPE,
    )
    from models.limits import (
        MAX_AUDIT_DETAIL_CHARS,
        MAX_NAME_CHARS,
        cut,
        decision_problem,
        run_input_problem,
        votes_problem,
    )
    from models.models import (
        AnalysisRequest,
        ApprovalDecision,
        ApprovalRequest,
        ApprovalStatus,
        ApproveSignalPayload,
        AuditEvent,
        EscalationPolicy,
        ExecuteActionInput,
        ExecutionResult,
        Outcome,
        ProposedAction,
        RiskAssessment,
        StageApprovalInput,
        StageOutcome,
        StageProgress,
        WorkflowInput,
        WorkflowResult,
        WorkflowState,
        WorkflowStatus,
    )
    from models.validation import PayloadRefused, single_payload
    from workflows.approval_workflow import ApprovalWorkflow
    from workflows.audit_trail import AuditBounds
    from workflows.decision_rules import refusal_reason, settled
    from workflows.metrics import record_approval_requested, record_outcome
    from workflows.notifications import root_message, send_notices
    from workflows.risk_policy import approval_stages, assess_risk

Decoded = TypeVar("Decoded")

ANALYSIS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
# Runs started before the input limits (models/limits.py) replay as they ran: a request or a
# decision over a limit that such a run accepted is still accepted on replay.
INPUT_LIMITS_PATCH = "input-limits"
SIDE_EFFECT_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)
APPROVAL_STATUS = SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)
FINAL_APPROVAL_STATUS = {
    Outcome.AUTO_APPROVED: ApprovalStatus.AUTO_APPROVED,
    Outcome.APPROVED: ApprovalStatus.APPROVED,
    Outcome.REJECTED: ApprovalStatus.REJECTED,
    Outcome.TIMED_OUT: ApprovalStatus.TIMED_OUT,
    Outcome.ANALYSIS_FAILED: ApprovalStatus.FAILED,
    Outcome.INPUT_REFUSED: ApprovalStatus.FAILED,
}


@workflow.defn(name=WORKFLOW_TYPE)
class HumanInTheLoopWorkflow:
    @workflow.init
    def __init__(self, run_input: WorkflowInput) -> None:
        # Initialised from the input so that handlers running before ``run`` can use it.
        self._input = run_input
        self._state = WorkflowState.ANALYSING
        self._action: ProposedAction | None = None
        self._risk: RiskAssessment | None = None
        self._approval_request: ApprovalRequest | None = None
        self._votes: list[ApprovalDecision] = []
        self._decision: ApprovalDecision | None = None
        self._stage: StageProgress | None = None
        self._staged = False
        self._stage_outcomes: list[StageOutcome] = []
        self._execution: ExecutionResult | None = None
        self._result: WorkflowResult | None = None
        self._audit: list[AuditEvent] = []
        self._audit_bounds = AuditBounds()

    @workflow.run
    async def run(self, run_input: WorkflowInput) -> WorkflowResult:
        # start_workflow and the inbox check first; this catches starts that bypass them.
        if (problem := run_input_problem(run_input)) and workflow.patched(INPUT_LIMITS_PATCH):
            self._record("input_refused", problem)
            return await self._finish(Outcome.INPUT_REFUSED, f"Refused: {problem}.")
        self._action = await self._analyse(run_input.user_request)
        if self._action is None:
            return await self._finish(Outcome.ANALYSIS_FAILED, self._audit[-1].detail)
        self._risk = assess_risk(
            run_input.user_request,
            self._action,
            always_require_approval=run_input.require_approval,
        )
        self._record("risk_classified", "; ".join(self._risk.reasons) or "no risk found")
        if not self._risk.requires_approval:
            return await self._execute(Outcome.AUTO_APPROVED)
        stages = run_input.approval_stages or approval_stages(run_input.user_request, self._action)
        decision = await (self._run_stages(stages) if stages else self._await_decision())
        if decision is None:
            message = f"No decision within {run_input.approval_timeout_seconds}s; cancelled."
            self._record("timed_out", message)
            return await self._finish(Outcome.TIMED_OUT, message)
        if not decision.approved:
            notes = decision.reviewer_notes or "no notes"
            message = f"Rejected by {decision.reviewer}: {notes}. Nothing was executed."
            return await self._finish(Outcome.REJECTED, message)
        return await self._execute(Outcome.APPROVED)

    @workflow.signal(name=APPROVAL_DECISION_SIGNAL)
    def approval_decision(self, *payloads: object) -> None:
        decision = self._decode(payloads, ApprovalDecision, "a valid ApprovalDecision")
        if decision is not None:
            self._apply(decision)

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, *payloads: object) -> None:
        approved = self._decode(payloads, ApproveSignalPayload, "true or false")
        if approved is None:
            return
        pending = self._approval_request.request_id if self._approval_request else "none"
        self._apply(
            ApprovalDecision(request_id=pending, approved=approved, reviewer=SHORTHAND_REVIEWER)
        )

    @workflow.update(name=SUBMIT_DECISION_UPDATE)
    def submit_decision(self, decision: ApprovalDecision) -> ApprovalDecision:
        """Apply the decision and return it as recorded, or fail the update with the reason."""
        refusal = self._apply(decision)
        if refusal is not None:
            raise ApplicationError(refusal, type="DecisionRefused", non_retryable=True)
        return self._votes[-1]

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> WorkflowStatus:
        # A query must not change state: it only reads.
        return WorkflowStatus(
            state=self._state,
            approval_request=self._approval_request,
            decision=self._decision,
            votes=self._votes,
            required_approvals=1 if self._staged else self._input.voting.required_approvals,
            current_stage=self._stage,
            result=self._result,
            audit_trail=self._audit,
        )

    async def _analyse(self, user_request: str) -> ProposedAction | None:
        try:
            action = await workflow.execute_activity_method(
                AnalysisActivities.analyze_request,
                AnalysisRequest(user_request=user_request),
                start_to_close_timeout=timedelta(seconds=90),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=ANALYSIS_RETRY,
            )
        except ActivityError as err:
            self._record("analysis_failed", f"Analysis failed: {root_message(err)}")
            return None
        self._record("action_proposed", _describe(action))
        return action

    def _open_request(self, approvers: list[str]) -> ApprovalRequest:
        """Create the approval request and mark the run as waiting for it."""
        assert self._action is not None and self._risk is not None
        now = workflow.now()
        self._approval_request = ApprovalRequest(
            workflow_id=workflow.info().workflow_id,
            request_id=str(workflow.uuid4()),
            user_request=self._input.user_request,
            proposed_action=self._action,
            risk_reasons=self._risk.reasons,
            requested_at=now,
            deadline=now + timedelta(seconds=self._input.approval_timeout_seconds),
            approvers=approvers,
        )
        self._state = WorkflowState.AWAITING_APPROVAL
        self._set_approval_status(ApprovalStatus.PENDING)
        record_approval_requested()
        return self._approval_request

    async def _await_decision(self) -> ApprovalDecision | None:
        """Notify, then wait durably (no worker resources held) for a decision or the deadline.

        The waits are durable timers, measured from when the request opened, so slow notices
        never push the deadline past the one the notice announced.
        """
        request = self._open_request(self._input.approvers)
        self._record("approval_requested", f"request {request.request_id}")
        await self._notify(request)
        escalation = self._input.escalation
        escalate_at = (
            request.requested_at + timedelta(seconds=escalation.after_seconds)
            if escalation is not None
            else request.deadline
        )
        if escalation is None or escalate_at >= request.deadline:
            await self._wait_for_decision(until=request.deadline)
        elif not await self._wait_for_decision(until=escalate_at):
            await self._escalate(escalation)
            await self._wait_for_decision(until=request.deadline)
        self._state = WorkflowState.DECIDED
        return self._decision

    async def _wait_for_decision(self, until: datetime) -> bool:
        remaining = until - workflow.now()
        if remaining > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._decision is not None, timeout=remaining)
        return self._decision is not None

    async def _escalate(self, escalation: EscalationPolicy) -> None:
        """Remind, and let the next tier decide too (only widens an explicit approver list)."""
        assert self._approval_request is not None
        approvers = self._approval_request.approvers
        self._approval_request = self._approval_request.model_copy(
            update={
                "escalated": True,
                "approvers": [*approvers, *escalation.approvers] if approvers else [],
            }
        )
        tier = ", ".join(escalation.approvers)
        self._record("escalated", f"no decision after {escalation.after_seconds}s; to {tier}")
        await self._notify(self._approval_request)

    async def _run_stages(self, stages: list[str]) -> ApprovalDecision | None:
        """Approve stage by stage, each in its own child workflow; stop at the first 'no'.

        Anyone may signal a stage, so the request names no approvers. Settings for a single
        decision only reach here when the risk policy chose the stages (``WorkflowInput``
        refuses them with explicit stages): the audit trail says they do not apply.
        """
        self._staged = True
        if unused := self._input.single_decision_settings():
            self._record(
                "stages_override",
                f"the risk policy staged this request, so these do not apply: {', '.join(unused)}",
            )
        parent_request = self._open_request(approvers=[])
        self._record(
            "approval_requested",
            f"request {parent_request.request_id}, in stages: {' -> '.join(stages)}",
        )
        for position, stage in enumerate(stages, start=1):
            outcome = await self._run_stage(parent_request, stage, position, len(stages))
            self._stage_outcomes.append(outcome)
            if outcome.approved is not True:
                break
        self._stage = None
        self._state = WorkflowState.DECIDED
        last = self._stage_outcomes[-1]
        if last.approved is not None:
            self._decision = ApprovalDecision(
                request_id=parent_request.request_id,
                approved=last.approved,
                reviewer=f"stage {last.stage}",
                decided_at=last.decided_at,
            )
        return self._decision

    async def _run_stage(
        self, parent_request: ApprovalRequest, stage: str, position: int, of: int
    ) -> StageOutcome:
        child_id = f"{workflow.info().workflow_id}-{stage}"
        self._stage = StageProgress(
            stage=stage, child_workflow_id=child_id, position=position, of=of
        )
        self._record("stage_started", f"{stage} ({position}/{of}) awaits child {child_id}")
        now = workflow.now()
        stage_request = parent_request.model_copy(
            update={
                "workflow_id": child_id,
                "stage": stage,
                "requested_at": now,
                "deadline": now + timedelta(seconds=self._input.approval_timeout_seconds),
            }
        )
        # The status query shows the waiting stage's own deadline, as its notice does.
        self._approval_request = parent_request.model_copy(
            update={"stage": stage, "deadline": stage_request.deadline}
        )
        # TERMINATE: a stage must never outlive the request it belongs to.
        outcome = await workflow.execute_child_workflow(
            ApprovalWorkflow.run,
            StageApprovalInput(stage=stage, approval_request=stage_request),
            id=child_id,
            parent_close_policy=ParentClosePolicy.TERMINATE,
        )
        for failure in outcome.notice_failures:  # the stage could still be decided
            self._record("notification_failed", f"stage {stage}: {failure}")
        verdict = {True: "approved", False: "rejected", None: "timed_out"}[outcome.approved]
        self._record(f"stage_{verdict}", f"{stage} ({position}/{of})")
        return outcome

    async def _notify(self, request: ApprovalRequest) -> None:
        for event, detail in await send_notices(request):
            self._record(event, detail)

    def _decode(
        self, payloads: tuple[object, ...], type_hint: type[Decoded], expected: str
    ) -> Decoded | None:
        """The signal's one payload as ``type_hint``; None, with the refusal recorded, if not."""
        try:
            return single_payload(payloads, type_hint, expected)
        except PayloadRefused as refused:
            self._record("decision_refused", str(refused))
            return None

    def _apply(self, decision: ApprovalDecision) -> str | None:
        """Count the decision if the rules allow it; return why not otherwise."""
        reason = self._over_limit(decision) or self._refusal(decision)
        if reason is not None:
            request_id = cut(decision.request_id, MAX_NAME_CHARS)  # logs stay bounded too
            workflow.logger.warning("Refused decision for %s: %s", request_id, reason)
            self._record("decision_refused", f"from {decision.reviewer}: {reason}")
            return reason
        decision = decision.model_copy(update={"decided_at": decision.decided_at or workflow.now()})
        self._votes.append(decision)
        verdict = "approved" if decision.approved else "rejected"
        self._record(
            f"decision_{verdict}", f"by {decision.reviewer}: {decision.reviewer_notes or '-'}"
        )
        if decision.amended_action is not None:
            self._amend(decision.reviewer, decision.amended_action)
        self._tally(decision)
        return None

    def _amend(self, reviewer: str, amended: ProposedAction) -> None:
        """Approve-with-edits: the amended action is what runs, so it is also what the
        request shows from now on (later voters, the status query, an escalation notice).
        The audit trail keeps both versions."""
        assert self._action is not None and self._approval_request is not None
        self._record(
            "action_amended", f"by {reviewer}: {_describe(self._action)} -> {_describe(amended)}"
        )
        self._action = amended
        self._approval_request = self._approval_request.model_copy(
            update={"proposed_action": amended}
        )
        # Earlier votes were cast on another action: only the amending vote still stands.
        # Patched, so a run that was amended under an older worker replays as it ran.
        earlier = self._votes[:-1]
        if earlier and workflow.patched("amendment-resets-earlier-votes"):
            self._votes = self._votes[-1:]
            voters = ", ".join(vote.reviewer for vote in earlier)
            self._record("votes_reset", f"votes by {voters} were for the earlier action")

    def _over_limit(self, decision: ApprovalDecision) -> str | None:
        """A decision over a size limit, or one vote too many (checked only while the
        request is undecided, where "already decided" would say more)."""
        problem = decision_problem(decision)
        if problem is None and self._decision is None and self._stage is None:
            problem = votes_problem(len(self._votes))
        return problem if problem and workflow.patched(INPUT_LIMITS_PATCH) else None

    def _refusal(self, decision: ApprovalDecision) -> str | None:
        if self._stage is not None:
            return f"this request is decided stage by stage; signal {self._stage.child_workflow_id}"
        if self._decision is not None:
            decided = self._decision
            return f"request {decided.request_id} was already decided by {decided.reviewer}"
        awaiting = self._state == WorkflowState.AWAITING_APPROVAL
        request = self._approval_request if awaiting else None
        return refusal_reason(decision, request, self._votes, self._input)

    def _tally(self, latest: ApprovalDecision) -> None:
        """Settle the request once the votes allow it; the settling vote is the decision."""
        assert self._approval_request is not None
        voting = self._input.voting
        outcome = settled(self._votes, voting, self._eligible_voters())
        if voting.required_approvals > 1:
            approvals = sum(vote.approved for vote in self._votes)
            self._record(
                "votes_tallied",
                f"{approvals}/{voting.required_approvals} approvals, "
                f"{len(self._votes) - approvals} rejections",
            )
        if outcome is not None:
            self._decision = latest

    def _eligible_voters(self) -> int:
        """Everyone who may ever vote on this request (0 when anyone may), escalation
        included, so the quorum is never judged unreachable before the next tier is asked."""
        if not self._input.approvers:
            return 0
        escalation = self._input.escalation
        later = escalation.approvers if escalation is not None else []
        return len({*self._input.approvers, *later})

    async def _execute(self, outcome: Outcome) -> WorkflowResult:
        assert self._action is not None
        self._state = WorkflowState.EXECUTING
        info = workflow.info()
        # Unique per start even when a workflow ID is reused: the request ID is a fresh UUID,
        # and a run with no request uses its first run ID (the same on every replay).
        request_id = (
            self._approval_request.request_id
            if self._approval_request
            else f"auto/{info.first_execution_run_id}"
        )
        self._execution = await workflow.execute_activity(
            execute_action,
            ExecuteActionInput(
                idempotency_key=f"{info.workflow_id}/{request_id}", action=self._action
            ),
            start_to_close_timeout=timedelta(seconds=120),
            heartbeat_timeout=timedelta(seconds=10),  # a crashed worker is noticed in seconds
            retry_policy=SIDE_EFFECT_RETRY,
        )
        self._record("executed", self._execution.summary)
        if outcome == Outcome.APPROVED:
            assert self._decision is not None
            verdict = f"Approved by {self._decision.reviewer}"
        else:
            verdict = "Auto-approved (no risk found)"
        return await self._finish(outcome, f"{verdict}; executed: {self._execution.summary}")

    async def _finish(self, outcome: Outcome, message: str) -> WorkflowResult:
        self._result = WorkflowResult(
            outcome=outcome,
            message=message,
            proposed_action=self._action,
            risk=self._risk,
            request_id=self._approval_request.request_id if self._approval_request else None,
            decision=self._decision,
            votes=self._votes,
            stages=self._stage_outcomes,
            execution=self._execution,
            audit_trail=self._audit,
        )
        self._state = WorkflowState.COMPLETED
        self._set_approval_status(FINAL_APPROVAL_STATUS[outcome])
        record_outcome(self._result, self._approval_request)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result

    def _set_approval_status(self, status: ApprovalStatus) -> None:
        """Only when the starter set the attribute: an unregistered one would fail the task."""
        if workflow.info().typed_search_attributes.get(APPROVAL_STATUS) is not None:
            workflow.upsert_search_attributes([APPROVAL_STATUS.value_set(status.value)])

    def _record(self, event: str, detail: str) -> None:
        entry = AuditEvent(at=workflow.now(), event=event, detail=detail)
        self._audit_bounds.append(self._audit, entry)  # within bounds: see audit_trail.py
        workflow.logger.info("%s: %s", event, cut(detail, MAX_AUDIT_DETAIL_CHARS))


def _describe(action: ProposedAction) -> str:
    return f"{action.action_type}: {action.description}"
