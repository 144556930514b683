"""One approval stage, run as a child workflow of ``HumanInTheLoopWorkflow``.

Staged approval (manager -> director -> CFO) runs one of these per stage. Each child is
its own workflow with its own ID, history and durable timeout, so a stage can be found,
queried and decided on its own:

    temporal workflow signal --workflow-id <child-id> --name approve --input true

Message surface:
- signal ``approve`` (``true`` / ``false``): the CLI's short form, recorded as decided by
  ``temporal-cli`` (it carries no identity).
- update ``submit_decision`` (``ApprovalDecision``): the same decision with its reviewer,
  who is recorded; the sender is told whether it was applied (refusals fail the update
  with type ``DecisionRefused``). The requester and whoever amended the action may not
  approve a stage.
- query ``get_status``: the stage's outcome once decided, else None.

This module only declares the workflow: the sandbox re-imports it for every run a worker
keeps in memory, so what the stage does lives in ``workflows/approval_stage.py``, passed
through and loaded once.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from constants import (
        APPROVE_SIGNAL,
        STAGE_APPROVAL_WORKFLOW_TYPE,
        STATUS_QUERY,
        SUBMIT_DECISION_UPDATE,
    )
    from models.models import ApprovalDecision, StageApprovalInput, StageOutcome
    from workflows.approval_stage import ApprovalStage


@workflow.defn(name=STAGE_APPROVAL_WORKFLOW_TYPE)
class ApprovalWorkflow(ApprovalStage):
    @workflow.init
    def __init__(self, stage_input: StageApprovalInput) -> None:
        super().__init__(stage_input)

    @workflow.run
    async def run(self, stage_input: StageApprovalInput) -> StageOutcome:
        return await self._run(stage_input)

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, *payloads: object) -> None:
        self._approve(payloads)

    @workflow.update(name=SUBMIT_DECISION_UPDATE)
    def submit_decision(self, decision: ApprovalDecision) -> ApprovalDecision:
        return self._submit_decision(decision)

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> StageOutcome | None:
        return self._outcome
