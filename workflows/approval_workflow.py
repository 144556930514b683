"""One approval stage, run as a child workflow of ``HumanInTheLoopWorkflow``.

Staged approval (manager -> director -> CFO) runs one of these per stage and round. Each is
its own workflow with its own ID, history and durable deadline, so a stage can be found,
queried and decided on its own:

    temporal workflow signal --workflow-id <child-id> --name approve --input true

Message surface:
- signal ``approve`` (``true`` / ``false``): the CLI's short form, recorded as decided by
  ``temporal-cli`` (it carries no identity).
- update ``submit_decision`` (``ApprovalDecision``): the same decision with its reviewer; the
  validator refuses what cannot count (a payload that is not one decision, or that the
  worker could not decode (another round's request ID, a barred reviewer, a
  late or a closed stage) before anything reaches history, and a repeat of the counted
  decision is answered ``AlreadyApplied``.
- query ``get_status``: the stage's outcome once decided, else None.

The waiting (notices, deadline, the deadline rule) is the ``ApprovalWindow`` the parent
uses too.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from constants import (
        APPROVE_SIGNAL,
        SHORTHAND_REVIEWER,
        STAGE_APPROVAL_WORKFLOW_TYPE,
        STATUS_QUERY,
        SUBMIT_DECISION_UPDATE,
    )
    from models.models import (
        ApprovalDecision,
        ApproveSignalPayload,
        StageApprovalInput,
        StageOutcome,
    )
    from models.validation import PayloadRefused, single_payload
    from workflows.approval_window import ApprovalWindow, WindowRules
    from workflows.decisions import refused_update, signalled, submitted

# Events of the stage's window that the parent's audit trail carries.
NOTICE_FAILED = "notification_failed"
REFUSED = ("decision_refused", "decision_late", "decision_duplicate")


@workflow.defn(name=STAGE_APPROVAL_WORKFLOW_TYPE)
class ApprovalWorkflow:
    @workflow.init
    def __init__(self, stage_input: StageApprovalInput) -> None:
        self._stage = stage_input.stage
        self._notice_failures: list[str] = []
        self._refusals: list[str] = []
        rules = WindowRules(
            voting=stage_input.voting, barred=stage_input.barred_reviewers, may_amend=False
        )
        self._window = ApprovalWindow(stage_input.approval_request, rules, self._record)
        self._outcome: StageOutcome | None = None

    @workflow.run
    async def run(self, stage_input: StageApprovalInput) -> StageOutcome:
        decision = await self._window.wait()
        self._outcome = StageOutcome(
            stage=self._stage,
            approved=decision.approved if decision else None,
            decided_at=decision.decided_at if decision else None,
            reviewer=decision.reviewer if decision else None,
            notes=decision.reviewer_notes if decision else "",
            approvers=[vote.reviewer for vote in self._window.votes if vote.approved],
            notice_failures=self._notice_failures,
            refusals=self._refusals,
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._outcome

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, *payloads: object) -> None:
        try:
            approved = single_payload(payloads, ApproveSignalPayload, "true or false")
        except PayloadRefused as refused:
            self._record("decision_refused", str(refused))
            return
        request_id = self._window.request.request_id
        decision = ApprovalDecision(
            request_id=request_id, approved=approved, reviewer=SHORTHAND_REVIEWER
        )
        signalled(self._window, decision, self._record)

    @workflow.update(name=SUBMIT_DECISION_UPDATE)
    def submit_decision(self, *payloads: object) -> ApprovalDecision:
        return self._window.apply(submitted(payloads))  # the validator passed it, this task

    @submit_decision.validator
    def _validate_decision(self, *payloads: object) -> None:
        # A validator's rejection never reaches history: the sender is told, nothing else.
        refused_update(self._window, payloads)

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> StageOutcome | None:
        return self._outcome

    def _record(self, event: str, detail: str) -> None:
        """Keep what the parent's audit trail needs; the worker's log gets every event."""
        workflow.logger.info("stage %s: %s: %s", self._stage, event, detail)
        if event == NOTICE_FAILED:
            self._notice_failures.append(detail)
        elif event in REFUSED:
            self._refusals.append(detail)
