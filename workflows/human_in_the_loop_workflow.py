"""The human-in-the-loop agent: an LLM proposes, a person decides, Temporal remembers.

Message surface:
- signal ``approval_decision`` (``ApprovalDecision`` as JSON): an approver's decision. Sent by
  ``send_approval`` or ``temporal workflow signal``. A decision for another request, one
  that arrives when nothing is pending, a repeat, or a payload that does not decode is
  refused and recorded in the audit trail; it never changes the outcome.
- query ``get_status``: where the run stands, the pending request, and the audit trail.
"""

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.execute_action import execute_action
    from activities.notify_approval_needed import notify_approval_needed
    from activities.openai_responses import AnalysisActivities
    from constants import APPROVAL_DECISION_SIGNAL, STATUS_QUERY, WORKFLOW_TYPE
    from models.models import (
        AnalysisRequest,
        ApprovalDecision,
        ApprovalRequest,
        AuditEvent,
        ExecuteActionInput,
        ExecutionResult,
        Outcome,
        ProposedAction,
        RiskAssessment,
        WorkflowInput,
        WorkflowResult,
        WorkflowState,
        WorkflowStatus,
    )
    from models.validation import summarise
    from workflows.decision_rules import refusal_reason
    from workflows.risk_policy import assess_risk

ANALYSIS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
SIDE_EFFECT_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)


@workflow.defn(name=WORKFLOW_TYPE)
class HumanInTheLoopWorkflow:
    def __init__(self) -> None:
        self._state = WorkflowState.ANALYSING
        self._approval_request: ApprovalRequest | None = None
        self._decision: ApprovalDecision | None = None
        self._result: WorkflowResult | None = None
        self._audit: list[AuditEvent] = []

    @workflow.run
    async def run(self, request: WorkflowInput) -> WorkflowResult:
        action = await self._analyse(request.user_request)
        if action is None:
            return await self._finish(Outcome.ANALYSIS_FAILED, self._audit[-1].detail)
        risk = assess_risk(
            request.user_request, action, always_require_approval=request.require_approval
        )
        self._record("risk_classified", "; ".join(risk.reasons) or "no risk found")
        if not risk.requires_approval:
            return await self._execute(action, risk, Outcome.AUTO_APPROVED)
        decision = await self._await_decision(request, action, risk)
        if decision is None:
            message = f"No decision within {request.approval_timeout_seconds}s; cancelled."
            self._record("timed_out", message)
            return await self._finish(Outcome.TIMED_OUT, message, action, risk)
        if not decision.approved:
            message = f"Rejected: {decision.reviewer_notes or 'no notes'}; nothing was executed."
            return await self._finish(Outcome.REJECTED, message, action, risk)
        return await self._execute(action, risk, Outcome.APPROVED)

    @workflow.signal(name=APPROVAL_DECISION_SIGNAL)
    def approval_decision(self, payload: RawValue) -> None:
        """Takes the raw payload so that one that does not decode is recorded, not dropped."""
        try:
            decision = workflow.payload_converter().from_payload(payload.payload, ApprovalDecision)
        except ValidationError as err:
            self._record("decision_refused", f"not an ApprovalDecision ({summarise(err)})")
            return
        except RuntimeError as err:  # not JSON at all, e.g. binary or an unknown encoding
            self._record("decision_refused", f"the payload could not be decoded: {err}")
            return
        self._apply(decision)

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> WorkflowStatus:
        # A query must not change state: it only reads.
        return WorkflowStatus(
            state=self._state,
            approval_request=self._approval_request,
            decision=self._decision,
            result=self._result,
            audit_trail=self._audit,
        )

    async def _analyse(self, user_request: str) -> ProposedAction | None:
        try:
            action = await workflow.execute_activity_method(
                AnalysisActivities.analyze_request,
                AnalysisRequest(user_request=user_request),
                start_to_close_timeout=timedelta(seconds=120),
                retry_policy=ANALYSIS_RETRY,
            )
        except ActivityError as err:
            self._record("analysis_failed", f"Analysis failed: {_root_message(err)}")
            return None
        self._record("action_proposed", f"{action.action_type}: {action.description}")
        return action

    async def _await_decision(
        self, request: WorkflowInput, action: ProposedAction, risk: RiskAssessment
    ) -> ApprovalDecision | None:
        """Notify, then wait durably (no worker resources held) for a decision or the deadline."""
        now = workflow.now()
        timeout = timedelta(seconds=request.approval_timeout_seconds)
        self._approval_request = ApprovalRequest(
            workflow_id=workflow.info().workflow_id,
            request_id=str(workflow.uuid4()),
            user_request=request.user_request,
            proposed_action=action,
            risk_reasons=risk.reasons,
            requested_at=now,
            deadline=now + timeout,
        )
        self._state = WorkflowState.AWAITING_APPROVAL
        await self._notify(self._approval_request)
        # The timeout is a durable timer: it survives worker and server restarts.
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._decision is not None, timeout=timeout)
        self._state = WorkflowState.DECIDED
        return self._decision

    async def _notify(self, pending: ApprovalRequest) -> None:
        """A failed notice is recorded, not fatal: the request can still be found and decided."""
        try:
            await workflow.execute_activity(
                notify_approval_needed,
                pending,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
        except ActivityError as err:
            self._record("notification_failed", _root_message(err))
            return
        self._record("approval_requested", f"request {pending.request_id}")

    def _apply(self, decision: ApprovalDecision) -> None:
        awaiting = self._state == WorkflowState.AWAITING_APPROVAL
        reason = refusal_reason(
            decision, self._approval_request if awaiting else None, self._decision
        )
        if reason is not None:
            workflow.logger.warning("Refused decision for %s: %s", decision.request_id, reason)
            self._record("decision_refused", reason)
            return
        if decision.decided_at is None:
            decision = decision.model_copy(update={"decided_at": workflow.now()})
        self._decision = decision
        verdict = "approved" if decision.approved else "rejected"
        self._record(f"decision_{verdict}", decision.reviewer_notes or "no notes")

    async def _execute(
        self, action: ProposedAction, risk: RiskAssessment, outcome: Outcome
    ) -> WorkflowResult:
        self._state = WorkflowState.EXECUTING
        request_id = self._approval_request.request_id if self._approval_request else "auto"
        execution = await workflow.execute_activity(
            execute_action,
            ExecuteActionInput(
                idempotency_key=f"{workflow.info().workflow_id}/{request_id}", action=action
            ),
            start_to_close_timeout=timedelta(seconds=120),
            retry_policy=SIDE_EFFECT_RETRY,
        )
        self._record("executed", execution.summary)
        verdict = "Approved" if outcome == Outcome.APPROVED else "Auto-approved (not risky)"
        return await self._finish(
            outcome, f"{verdict}; executed: {execution.summary}", action, risk, execution
        )

    async def _finish(
        self,
        outcome: Outcome,
        message: str,
        action: ProposedAction | None = None,
        risk: RiskAssessment | None = None,
        execution: ExecutionResult | None = None,
    ) -> WorkflowResult:
        self._result = WorkflowResult(
            outcome=outcome,
            message=message,
            proposed_action=action,
            risk=risk,
            request_id=self._approval_request.request_id if self._approval_request else None,
            decision=self._decision,
            execution=execution,
            audit_trail=self._audit,
        )
        self._state = WorkflowState.COMPLETED
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result

    def _record(self, event: str, detail: str) -> None:
        self._audit.append(AuditEvent(at=workflow.now(), event=event, detail=detail))
        workflow.logger.info("%s: %s", event, detail)


def _root_message(err: BaseException) -> str:
    """The innermost cause's message: the activity's own words, not Temporal's wrapping."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err)
