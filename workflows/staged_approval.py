"""Staged approval (manager -> director -> CFO): one ``ApprovalWorkflow`` child per stage.

Composed by ``HumanInTheLoopWorkflow`` for a request the risk policy (or the starter)
stages. Stages are roles: each is approved only by its members (``stage_approvers``, from
the starter's ``HITL_STAGE_APPROVERS``), and one person approves at most one stage of a
request. A stage with no members is never approved by anyone: it is a ``stage_failed``
ending. Stages run one after the other and the first "no", timeout or failure ends the
round. Each child's ID names the round's request ID (``stage_ids.py``), so a decision for
an earlier round can never reach a later one. A stage that cannot end as decided (its
child was terminated, failed or its ID taken) is a recorded ``stage_failed`` ending, never
an error that leaves the run without one.
"""

from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import (
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from constants import STAGED_PARENT_REFUSAL
    from models.models import (
        ApprovalDecision,
        ApprovalRequest,
        StageApprovalInput,
        StageOutcome,
        StageProgress,
        VotingPolicy,
    )
    from workflows.approval_workflow import ApprovalWorkflow
    from workflows.notifications import root_message
    from workflows.stage_ids import stage_child_id

Record = Callable[[str, str], None]


class StagedApproval:
    """One round of stages for one request; ``progress`` is the stage waiting now."""

    def __init__(
        self,
        request: ApprovalRequest,
        stages: list[str],
        members: dict[str, list[str]],
        barred: list[str],
        record: Record,
        voting: dict[str, VotingPolicy] | None = None,
    ) -> None:
        self.request = request
        self.stages = stages
        self.members = members
        self.barred = barred
        self.voting = voting or {}
        self.outcomes: list[StageOutcome] = []
        self.progress: StageProgress | None = None
        self._record = record
        self._stage_wait = request.deadline - request.requested_at  # each stage's own

    @property
    def failure(self) -> str | None:
        """Why the round ended without a decision other than a timeout, if it did."""
        last = self.outcomes[-1] if self.outcomes else None
        return f"Stage {last.stage}: {last.detail}" if last and last.detail else None

    def refusal(self) -> str | None:
        """Why a decision sent to the request's own workflow does not count while a stage
        waits: which stage, who may decide it, and where; None when no stage waits."""
        waiting = self.progress
        if waiting is None:
            return None
        return (
            f"this request is {STAGED_PARENT_REFUSAL}: stage {waiting.stage} "
            f"({waiting.position}/{waiting.of}) waits, and only its members "
            f"({', '.join(waiting.members)}) may decide it, in its workflow "
            f"{waiting.child_workflow_id}"
        )

    async def run(self) -> ApprovalDecision | None:
        """Approve stage by stage; the last stage's decision is the request's decision."""
        self._record(
            "approval_requested",
            f"request {self.request.request_id}, in stages: {' -> '.join(self.stages)}",
        )
        for position, stage in enumerate(self.stages, start=1):
            outcome = await self._run_stage(stage, position)
            self.outcomes.append(outcome)
            if outcome.approved is not True:
                break
        self.progress = None
        last = self.outcomes[-1]
        if last.approved is None:
            return None
        by = f"{last.reviewer} (stage {last.stage})" if last.reviewer else f"stage {last.stage}"
        return ApprovalDecision(
            request_id=self.request.request_id,
            approved=last.approved,
            reviewer=by,
            reviewer_notes=last.notes,
            decided_at=last.decided_at,
        )

    async def _run_stage(self, stage: str, position: int) -> StageOutcome:
        members = self.members.get(stage, [])
        if not members:
            return self._failed(stage, "no approvers are configured for it (HITL_STAGE_APPROVERS)")
        # One person approves at most one stage of a request: every approval a stage
        # counted, not only the one that settled its quorum (an outcome recorded before
        # ``approvers`` existed names its reviewer only).
        earlier = [
            name
            for o in self.outcomes
            if o.approved
            for name in (o.approvers or ([o.reviewer] if o.reviewer else []))
        ]
        info = workflow.info()
        child_id = stage_child_id(info.workflow_id, self.request.request_id, position, stage)
        of = len(self.stages)
        barred = [*self.barred, *earlier]
        may_decide = [name for name in members if name not in barred]
        self.progress = StageProgress(
            stage=stage, child_workflow_id=child_id, position=position, of=of, members=may_decide
        )
        self._record("stage_started", f"{stage} ({position}/{of}) awaits child {child_id}")
        now = workflow.now()
        stage_request = self.request.model_copy(
            update={
                "workflow_id": child_id,
                "stage": stage,
                "requested_at": now,
                "deadline": now + self._stage_wait,
                "approvers": members,
            }
        )
        # The status query shows the waiting stage's own deadline, as its notice does.
        self.request = self.request.model_copy(
            update={"stage": stage, "deadline": stage_request.deadline}
        )
        try:
            # TERMINATE: a stage never outlives the request it belongs to.
            outcome = await workflow.execute_child_workflow(
                ApprovalWorkflow.run,
                StageApprovalInput(
                    stage=stage,
                    approval_request=stage_request,
                    barred_reviewers=barred,
                    voting=self.voting.get(stage, VotingPolicy()),
                ),
                id=child_id,
                parent_close_policy=ParentClosePolicy.TERMINATE,
            )
        except WorkflowAlreadyStartedError:
            return self._failed(stage, f"child workflow ID {child_id} is already in use")
        except ChildWorkflowError as err:
            if is_cancelled_exception(err):
                raise
            ended = root_message(err.cause or err)
            return self._failed(stage, f"its workflow ended without a decision: {ended}")
        for failure in outcome.notice_failures:  # the stage could still be decided
            self._record("notification_failed", f"stage {stage}: {failure}")
        for refusal in outcome.refusals:
            self._record("decision_refused", f"stage {stage}: {refusal}")
        verdict = {True: "approved", False: "rejected", None: "timed_out"}[outcome.approved]
        by = f" by {outcome.reviewer}" if outcome.reviewer else ""
        notes = f": {outcome.notes}" if outcome.notes else ""
        self._record(f"stage_{verdict}", f"{stage} ({position}/{of}){by}{notes}")
        return outcome

    def _failed(self, stage: str, reason: str) -> StageOutcome:
        self._record("stage_failed", f"{stage}: {reason}")
        return StageOutcome(stage=stage, approved=None, detail=reason)
