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
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.notify_approval_needed import notify_approval_needed
    from constants import APPROVE_SIGNAL, STAGE_APPROVAL_WORKFLOW_TYPE, STATUS_QUERY
    from models.models import (
        ApprovalRequest,
        ApproveSignalPayload,
        StageApprovalInput,
        StageOutcome,
    )
    from models.validation import PayloadRefused, single_payload
    from workflows.notifications import root_message, send_notices

# Stages started before this patch sent only the terminal notice; later ones send every
# notice the parent does (terminal and webhook).
NOTICES_EVERYWHERE_PATCH = "stage-notices-everywhere"


@workflow.defn(name=STAGE_APPROVAL_WORKFLOW_TYPE)
class ApprovalWorkflow:
    @workflow.init
    def __init__(self, stage_input: StageApprovalInput) -> None:
        self._stage = stage_input.stage
        self._outcome: StageOutcome | None = None

    @workflow.run
    async def run(self, stage_input: StageApprovalInput) -> StageOutcome:
        # A failed notice does not stop the stage: it can still be decided, and the parent
        # records the failure from the outcome.
        notice_failures = await self._notify(stage_input.approval_request)
        # Measured from the deadline the notice announced, not from when the notice finished.
        remaining = stage_input.approval_request.deadline - workflow.now()
        if remaining > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._outcome is not None, timeout=remaining)
        outcome = self._outcome or StageOutcome(stage=self._stage, approved=None)
        return outcome.model_copy(update={"notice_failures": notice_failures})

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, *payloads: object) -> None:
        """The first valid ``true``/``false`` decides; later ones and refused signals (not
        exactly one payload, or not a JSON boolean) are ignored, with a warning logged."""
        try:
            approved = single_payload(payloads, ApproveSignalPayload, "true or false")
        except PayloadRefused as refused:
            workflow.logger.warning("Stage %s: refused approve signal: %s", self._stage, refused)
            return
        if self._outcome is None:
            self._outcome = StageOutcome(
                stage=self._stage, approved=approved, decided_at=workflow.now()
            )

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> StageOutcome | None:
        return self._outcome

    async def _notify(self, request: ApprovalRequest) -> list[str]:
        """Send the stage's notices; return the failures, for the parent's audit trail."""
        if workflow.patched(NOTICES_EVERYWHERE_PATCH):
            events = await send_notices(request)
            return [detail for event, detail in events if event == "notification_failed"]
        try:  # a stage started before the patch, replaying: the terminal notice only
            await workflow.execute_activity(
                notify_approval_needed,
                request,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
        except ActivityError as err:
            workflow.logger.warning("Stage %s notice failed: %s", self._stage, err)
            return [f"terminal notice: {root_message(err)}"]
        return []
