"""What the human-in-the-loop workflow does: its state, and the story of one approval.

``HumanInTheLoopWorkflow`` (``human_in_the_loop_workflow.py``) only declares the workflow
and its message handlers. The sandbox re-imports that module for every run a worker keeps
in memory, so everything else lives here, in a module passed through the sandbox and loaded
once per worker (README, "A thin workflow module"). It all runs inside the workflow: it
stays deterministic (``workflow.now()``, ``workflow.uuid4()``, never the clock) and issues
its commands in the order the recorded histories replay.

The contract (see the README, "Deciding"): a decision counts only if it reached Temporal
before the deadline (a signal by the time the server stored it, an update by the time a
worker received it; ``workflows/late_decisions.py``); notices are sent while the deadline
runs; an amended action is assessed again, and a request whose amendment adds risk
re-opens with a new request ID; every ending, cancellation and a failed execution
included, is a recorded outcome. Changes to what runs in flight do are behind
``workflow.patched`` (folded into one version marker for new runs, ``self._patches``), so
recorded histories replay as they ran.

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

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import (
    ActivityError,
    CancelledError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ActivityCancellationType, ParentClosePolicy

from activities.assess_risk import assess_risk as assess_risk_activity
from activities.execute_action import execute_action
from activities.openai_responses import AnalysisActivities
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    APPROVE_SIGNAL,
    WORKFLOW_VERSIONS,
)
from models.limits import (
    MAX_AUDIT_DETAIL_CHARS,
    MAX_NAME_CHARS,
    amended_call_problem,
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
    AssessRiskInput,
    AuditEvent,
    EscalationPolicy,
    ExecuteActionInput,
    ExecutionResult,
    Outcome,
    ProposedAction,
    RecordedWorkflowInput,
    RiskAssessment,
    StageApprovalInput,
    StageOutcome,
    StageProgress,
    WorkflowResult,
    WorkflowState,
)
from models.validation import PayloadRefused, single_payload
from tools.models import ToolOutcome, ToolStatus
from workflows.approval_workflow import ApprovalWorkflow
from workflows.audit_trail import AuditBounds
from workflows.decision_rules import refusal_reason, settled
from workflows.default_deny import still_asks
from workflows.late_decisions import LateSignals
from workflows.metrics import record_approval_requested, record_outcome
from workflows.notifications import root_message, send_notices
from workflows.patches import Patches
from workflows.risk_policy import adds_requirements, approval_stages, assess_risk
from workflows.stage_ids import stage_child_id
from workflows.tool_steps import ToolCallState, acted, execute_tool, execution_result

Decoded = TypeVar("Decoded")
ANALYSIS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
# Execute rides out an outage of the target system: retries back off to one a minute and
# go on for up to 30 minutes in all; then the run ends as ``execution_failed``.
EXECUTE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=60), maximum_attempts=0)
EXECUTE_PERSISTENCE = timedelta(minutes=30)
# Behaviour added after runs were already in flight: each is patched, so a history
# recorded before it replays as it ran. A run started since FIRST_VERSION_PATCH records
# only a version marker and has all of these applied (``workflows/patches.py``); a change
# made since comes with a version of its own (``WORKFLOW_VERSIONS``).
RISK_RECORDED_PATCH = "risk-assessed-in-local-activity"  # also: explicit settings count
# The assessment as a regular activity. A local activity's result marker can land in an
# earlier workflow task than the commands the code issues right after it (seen under load):
# on replay, ``patched`` calls that follow it then find their marker not yet announced and
# the run fails with a nondeterminism error. A regular activity's result always starts a
# new workflow task, so what follows it is recorded in the task that replays it.
RISK_ACTIVITY_PATCH = "risk-assessed-in-activity"
NOTICES_ALONGSIDE_PATCH = "notices-alongside-deadline"
LATE_BY_ARRIVAL_PATCH = "late-decisions-by-arrival"
AMENDMENT_REASSESSED_PATCH = "amendment-reassessed"
STATUS_ON_DECISION_PATCH = "status-set-on-decision"
ENDINGS_RECORDED_PATCH = "failure-and-cancellation-recorded"
STAGE_IDS_PATCH = "stage-ids-with-run-id"
# Tool calls: default-deny in the recorded assessment, the effect previewed before asking,
# execution through the tool (once per key, only the approved effect), drift asks again.
TOOL_CALLS_PATCH = "tool-calls"
# Runs started before the input limits (models/limits.py) replay as they ran: a request or a
# decision over a limit that such a run accepted is still accepted on replay.
INPUT_LIMITS_PATCH = "input-limits"
# A reviewer's amended tool call over MAX_TOOL_CALL_BYTES is refused; runs that accepted
# one before replay as they ran (released with the version marker, so folded into it).
TOOL_CALL_LIMIT_PATCH = "tool-call-limit"
APPROVAL_STATUS = SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)
FINAL_APPROVAL_STATUS = {
    Outcome.AUTO_APPROVED: ApprovalStatus.AUTO_APPROVED,
    Outcome.APPROVED: ApprovalStatus.APPROVED,
    Outcome.REJECTED: ApprovalStatus.REJECTED,
    Outcome.TIMED_OUT: ApprovalStatus.TIMED_OUT,
    Outcome.ANALYSIS_FAILED: ApprovalStatus.FAILED,
    Outcome.EXECUTION_FAILED: ApprovalStatus.EXECUTION_FAILED,
    Outcome.CANCELLED: ApprovalStatus.CANCELLED,
    Outcome.STAGE_FAILED: ApprovalStatus.FAILED,
    Outcome.INPUT_REFUSED: ApprovalStatus.FAILED,
}


class HumanInTheLoopRun:
    """One run's state, and every step the workflow's run and handlers take with it."""

    def __init__(self, run_input: RecordedWorkflowInput) -> None:
        # First, before any handler can ask for a patch: the run's one version marker.
        self._patches = Patches(WORKFLOW_VERSIONS)
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
        self._late_signals: LateSignals[ApprovalDecision] = LateSignals(
            [APPROVAL_DECISION_SIGNAL, APPROVE_SIGNAL]
        )
        self._judges_late = False  # set when a request opens, by LATE_BY_ARRIVAL_PATCH
        self._amenders: list[str] = []  # who wrote the action now awaiting approval
        self._unassessed_amendment = False
        self._tool_call = ToolCallState()  # enabled after analysis, by TOOL_CALLS_PATCH

    async def _run(self, run_input: RecordedWorkflowInput) -> WorkflowResult:
        # start_workflow and the inbox check first; this catches starts that bypass them.
        if (problem := run_input_problem(run_input)) and self._patches.applied(INPUT_LIMITS_PATCH):
            self._record("input_refused", problem)
            return await self._finish(Outcome.INPUT_REFUSED, f"Refused: {problem}.")
        self._action = await self._analyse(run_input.user_request)
        if self._action is None:
            return await self._finish(Outcome.ANALYSIS_FAILED, self._audit[-1].detail)
        self._tool_call.enabled = self._patches.applied(TOOL_CALLS_PATCH)
        self._risk = await self._assess(self._action)
        self._record("risk_classified", "; ".join(self._risk.reasons) or "no risk found")
        if not self._risk.requires_approval:
            return await self._execute(Outcome.AUTO_APPROVED)
        if not await self._preview_before_asking():
            return await self._finish(Outcome.ANALYSIS_FAILED, self._audit[-1].detail)
        decision = await self._decide(self._risk.stages)
        return await self._conclude(decision)

    async def _conclude(self, decision: ApprovalDecision | None) -> WorkflowResult:
        """From a decision (or none) to the run's end: re-open for an amendment that adds
        risk, then end as decided, executing an approved action."""
        run_input = self._input
        # An approval covers the action it was given for: an amendment that adds risk
        # re-opens the request with the stricter requirement.
        while decision is not None and decision.approved and (added := await self._reassess()):
            decision = await self._reopen(added)
        if decision is not None and self._patches.applied(STATUS_ON_DECISION_PATCH):
            self._set_approval_status(
                ApprovalStatus.APPROVED if decision.approved else ApprovalStatus.REJECTED
            )
        if decision is None and self._stage_outcomes and self._stage_outcomes[-1].detail:
            last = self._stage_outcomes[-1]
            return await self._finish(Outcome.STAGE_FAILED, f"Stage {last.stage}: {last.detail}")
        if decision is None:
            message = f"No decision within {run_input.approval_timeout_seconds}s; cancelled."
            self._record("timed_out", message)
            return await self._finish(Outcome.TIMED_OUT, message)
        if not decision.approved:
            notes = decision.reviewer_notes or "no notes"
            message = f"Rejected by {decision.reviewer}: {notes}. Nothing was executed."
            return await self._finish(Outcome.REJECTED, message)
        return await self._execute(Outcome.APPROVED)

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
            _raise_if_cancelled(err, self._patches)
            self._record("analysis_failed", f"Analysis failed: {root_message(err)}")
            return None
        self._record("action_proposed", _describe(action))
        return action

    async def _assess(self, action: ProposedAction) -> RiskAssessment:
        """The risk policy's answer, recorded in history (an activity; a local one in runs
        from before ``RISK_ACTIVITY_PATCH``): a rule change applies to new runs only. Runs
        started before it was recorded assess here."""
        run_input = self._input
        assess_input = AssessRiskInput(
            user_request=run_input.user_request,
            action=action,
            require_approval=run_input.require_approval,
            approvers=run_input.approvers,
            approval_stages=run_input.approval_stages,
            default_deny=self._tool_call.enabled,
            preview=self._tool_call.preview,
        )
        if self._patches.applied(RISK_ACTIVITY_PATCH):
            return await workflow.execute_activity(
                assess_risk_activity,
                assess_input,
                start_to_close_timeout=timedelta(seconds=10),
            )
        if self._patches.applied(RISK_RECORDED_PATCH):  # runs that recorded it as a local activity
            return await workflow.execute_local_activity(
                assess_risk_activity, assess_input, start_to_close_timeout=timedelta(seconds=10)
            )
        risk = assess_risk(
            run_input.user_request, action, always_require_approval=run_input.require_approval
        )
        stages = run_input.approval_stages or approval_stages(run_input.user_request, action)
        return risk.model_copy(update={"stages": stages})

    async def _decide(self, stages: list[str]) -> ApprovalDecision | None:
        return await (self._run_stages(stages) if stages else self._await_decision())

    async def _reassess(self) -> list[str]:
        """What an approved amendment requires beyond what the request was assessed for;
        empty when the approval covers it (or when nothing was amended)."""
        if not self._unassessed_amendment or not self._patches.applied(AMENDMENT_REASSESSED_PATCH):
            return []
        assert self._action is not None and self._risk is not None
        self._unassessed_amendment = False
        new_effect = await self._preview_amendment()
        reassessed = await self._assess(self._action)
        added = [*adds_requirements(self._risk, reassessed), *new_effect]
        if added:
            self._risk = RiskAssessment(
                requires_approval=True,
                reasons=[*self._risk.reasons, *(r for r in reassessed.reasons if r in added)],
                stages=reassessed.stages or self._risk.stages,
            )
        else:
            self._record("amendment_assessed", "no new risk: the approval covers the amendment")
        return added

    async def _reopen(self, added: list[str]) -> ApprovalDecision | None:
        """Ask again, with the stricter requirement, under a new request ID. The amenders
        may not approve their own amendment: the four-eyes rule that bars the requester."""
        assert self._approval_request is not None and self._risk is not None
        self._record(
            "approval_reopened",
            f"the amended action adds: {'; '.join(added)}; the approval of request "
            f"{self._approval_request.request_id} does not cover it",
        )
        self._decision, self._votes, self._stage_outcomes = None, [], []
        return await self._decide(self._risk.stages)

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
            preview=self._tool_call.preview,
        )
        self._state = WorkflowState.AWAITING_APPROVAL
        self._set_approval_status(ApprovalStatus.PENDING)
        self._judges_late = self._patches.applied(LATE_BY_ARRIVAL_PATCH)
        record_approval_requested()
        return self._approval_request

    async def _await_decision(self) -> ApprovalDecision | None:
        """Notify, and wait durably (no worker resources held) for a decision or the deadline.

        The waits are durable timers measured from when the request opened, and the notices
        go out while they run, so slow notices never push the deadline past the one the
        notice announced.
        """
        request = self._open_request(self._input.approvers)
        self._record("approval_requested", f"request {request.request_id}")
        notices = await self._start_notices(request)
        try:
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
            await self._sort_out_late_decisions(request.deadline)
        finally:
            await self._stop_notices(notices)
        self._state = WorkflowState.DECIDED
        return self._decision

    async def _start_notices(self, request: ApprovalRequest) -> "asyncio.Task[None] | None":
        """Send the notices alongside the wait; runs from before that sent them first."""
        if not self._patches.applied(NOTICES_ALONGSIDE_PATCH):
            await self._notify(request)
            return None
        return asyncio.create_task(self._notify(request))

    async def _stop_notices(self, notices: "asyncio.Task[None] | None") -> None:
        """Once the request closes, notices still retrying are moot: cancel them (failures
        already met are in the audit trail)."""
        if notices is None:
            return
        if not notices.done():
            notices.cancel()
            self._record("notification_cancelled", "the request closed before its notices")
        with contextlib.suppress(asyncio.CancelledError):
            await notices

    async def _sort_out_late_decisions(self, deadline: datetime) -> None:
        """Decisions a worker received at or after the deadline: apply those that reached
        Temporal before it (the worker was down), refuse the rest with the time they came."""
        if self._decision is not None or not self._late_signals.held:
            return
        held = await self._late_signals.sort_out(deadline)
        for decision, arrived_at in held.on_time:
            self._apply(
                decision.model_copy(update={"decided_at": decision.decided_at or arrived_at})
            )
        for decision, reason in held.late:
            self._refuse(decision, reason)

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
            by = f"{last.reviewer} (stage {last.stage})" if last.reviewer else f"stage {last.stage}"
            self._decision = ApprovalDecision(
                request_id=parent_request.request_id,
                approved=last.approved,
                reviewer=by,
                decided_at=last.decided_at,
            )
        return self._decision

    def _stage_child_id(self, stage: str, position: int) -> str | None:
        """The stage's child ID (None: the name cannot fit in one); runs from before the
        patch keep ``<workflow-id>-<stage>``."""
        info = workflow.info()
        if self._patches.applied(STAGE_IDS_PATCH):
            return stage_child_id(info.workflow_id, info.run_id, position, stage)
        return f"{info.workflow_id}-{stage}"

    def _stage_not_run(self, stage: str, reason: str) -> StageOutcome:
        self._record("stage_failed", f"{stage}: {reason}")
        return StageOutcome(stage=stage, approved=None, detail=reason)

    async def _run_stage(
        self, parent_request: ApprovalRequest, stage: str, position: int, of: int
    ) -> StageOutcome:
        child_id = self._stage_child_id(stage, position)
        if child_id is None:
            return self._stage_not_run(stage, "the stage name is too long for a workflow ID")
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
        barred = [*([self._input.requester] if self._input.requester else []), *self._amenders]
        try:
            # TERMINATE: a stage must never outlive the request it belongs to.
            outcome = await workflow.execute_child_workflow(
                ApprovalWorkflow.run,
                StageApprovalInput(
                    stage=stage, approval_request=stage_request, barred_reviewers=barred
                ),
                id=child_id,
                parent_close_policy=ParentClosePolicy.TERMINATE,
            )
        except WorkflowAlreadyStartedError:
            if not self._patches.applied(STAGE_IDS_PATCH):
                raise
            self._stage = None
            return self._stage_not_run(stage, f"child workflow ID {child_id} is already in use")
        except ChildWorkflowError as err:
            _raise_if_cancelled(err, self._patches)  # the stage was cancelled with the run
            raise
        for failure in outcome.notice_failures:  # the stage could still be decided
            self._record("notification_failed", f"stage {stage}: {failure}")
        for refusal in outcome.refusals:
            self._record("decision_refused", f"stage {stage}: {refusal}")
        verdict = {True: "approved", False: "rejected", None: "timed_out"}[outcome.approved]
        by = f" by {outcome.reviewer}" if outcome.reviewer else ""
        self._record(f"stage_{verdict}", f"{stage} ({position}/{of}){by}")
        return outcome

    async def _notify(self, request: ApprovalRequest) -> None:
        for event, detail in await send_notices(request, self._patches):
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

    def _past_deadline(self) -> bool:
        """Whether a decision received now may have come too late: the request still waits
        (no timer has closed it yet) but this activation is at or after its deadline."""
        request = self._approval_request
        return (
            self._judges_late
            and self._state == WorkflowState.AWAITING_APPROVAL
            and self._stage is None
            and self._decision is None
            and request is not None
            and workflow.now() >= request.deadline
        )

    def _apply_or_hold(self, index: int, decision: ApprovalDecision) -> None:
        """Apply a signalled decision, or hold it until history says when it arrived."""
        if self._past_deadline():
            self._late_signals.hold(index, decision)
            self._record(
                "decision_held",
                f"from {decision.reviewer}: received after the deadline; "
                "checking when it reached Temporal",
            )
            return
        self._apply(decision)

    def _refuse(self, decision: ApprovalDecision, reason: str) -> None:
        request_id = cut(decision.request_id, MAX_NAME_CHARS)  # logs stay bounded too
        workflow.logger.warning("Refused decision for %s: %s", request_id, reason)
        self._record("decision_refused", f"from {decision.reviewer}: {reason}")

    def _apply(self, decision: ApprovalDecision) -> str | None:
        """Count the decision if the rules allow it; return why not otherwise."""
        reason = self._over_limit(decision) or self._refusal(decision)
        if reason is not None:
            self._refuse(decision, reason)
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
        self._unassessed_amendment = True
        if reviewer not in self._amenders:
            self._amenders.append(reviewer)
        self._approval_request = self._approval_request.model_copy(
            update={"proposed_action": amended}
        )
        # Earlier votes were cast on another action: only the amending vote still stands.
        # Patched, so a run that was amended under an older worker replays as it ran.
        earlier = self._votes[:-1]
        if earlier and self._patches.applied("amendment-resets-earlier-votes"):
            self._votes = self._votes[-1:]
            voters = ", ".join(vote.reviewer for vote in earlier)
            self._record("votes_reset", f"votes by {voters} were for the earlier action")

    def _over_limit(self, decision: ApprovalDecision) -> str | None:
        """A decision over a size limit, or one vote too many (checked only while the
        request is undecided, where "already decided" would say more)."""
        problem = decision_problem(decision)
        if problem is None and self._decision is None and self._stage is None:
            problem = votes_problem(len(self._votes))
        if problem and self._patches.applied(INPUT_LIMITS_PATCH):
            return problem
        problem = amended_call_problem(decision)
        return problem if problem and self._patches.applied(TOOL_CALL_LIMIT_PATCH) else None

    def _refusal(self, decision: ApprovalDecision) -> str | None:
        if self._stage is not None:
            return f"this request is decided stage by stage; signal {self._stage.child_workflow_id}"
        if self._decision is not None:
            decided = self._decision
            return f"request {decided.request_id} was already decided by {decided.reviewer}"
        awaiting = self._state == WorkflowState.AWAITING_APPROVAL
        request = self._approval_request if awaiting else None
        return refusal_reason(decision, request, self._votes, self._input, self._amenders)

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
        if self._tool_call.runs_through_tool(self._action.tool_call):
            return await self._execute_tool(outcome, f"{info.workflow_id}/{request_id}")
        try:
            # WAIT_CANCELLATION_COMPLETED: cancelling the run while the action commits waits
            # for it to finish or stop, so "cancelled" is never reported for a committed action.
            self._execution = await workflow.execute_activity(
                execute_action,
                ExecuteActionInput(
                    idempotency_key=f"{info.workflow_id}/{request_id}", action=self._action
                ),
                start_to_close_timeout=timedelta(seconds=120),
                schedule_to_close_timeout=EXECUTE_PERSISTENCE,
                heartbeat_timeout=timedelta(seconds=10),  # a crashed worker is noticed in seconds
                retry_policy=EXECUTE_RETRY,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as err:
            _raise_if_cancelled(err, self._patches)  # it stopped before doing anything
            if not self._patches.applied(ENDINGS_RECORDED_PATCH):
                raise
            message = f"Execution failed: {root_message(err)}"
            self._record("execution_failed", message)
            return await self._finish(Outcome.EXECUTION_FAILED, message)
        self._record("executed", self._execution.summary)
        if outcome == Outcome.APPROVED:
            assert self._decision is not None
            verdict = f"Approved by {self._decision.reviewer}"
        else:
            verdict = "Auto-approved (no risk found)"
        return await self._finish(outcome, f"{verdict}; executed: {self._execution.summary}")

    async def _preview_before_asking(self) -> bool:
        """The effect people will be asked about; a large amount it moves stages the
        request (assessed again with it, so the answer is recorded)."""
        assert self._action is not None and self._risk is not None
        if not await self._preview_tool_call():
            return False
        preview = self._tool_call.preview
        if preview is not None and preview.amount_cents and not self._risk.stages:
            self._risk = await self._assess(self._action)
            if self._risk.stages:
                self._record("risk_classified", f"in stages: {' -> '.join(self._risk.stages)}")
        return True

    async def _preview_tool_call(self) -> bool:
        """Work out the tool call's effect; False, recorded, when it cannot be worked out."""
        assert self._action is not None
        if not self._tool_call.needs_preview(self._action.tool_call):
            return True
        try:
            self._record(*await self._tool_call.preview_effect(self._action.tool_call))
        except ActivityError as err:
            _raise_if_cancelled(err, self._patches)
            self._record("preview_failed", f"Preview failed: {root_message(err)}")
            return False
        return True

    async def _preview_amendment(self) -> list[str]:
        """An amendment that changes the tool call changes the effect: nobody has seen it,
        so it is previewed and the request asked again."""
        assert self._action is not None
        if not self._tool_call.needs_preview(self._action.tool_call):
            return []
        if not await self._preview_tool_call():
            return ["the amended tool call's effect could not be worked out"]
        preview = self._tool_call.preview
        return [f"a new effect: {preview.summary if preview else 'no tool call'}"]

    async def _execute_tool(self, outcome: Outcome, key: str) -> WorkflowResult:
        """Run the call through its tool: once per key, and only the effect approved (a
        read-only call that ran unasked has none to match)."""
        assert self._action is not None and self._action.tool_call is not None
        approved = self._approval_request.preview if self._approval_request else None
        try:
            done = await execute_tool(
                key,
                self._action.tool_call,
                approved,
                retry_policy=EXECUTE_RETRY,
                schedule_to_close_timeout=EXECUTE_PERSISTENCE,
            )
        except ActivityError as err:
            _raise_if_cancelled(err, self._patches)  # it stopped before doing anything
            message = f"Execution failed: {root_message(err)}"
            self._record("execution_failed", message)
            return await self._finish(Outcome.EXECUTION_FAILED, message)
        if not acted(done):
            return await self._not_executed(done)
        self._execution = execution_result(done)
        self._record("executed", self._execution.summary)
        verdict = (
            f"Approved by {self._decision.reviewer}"
            if outcome == Outcome.APPROVED and self._decision is not None
            else "Auto-approved (no risk found)"
        )
        return await self._finish(outcome, f"{verdict}; executed: {self._execution.summary}")

    async def _not_executed(self, done: ToolOutcome) -> WorkflowResult:
        """The tool did not act. The data changed since the approved preview: ask again with
        the effect as it is now (a few times at most). Or the action can no longer be
        carried out: end, recorded. An approval never applies to an effect nobody saw."""
        assert self._action is not None and self._risk is not None
        if done.status is not ToolStatus.DRIFTED or not self._tool_call.may_ask_again():
            message = f"Not executed: {done.summary}"
            self._record("not_executed", message)
            return await self._finish(Outcome.EXECUTION_FAILED, message)
        self._record("preview_drifted", done.summary)
        self._tool_call.drifted(done)
        fresh = await self._assess(self._action)  # a new amount may call for stages
        self._risk = still_asks(self._risk, fresh)
        assert self._approval_request is not None
        self._record(
            "approval_reopened",
            f"the approval of request {self._approval_request.request_id} was for another "
            f"effect; asking again: {done.preview.summary}",
        )
        self._decision, self._votes, self._stage_outcomes = None, [], []
        return await self._conclude(await self._decide(self._risk.stages))

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
        """Only when the starter set the attribute: an unregistered one would fail the task.
        A run of today's version skips an upsert that changes nothing (the final ``Approved``
        repeats the decision's): each is a command, an event and a visibility write. The
        value read is the run's own, as its upserts left it, so replay decides the same."""
        current = workflow.info().typed_search_attributes.get(APPROVAL_STATUS)
        if current is None or (self._patches.versioned and current == status.value):
            return
        workflow.upsert_search_attributes([APPROVAL_STATUS.value_set(status.value)])

    def _record(self, event: str, detail: str) -> None:
        entry = AuditEvent(at=workflow.now(), event=event, detail=detail)
        self._audit_bounds.append(self._audit, entry)  # within bounds: see audit_trail.py
        workflow.logger.info("%s: %s", event, cut(detail, MAX_AUDIT_DETAIL_CHARS))


def _raise_if_cancelled(err: ActivityError | ChildWorkflowError, patches: Patches) -> None:
    """An activity or stage that ended because the run was cancelled: the run's own
    cancellation, recorded as such (runs from before the patch went on as they did)."""
    if isinstance(err.cause, CancelledError) and patches.applied(ENDINGS_RECORDED_PATCH):
        raise asyncio.CancelledError() from err


def _describe(action: ProposedAction) -> str:
    return f"{action.action_type}: {action.description}"
