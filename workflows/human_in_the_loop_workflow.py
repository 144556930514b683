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

This module only declares the workflow and its handlers: the sandbox re-imports it for
every run a worker keeps in memory, so the contract and every step of the run live in
``workflows/human_in_the_loop_run.py``, passed through and loaded once per worker.
"""

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from constants import (
        APPROVAL_DECISION_SIGNAL,
        APPROVE_SIGNAL,
        SHORTHAND_REVIEWER,
        STATUS_QUERY,
        SUBMIT_DECISION_UPDATE,
        WORKFLOW_TYPE,
    )
    from models.models import (
        ApprovalDecision,
        ApproveSignalPayload,
        Outcome,
        RecordedWorkflowInput,
        WorkflowResult,
        WorkflowStatus,
    )
    from workflows.human_in_the_loop_run import ENDINGS_RECORDED_PATCH, HumanInTheLoopRun
    from workflows.late_decisions import late_update_reason


@workflow.defn(name=WORKFLOW_TYPE)
class HumanInTheLoopWorkflow(HumanInTheLoopRun):
    @workflow.init
    def __init__(self, run_input: RecordedWorkflowInput) -> None:
        super().__init__(run_input)

    @workflow.run
    async def run(self, run_input: RecordedWorkflowInput) -> WorkflowResult:
        try:
            return await self._run(run_input)
        except asyncio.CancelledError:
            if not self._patches.applied(ENDINGS_RECORDED_PATCH):
                raise
            message = "Cancelled; nothing was executed."
            self._record("cancelled", message)
            return await self._finish(Outcome.CANCELLED, message)

    @workflow.signal(name=APPROVAL_DECISION_SIGNAL)
    def approval_decision(self, *payloads: object) -> None:
        index = self._late_signals.count()
        decision = self._decode(payloads, ApprovalDecision, "a valid ApprovalDecision")
        if decision is not None:
            self._apply_or_hold(index, decision)

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, *payloads: object) -> None:
        index = self._late_signals.count()
        approved = self._decode(payloads, ApproveSignalPayload, "true or false")
        if approved is None:
            return
        pending = self._approval_request.request_id if self._approval_request else "none"
        self._apply_or_hold(
            index,
            ApprovalDecision(request_id=pending, approved=approved, reviewer=SHORTHAND_REVIEWER),
        )

    @workflow.update(name=SUBMIT_DECISION_UPDATE)
    def submit_decision(self, decision: ApprovalDecision) -> ApprovalDecision:
        """Apply the decision and return it as recorded, or fail the update with the reason.

        Temporal stores an update only once a worker accepts it, so an update is on time if
        a worker receives it before the deadline."""
        if self._past_deadline():
            assert self._approval_request is not None
            refusal: str | None = late_update_reason(self._approval_request.deadline)
            self._refuse(decision, refusal)
        else:
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
