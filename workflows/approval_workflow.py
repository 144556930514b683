"""One approval stage, run as a child workflow of ``HumanInTheLoopWorkflow``.

Staged approval (manager -> director -> CFO) runs one of these per stage. Each child is
its own workflow with its own ID, history and durable timeout, so a stage can be found,
queried and decided on its own:

    temporal workflow signal --workflow-id <child-id> --name approve --input true

Message surface: signal ``approve`` (``true`` / ``false``); query ``get_status``.
"""

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.notify_approval_needed import notify_approval_needed
    from constants import APPROVE_SIGNAL, STAGE_APPROVAL_WORKFLOW_TYPE, STATUS_QUERY
    from models.models import ApproveSignalPayload, StageApprovalInput, StageOutcome
    from models.validation import summarise


@workflow.defn(name=STAGE_APPROVAL_WORKFLOW_TYPE)
class ApprovalWorkflow:
    @workflow.init
    def __init__(self, stage_input: StageApprovalInput) -> None:
        self._stage = stage_input.stage
        self._outcome: StageOutcome | None = None

    @workflow.run
    async def run(self, stage_input: StageApprovalInput) -> StageOutcome:
        try:
            await workflow.execute_activity(
                notify_approval_needed,
                stage_input.approval_request,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
        except ActivityError as err:  # the stage can still be decided; the parent records it
            workflow.logger.warning("Stage %s notice failed: %s", self._stage, err)
        # Measured from the deadline the notice announced, not from when the notice finished.
        remaining = stage_input.approval_request.deadline - workflow.now()
        if remaining > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._outcome is not None, timeout=remaining)
        return self._outcome or StageOutcome(stage=self._stage, approved=None)

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, payload: RawValue) -> None:
        """The first valid ``true``/``false`` decides; later ones and bad payloads are ignored."""
        try:
            approved = workflow.payload_converter().from_payload(
                payload.payload, ApproveSignalPayload
            )
        except (ValidationError, RuntimeError) as err:
            detail = summarise(err) if isinstance(err, ValidationError) else str(err)
            workflow.logger.warning("Stage %s: refused approve payload: %s", self._stage, detail)
            return
        if self._outcome is None:
            self._outcome = StageOutcome(
                stage=self._stage, approved=approved, decided_at=workflow.now()
            )

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> StageOutcome | None:
        return self._outcome
