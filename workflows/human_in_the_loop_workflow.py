"""The human-in-the-loop agent: an LLM proposes, a person decides, Temporal remembers.

Message surface (names in ``constants.py``):
- signal ``approval_decision`` (``ApprovalDecision`` JSON): an approver's decision, from
  ``temporal workflow signal`` or any client. Fire-and-forget: the sender learns nothing.
- signal ``approve`` (``true`` / ``false``): the short form for the CLI; it decides the
  pending request, recorded with reviewer ``temporal-cli``.
- update ``submit_decision`` (``ApprovalDecision``): the same decision, but the sender is
  told whether it was applied. ``send_approval`` uses it. It has no validator on purpose:
  a validator's rejection leaves no trace in history, and every refusal belongs in the
  audit trail.
- query ``get_status``: state, the approval request, the decision and the audit trail.

A decision is applied at most once. One for another request, one that arrives when nothing
waits, one from someone who may not decide, or a payload that does not decode is refused
and recorded; it never changes the outcome.
"""

import contextlib
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.execute_action import execute_action
    from activities.notify_approval_needed import notify_approval_needed
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
    from models.models import (
        AnalysisRequest,
        ApprovalDecision,
        ApprovalRequest,
        ApprovalStatus,
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

Decoded = TypeVar("Decoded")

ANALYSIS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
SIDE_EFFECT_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)
APPROVAL_STATUS = SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)
FINAL_APPROVAL_STATUS = {
    Outcome.AUTO_APPROVED: ApprovalStatus.AUTO_APPROVED,
    Outcome.APPROVED: ApprovalStatus.APPROVED,
    Outcome.REJECTED: ApprovalStatus.REJECTED,
    Outcome.TIMED_OUT: ApprovalStatus.TIMED_OUT,
    Outcome.ANALYSIS_FAILED: ApprovalStatus.FAILED,
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
        self._decision: ApprovalDecision | None = None
        self._execution: ExecutionResult | None = None
        self._result: WorkflowResult | None = None
        self._audit: list[AuditEvent] = []

    @workflow.run
    async def run(self, run_input: WorkflowInput) -> WorkflowResult:
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
        decision = await self._await_decision()
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
    def approval_decision(self, payload: RawValue) -> None:
        """Takes the raw payload so that one that does not decode is recorded, not dropped."""
        decision = self._decode(payload, ApprovalDecision)
        if decision is not None:
            self._apply(decision)

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, payload: RawValue) -> None:
        approved = self._decode(payload, bool)
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
        assert self._decision is not None
        return self._decision

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
        self._record("action_proposed", _describe(action))
        return action

    async def _await_decision(self) -> ApprovalDecision | None:
        """Notify, then wait durably (no worker resources held) for a decision or the deadline."""
        assert self._action is not None and self._risk is not None
        now = workflow.now()
        timeout = timedelta(seconds=self._input.approval_timeout_seconds)
        self._approval_request = ApprovalRequest(
            workflow_id=workflow.info().workflow_id,
            request_id=str(workflow.uuid4()),
            user_request=self._input.user_request,
            proposed_action=self._action,
            risk_reasons=self._risk.reasons,
            requested_at=now,
            deadline=now + timeout,
        )
        self._state = WorkflowState.AWAITING_APPROVAL
        self._set_approval_status(ApprovalStatus.PENDING)
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

    def _decode(self, payload: RawValue, type_hint: type[Decoded]) -> Decoded | None:
        try:
            return workflow.payload_converter().from_payload(payload.payload, type_hint)
        except ValidationError as err:
            reason = f"not a valid {type_hint.__name__} ({summarise(err)})"
        except RuntimeError as err:  # not JSON at all, e.g. binary or an unknown encoding
            reason = f"the payload could not be decoded: {err}"
        self._record("decision_refused", reason)
        return None

    def _apply(self, decision: ApprovalDecision) -> str | None:
        """Apply the decision if the rules allow it; return why not otherwise."""
        awaiting = self._state == WorkflowState.AWAITING_APPROVAL
        reason = refusal_reason(
            decision, self._approval_request if awaiting else None, self._decision, self._input
        )
        if reason is not None:
            workflow.logger.warning("Refused decision for %s: %s", decision.request_id, reason)
            self._record("decision_refused", f"from {decision.reviewer}: {reason}")
            return reason
        self._decision = decision.model_copy(
            update={"decided_at": decision.decided_at or workflow.now()}
        )
        verdict = "approved" if decision.approved else "rejected"
        self._record(
            f"decision_{verdict}", f"by {decision.reviewer}: {decision.reviewer_notes or '-'}"
        )
        if decision.amended_action is not None and self._action is not None:
            self._record(
                "action_amended",
                f"by {decision.reviewer}: {_describe(self._action)} -> "
                f"{_describe(decision.amended_action)}",
            )
            self._action = decision.amended_action
        return None

    async def _execute(self, outcome: Outcome) -> WorkflowResult:
        assert self._action is not None
        self._state = WorkflowState.EXECUTING
        request_id = self._approval_request.request_id if self._approval_request else "auto"
        self._execution = await workflow.execute_activity(
            execute_action,
            ExecuteActionInput(
                idempotency_key=f"{workflow.info().workflow_id}/{request_id}",
                action=self._action,
            ),
            start_to_close_timeout=timedelta(seconds=120),
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
            execution=self._execution,
            audit_trail=self._audit,
        )
        self._state = WorkflowState.COMPLETED
        self._set_approval_status(FINAL_APPROVAL_STATUS[outcome])
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result

    def _set_approval_status(self, status: ApprovalStatus) -> None:
        """Only when the starter set the attribute: an unregistered one would fail the task."""
        if workflow.info().typed_search_attributes.get(APPROVAL_STATUS) is not None:
            workflow.upsert_search_attributes([APPROVAL_STATUS.value_set(status.value)])

    def _record(self, event: str, detail: str) -> None:
        self._audit.append(AuditEvent(at=workflow.now(), event=event, detail=detail))
        workflow.logger.info("%s: %s", event, detail)


def _describe(action: ProposedAction) -> str:
    return f"{action.action_type}: {action.description}"


def _root_message(err: BaseException) -> str:
    """The innermost cause's message: the activity's own words, not Temporal's wrapping."""
    while err.__cause__ is not None:
        err = err.__cause__
    return str(err)
