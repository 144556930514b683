"""What one approval stage does: the state and logic behind ``ApprovalWorkflow``.

Kept out of ``approval_workflow.py`` because the sandbox re-imports the module that defines
a workflow class for every run a worker keeps in memory; this one is passed through and
loaded once per worker (README, "A thin workflow module"). The workflow class keeps only
its entry points; everything here runs inside the workflow, so it stays deterministic
(``workflow.now()``, never the clock) and keeps the order of commands a history recorded.

The deadline holds as in the parent (``workflows/late_decisions.py``): a signal counts if
it reached Temporal before the stage's deadline, an update if a worker received it before.
"""

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from activities.notify_approval_needed import notify_approval_needed
from constants import APPROVE_SIGNAL, SHORTHAND_REVIEWER, WORKFLOW_VERSIONS
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    ApproveSignalPayload,
    StageApprovalInput,
    StageOutcome,
)
from models.validation import PayloadRefused, single_payload
from workflows.late_decisions import LateSignals, late_update_reason
from workflows.notifications import root_message, send_notices
from workflows.patches import Patches

# Asked only by stages started before FIRST_VERSION_PATCH (``workflows/patches.py``).
# Stages started before this patch sent only the terminal notice; later ones send every
# notice the parent does (terminal and webhook).
NOTICES_EVERYWHERE_PATCH = "stage-notices-everywhere"
# Stages started before this patch sent their notices before waiting, and applied any
# decision a worker received before the timer closed the stage.
STAGE_DEADLINE_PATCH = "stage-deadline-by-arrival"


class ApprovalStage:
    """One stage's state, and what the workflow's run and handlers do with it."""

    def __init__(self, stage_input: StageApprovalInput) -> None:
        # First, before any handler can ask for a patch: the stage's own version marker.
        self._patches = Patches(WORKFLOW_VERSIONS)
        self._input = stage_input
        self._stage = stage_input.stage
        self._outcome: StageOutcome | None = None
        self._late_signals: LateSignals[bool] = LateSignals([APPROVE_SIGNAL])
        self._judges_late = False  # set by STAGE_DEADLINE_PATCH
        self._closed = False
        self._notice_failures: list[str] = []
        self._refusals: list[str] = []

    async def _run(self, stage_input: StageApprovalInput) -> StageOutcome:
        # A failed notice does not stop the stage: it can still be decided, and the parent
        # records the failure from the outcome.
        deadline = stage_input.approval_request.deadline
        if self._patches.applied(STAGE_DEADLINE_PATCH):
            self._judges_late = True
            notices = asyncio.create_task(self._notify(stage_input.approval_request))
            await self._wait(deadline)
            await self._sort_out_late_decisions(deadline)
            if not notices.done():
                notices.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await notices
        else:
            await self._notify(stage_input.approval_request)
            await self._wait(deadline)
        self._closed = True
        outcome = self._outcome or StageOutcome(stage=self._stage, approved=None)
        return outcome.model_copy(
            update={"notice_failures": self._notice_failures, "refusals": self._refusals}
        )

    def _approve(self, payloads: tuple[object, ...]) -> None:
        """The first valid ``true``/``false`` decides; later ones and refused signals (not
        exactly one payload, or not a JSON boolean) are ignored, with a warning logged."""
        index = self._late_signals.count()
        try:
            approved = single_payload(payloads, ApproveSignalPayload, "true or false")
        except PayloadRefused as refused:
            workflow.logger.warning("Stage %s: refused approve signal: %s", self._stage, refused)
            return
        if self._past_deadline():
            self._late_signals.hold(index, approved)
        elif self._outcome is None:
            self._decide(approved, SHORTHAND_REVIEWER, workflow.now())

    def _submit_decision(self, decision: ApprovalDecision) -> ApprovalDecision:
        """Decide the stage as ``decision.reviewer``; return the decision as recorded."""
        refusal = self._refusal(decision)
        if refusal is not None:
            workflow.logger.warning("Stage %s: refused decision: %s", self._stage, refusal)
            self._refusals.append(f"from {decision.reviewer}: {refusal}")
            raise ApplicationError(refusal, type="DecisionRefused", non_retryable=True)
        decided_at = decision.decided_at or workflow.now()
        self._decide(decision.approved, decision.reviewer, decided_at)
        return decision.model_copy(update={"decided_at": decided_at})

    def _decide(self, approved: bool, reviewer: str, decided_at: datetime) -> None:
        self._outcome = StageOutcome(
            stage=self._stage, approved=approved, decided_at=decided_at, reviewer=reviewer
        )

    def _refusal(self, decision: ApprovalDecision) -> str | None:
        request = self._input.approval_request
        if self._outcome is not None:
            return f"stage {self._stage} was already decided by {self._outcome.reviewer}"
        if self._closed:
            return f"stage {self._stage} is no longer waiting for a decision"
        if decision.request_id != request.request_id:
            return (
                f"request ID {decision.request_id!r} does not match the pending request "
                f"{request.request_id!r}"
            )
        if decision.amended_action is not None:
            return "a stage cannot amend the action; reject it and ask for a new request"
        if decision.approved and decision.reviewer in self._input.barred_reviewers:
            return f"{decision.reviewer!r} requested or amended this action and cannot approve it"
        if self._past_deadline():
            return late_update_reason(request.deadline)
        return None

    def _past_deadline(self) -> bool:
        return (
            self._judges_late
            and self._outcome is None
            and not self._closed
            and workflow.now() >= self._input.approval_request.deadline
        )

    async def _wait(self, deadline: datetime) -> None:
        """Measured from the deadline the notice announced, not from when notices finished."""
        remaining = deadline - workflow.now()
        if remaining > timedelta(0):
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._outcome is not None, timeout=remaining)

    async def _sort_out_late_decisions(self, deadline: datetime) -> None:
        """Apply the first held signal that reached Temporal before the deadline."""
        if self._outcome is not None or not self._late_signals.held:
            return
        held = await self._late_signals.sort_out(deadline)
        if held.on_time and self._outcome is None:
            approved, arrived_at = held.on_time[0]
            self._decide(approved, SHORTHAND_REVIEWER, arrived_at)
        for _, reason in held.late:
            self._refusals.append(f"from {SHORTHAND_REVIEWER}: {reason}")

    async def _notify(self, request: ApprovalRequest) -> None:
        """Send the stage's notices; keep the failures, for the parent's audit trail."""
        if self._patches.applied(NOTICES_EVERYWHERE_PATCH):
            events = await send_notices(request, self._patches)
            self._notice_failures += [d for event, d in events if event == "notification_failed"]
            return
        try:  # a stage started before the patch, replaying: the terminal notice only
            await workflow.execute_activity(
                notify_approval_needed,
                request,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
        except ActivityError as err:
            workflow.logger.warning("Stage %s notice failed: %s", self._stage, err)
            self._notice_failures.append(f"terminal notice: {root_message(err)}")
