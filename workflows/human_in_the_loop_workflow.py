"""The human-in-the-loop agent: an LLM proposes, a person decides, Temporal remembers.

``run`` is the story: analyse the request, assess the risk, then either execute a safe call
or ask, wait durably for a decision or the deadline, and execute what was approved.

Message surface (names in ``constants.py``):
- signal ``approval_decision`` (``ApprovalDecision`` JSON): a decision from
  ``temporal workflow signal`` or any client. Fire and forget: a refusal is recorded in the
  audit trail, since the signal is in history anyway.
- signal ``approve`` (``true`` / ``false``): the CLI's short form; it decides the pending
  request as reviewer ``temporal-cli``.
- update ``submit_decision`` (``ApprovalDecision``): the same decision, answered. Its
  validator rejects what cannot count before anything reaches history (counted in memory
  for the status); a repeat of a counted decision is answered ``AlreadyApplied``.
  All three take ``*payloads`` and validate the one they expect, so a payload of the
  wrong shape, or none, or two, or one the worker could not decode (with encryption on:
  one not encrypted with a key it holds) is refused, never a failed task.
- query ``get_status``: state, the request, votes, the waiting stage, the audit trail.

The wait and the deadline rule live in ``workflows/approval_window.py``.
"""

import asyncio
from datetime import timedelta
from typing import NoReturn, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.propose_action import AnalysisActivities
    from constants import (
        APPROVAL_DECISION_SIGNAL,
        APPROVE_SIGNAL,
        EDITS_CHANGE_THE_CALL,
        NAMED_APPROVERS_STAGE,
        SHORTHAND_REVIEWER,
        STATUS_QUERY,
        SUBMIT_DECISION_UPDATE,
        WORKFLOW_TYPE,
    )
    from models.limits import run_input_problem
    from models.models import (
        AnalysisRequest,
        ApprovalDecision,
        ApprovalRequest,
        ApprovalStatus,
        ApproveSignalPayload,
        CarriedRun,
        ExecutionResult,
        Outcome,
        ProposedAction,
        RecordedWorkflowInput,
        RiskAssessment,
        WorkflowResult,
        WorkflowState,
        WorkflowStatus,
    )
    from models.tools import ToolOutcome, ToolStatus
    from models.validation import PayloadRefused, single_payload
    from policy.default_deny import assess, reassess, still_asks
    from workflows import legacy_1_0
    from workflows.approval_window import (
        ApprovalWindow,
        ContinueAsNewSuggested,
        WindowRules,
        describe,
    )
    from workflows.audit_trail import AuditTrail
    from workflows.decision_rules import amendment_problem
    from workflows.decisions import refused_update, signalled, submitted
    from workflows.metrics import record_approval_requested, record_outcome
    from workflows.notifications import root_message
    from workflows.search_attributes import FINAL_APPROVAL_STATUS, set_approval_status
    from workflows.staged_approval import StagedApproval
    from workflows.tool_steps import ToolCallState, execute_tool, execution_result
    from workflows.versions import since

Decoded = TypeVar("Decoded")
ANALYSIS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=8,
)
NOT_WAITING = "the workflow is not waiting for a decision"


class NothingExecuted(Exception):
    """The run was cancelled and its action never took effect."""


@workflow.defn(name=WORKFLOW_TYPE)
class HumanInTheLoopWorkflow:
    @workflow.init
    def __init__(self, run_input: RecordedWorkflowInput) -> None:
        self._input = run_input
        self._state = WorkflowState.ANALYSING
        self._audit = AuditTrail()
        self._action: ProposedAction | None = None
        self._risk: RiskAssessment | None = None
        self._tool_call = ToolCallState()
        self._asking: ApprovalWindow | StagedApproval | None = None  # the latest request
        self._decision: ApprovalDecision | None = None
        self._barred = [run_input.requester] if run_input.requester else []
        self._execution: ExecutionResult | None = None
        self._result: WorkflowResult | None = None
        self._refused_updates = 0
        self._resumed: ApprovalWindow | None = None  # a request carried from the last run
        # Asked once, before any handler runs (an update's validator may not ask), and
        # carried on: a run continued from a 1.0 run keeps 1.0's path and records no marker.
        carried = run_input.carried
        new_path = carried is None or carried.edits_change_the_call
        self._edits_change_the_call = new_path and since(EDITS_CHANGE_THE_CALL)
        # In __init__, so a decision handled in the run's first task finds the request.
        self._forged = run_input.carried is not None and not self._resume(run_input.carried)

    @workflow.run
    async def run(self, run_input: RecordedWorkflowInput) -> WorkflowResult:
        try:
            if self._forged:
                self._audit.record("input_refused", "carried state comes only from continue-as-new")
                return await self._end(Outcome.INPUT_REFUSED, self._audit.last_detail)
            if self._resumed is not None:
                pass  # a request carried from the last run: wait on it, below
            elif problem := run_input_problem(run_input):
                self._audit.record("input_refused", problem)
                return await self._end(Outcome.INPUT_REFUSED, f"Refused: {problem}.")
            elif not await self._analyse(run_input.user_request):
                return await self._end(Outcome.ANALYSIS_FAILED, self._audit.last_detail)
            else:
                assert self._action is not None
                self._risk = assess(run_input, self._action, self._tool_call.preview)
                reasons = "; ".join(self._risk.reasons) or "no risk"
                self._audit.record("risk_classified", reasons)
                if not self._risk.requires_approval:
                    return await self._end_executed(await self._execute(), Outcome.AUTO_APPROVED)
            while True:  # amended calls, and data that drifted, ask again
                self._decision = await self._ask()
                if self._decision is None or not self._decision.approved:
                    return await self._end_undecided()
                if await self._amendment_asks_again():
                    continue
                executed = await self._execute()
                if not self._drifted(executed):
                    return await self._end_executed(executed, Outcome.APPROVED)
        except (NothingExecuted, asyncio.CancelledError, ActivityError, ChildWorkflowError) as err:
            if not (isinstance(err, NothingExecuted) or is_cancelled_exception(err)):
                raise
            self._audit.record("cancelled", "Cancelled; nothing was executed.")
            return await self._end(Outcome.CANCELLED, "Cancelled; nothing was executed.")

    @workflow.signal(name=APPROVAL_DECISION_SIGNAL)
    def approval_decision(self, *payloads: object) -> None:
        decision = self._decoded(payloads, ApprovalDecision, "a valid ApprovalDecision")
        if decision is not None:
            signalled(self._waiting(), decision, self._audit.record)

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, *payloads: object) -> None:
        approved = self._decoded(payloads, ApproveSignalPayload, "true or false")
        if approved is None:
            return
        waiting = self._waiting()
        pending = waiting.request.request_id if isinstance(waiting, ApprovalWindow) else "none"
        shorthand = ApprovalDecision(
            request_id=pending, approved=approved, reviewer=SHORTHAND_REVIEWER
        )
        signalled(waiting, shorthand, self._audit.record)

    @workflow.update(name=SUBMIT_DECISION_UPDATE)
    def submit_decision(self, *payloads: object) -> ApprovalDecision:
        window = self._waiting()
        assert isinstance(window, ApprovalWindow)  # the validator passed it in this task
        return window.apply(submitted(payloads))

    @submit_decision.validator
    def _validate_decision(self, *payloads: object) -> None:
        # A rejection here never reaches history: the sender is told, this worker counts it.
        try:
            refused_update(self._waiting(), payloads)
        except Exception:
            self._refused_updates += 1
            raise

    @workflow.query(name=STATUS_QUERY)
    def get_status(self) -> WorkflowStatus:
        # A query must not change state: it only reads.
        asking = self._asking
        window = asking if isinstance(asking, ApprovalWindow) else None
        stages = asking if isinstance(asking, StagedApproval) else None
        return WorkflowStatus(
            state=self._state,
            approval_request=asking.request if asking else None,
            decision=self._decision or (window.decision if window else None),
            votes=window.votes if window else [],
            required_approvals=1 if stages else self._input.voting.required_approvals,
            current_stage=stages.progress if stages else None,
            result=self._result,
            audit_trail=self._audit.events,
            refused_updates=self._refused_updates,
        )

    async def _analyse(self, user_request: str) -> bool:
        """The model's proposal and its effect, recorded; False when there is no usable
        proposal or its effect cannot be worked out."""
        try:
            proposal = await workflow.execute_activity_method(
                AnalysisActivities.propose_action,
                AnalysisRequest(user_request=user_request),
                start_to_close_timeout=timedelta(seconds=90),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=ANALYSIS_RETRY,
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            self._audit.record("analysis_failed", f"Analysis failed: {root_message(err)}")
            return False
        self._action = proposal.action
        self._audit.record("action_proposed", describe(proposal.action))
        if proposal.preview_failure is not None:
            self._audit.record("preview_failed", f"Preview failed: {proposal.preview_failure}")
            return False
        self._audit.record(*self._tool_call.proposed(proposal.preview))
        return True

    async def _preview(self) -> bool:
        """Work out an amended call's effect; False, recorded, when it cannot be."""
        assert self._action is not None and self._action.tool_call is not None
        try:
            self._audit.record(*await self._tool_call.preview_effect(self._action.tool_call))
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise
            self._audit.record("preview_failed", f"Preview failed: {root_message(err)}")
            return False
        return True

    async def _ask(self) -> ApprovalDecision | None:
        """Open a request and wait for its decision: in one window, or stage by stage (or
        wait on the request a previous run carried here)."""
        assert self._risk is not None
        self._decision = None  # an earlier round's decision is not this request's
        self._state = WorkflowState.AWAITING_APPROVAL
        set_approval_status(ApprovalStatus.PENDING)
        if self._resumed is not None:
            window, self._resumed = self._resumed, None
            decision = await self._wait(window, resumed=True)
        elif self._risk.stages:
            self._count_request()
            stages = self._asking = self._staged(self._new_request(), self._risk.stages)
            decision = await stages.run()
        else:
            self._count_request()
            decision = await self._wait(self._open_window(self._new_request()))
        self._state = WorkflowState.DECIDED
        if decision is not None:
            verdict = ApprovalStatus.APPROVED if decision.approved else ApprovalStatus.REJECTED
            set_approval_status(verdict)
        return decision

    async def _wait(
        self, window: ApprovalWindow, *, resumed: bool = False
    ) -> ApprovalDecision | None:
        try:
            return await window.wait(resumed=resumed)
        except ContinueAsNewSuggested:
            await self._continue_as_new(window)

    def _staged(self, request: ApprovalRequest, stages: list[str]) -> StagedApproval:
        """The request in stages. Staging only adds requirements: approvers the request
        named decide first, as a stage of their own (with its quorum)."""
        members = dict(self._input.stage_approvers)
        voting = {}
        if self._input.approvers:
            stages = [NAMED_APPROVERS_STAGE, *stages]
            members[NAMED_APPROVERS_STAGE] = self._input.approvers
            voting[NAMED_APPROVERS_STAGE] = self._input.voting
        if self._input.escalation is not None:
            self._audit.record(
                "stages_override", "the request is decided in stages: escalation does not apply"
            )
        return StagedApproval(request, stages, members, self._barred, self._audit.record, voting)

    def _count_request(self) -> None:
        """The approvals-requested metric counts runs that asked, not rounds of asking."""
        if self._asking is None:
            record_approval_requested()

    def _open_window(self, request: ApprovalRequest, *, resumed: bool = False) -> ApprovalWindow:
        rules = WindowRules(
            voting=self._input.voting,
            barred=self._barred,
            escalation=self._input.escalation,
            continues_as_new=True,
            amendment_rule=(
                amendment_problem if self._edits_change_the_call else legacy_1_0.any_amendment
            ),
        )
        window = self._asking = ApprovalWindow(request, rules, self._audit.record)
        if not resumed:
            self._audit.record("approval_requested", f"request {request.request_id}")
        return window

    async def _continue_as_new(self, window: ApprovalWindow) -> NoReturn:
        """Carry the waiting request into a new run, before the history's size can bite."""
        assert self._action is not None and self._risk is not None
        length = workflow.info().get_current_history_length()
        self._audit.record("continued_as_new", f"after {length:,} events; the request waits on")
        await workflow.wait_condition(workflow.all_handlers_finished)
        carried = CarriedRun(
            action=self._action,
            risk=self._risk,
            preview=self._tool_call.preview,
            previews=self._tool_call.previews,
            request=window.request,
            votes=window.votes,
            amenders=window.amenders,
            barred=self._barred,
            audit_trail=self._audit.events,
            refused_updates=self._refused_updates,
            slack_messages=window.slack_messages,
            edits_change_the_call=self._edits_change_the_call,
            from_run_id=workflow.info().run_id,
        )
        workflow.continue_as_new(self._input.model_copy(update={"carried": carried}))

    def _resume(self, carried: CarriedRun) -> bool:
        """Take up the request the run this one continues carried here. Only that run gives
        carried state: it names itself, and nobody can know a run's ID before starting it
        (a starter's forgery, repeated by a cron schedule or a retry, is refused)."""
        if carried.from_run_id != workflow.info().continued_run_id:
            return False
        self._audit = AuditTrail.carried(carried.audit_trail)
        self._action, self._risk, self._barred = carried.action, carried.risk, carried.barred
        self._refused_updates = carried.refused_updates
        self._tool_call.proposed(carried.preview)
        self._tool_call.previews = carried.previews
        self._resumed = self._open_window(carried.request, resumed=True)
        self._resumed.votes, self._resumed.amenders = carried.votes, carried.amenders
        self._resumed.slack_messages = carried.slack_messages
        return True

    def _new_request(self) -> ApprovalRequest:
        assert self._action is not None and self._risk is not None
        now = workflow.now()
        return ApprovalRequest(
            workflow_id=workflow.info().workflow_id,
            request_id=str(workflow.uuid4()),
            user_request=self._input.user_request,
            proposed_action=self._action,
            risk_reasons=self._risk.reasons,
            requested_at=now,
            deadline=now + timedelta(seconds=self._input.approval_timeout_seconds),
            approvers=[] if self._risk.stages else self._input.approvers,
            preview=self._tool_call.preview,
        )

    async def _amendment_asks_again(self) -> bool:
        """An approval covers the call it was given for. An approved amendment is another
        call (the decision rules refuse any other edit), so it is previewed, assessed and
        asked about again, as a new request that whoever amended it may not approve."""
        window = self._asking
        if not isinstance(window, ApprovalWindow) or not window.amenders:
            return False
        asked, self._action = self._action, window.request.proposed_action
        self._barred += [name for name in window.amenders if name not in self._barred]
        if not self._edits_change_the_call:  # a run started on 1.0
            call = asked.tool_call if asked else None
            return await legacy_1_0.amendment_adds_risk(self, call, window.request.request_id)
        if await self._preview():
            assert self._tool_call.preview is not None
            effect = f"its effect: {self._tool_call.preview.summary}"
        else:
            effect = "its effect could not be worked out"
        assert self._risk is not None
        more, self._risk = reassess(self._input, self._action, self._risk, self._tool_call.preview)
        adds = f"; it adds: {'; '.join(more)}" if more else ""
        self._audit.record(
            "approval_reopened",
            f"the approval of request {window.request.request_id} does not cover the amended "
            f"call; {effect}{adds}",
        )
        return True

    async def _execute(self) -> ToolOutcome | None:
        """Execute the call once per request. Once started it is shielded from the run's
        cancellation: it finishes and is recorded, never abandoned to commit later. None,
        recorded, when it failed."""
        assert self._action is not None
        self._state = WorkflowState.EXECUTING
        if self._action.tool_call is None:  # the analysis refuses such proposals
            self._audit.record("execution_failed", "Execution failed: no tool call to run")
            return None
        # Unique per start even when a workflow ID is reused: a request ID is a fresh UUID,
        # and a run that asked nobody uses its first run ID (the same on every replay).
        info = workflow.info()
        asked = self._decision.request_id if self._decision else None
        key = f"{info.workflow_id}/{asked or f'auto/{info.first_execution_run_id}'}"
        approved = self._tool_call.preview if self._decision else None
        execution = asyncio.ensure_future(execute_tool(key, self._action.tool_call, approved))
        cancelled = False
        while True:
            try:
                outcome = await asyncio.shield(execution)
                break
            except asyncio.CancelledError:
                cancelled = True
                self._audit.record("cancel_deferred", "cancelled while executing: it finishes")
            except ActivityError as err:
                self._audit.record("execution_failed", f"Execution failed: {root_message(err)}")
                if cancelled:
                    raise NothingExecuted() from err
                return None
        if cancelled and outcome.status is not ToolStatus.EXECUTED:
            raise NothingExecuted()
        return outcome

    def _drifted(self, outcome: ToolOutcome | None) -> bool:
        """The data changed since the approved preview: ask again about the effect as it is
        now (a few times at most). An approval never applies to an effect nobody saw."""
        if outcome is None or outcome.status is not ToolStatus.DRIFTED:
            return False
        if not self._tool_call.may_ask_again():
            return False
        assert self._action is not None and self._risk is not None and outcome.preview
        self._audit.record("preview_drifted", outcome.summary)
        self._tool_call.drifted(outcome)
        fresh = assess(self._input, self._action, outcome.preview)  # may stage a new amount
        self._risk = still_asks(self._risk, fresh)
        asked = self._asking.request.request_id if self._asking else "?"
        self._audit.record(
            "approval_reopened",
            f"the approval of request {asked} was for another effect; asking again: "
            f"{outcome.preview.summary}",
        )
        return True

    async def _end_executed(self, outcome: ToolOutcome | None, ending: Outcome) -> WorkflowResult:
        if outcome is None:
            return await self._end(Outcome.EXECUTION_FAILED, self._audit.last_detail)
        if outcome.status is not ToolStatus.EXECUTED:
            message = f"Not executed: {outcome.summary}"
            self._audit.record("not_executed", message)
            return await self._end(Outcome.EXECUTION_FAILED, message)
        self._execution = execution_result(outcome)
        self._audit.record("executed", self._execution.summary)
        verdict = (
            f"Approved by {self._decision.reviewer}"
            if ending == Outcome.APPROVED and self._decision is not None
            else "Auto-approved (no risk found)"
        )
        return await self._end(ending, f"{verdict}; executed: {self._execution.summary}")

    async def _end_undecided(self) -> WorkflowResult:
        """Rejected, timed out, or a stage that could not be decided."""
        if (decision := self._decision) is not None:
            notes = decision.reviewer_notes or "no notes"
            message = f"Rejected by {decision.reviewer}: {notes}. Nothing was executed."
            return await self._end(Outcome.REJECTED, message)
        asking = self._asking
        if isinstance(asking, StagedApproval) and (failure := asking.failure) is not None:
            return await self._end(Outcome.STAGE_FAILED, failure)
        message = f"No decision within {self._input.approval_timeout_seconds}s; cancelled."
        self._audit.record("timed_out", message)
        return await self._end(Outcome.TIMED_OUT, message)

    async def _end(self, outcome: Outcome, message: str) -> WorkflowResult:
        asking = self._asking
        self._result = WorkflowResult(
            outcome=outcome,
            message=message,
            proposed_action=self._action,
            risk=self._risk,
            request_id=asking.request.request_id if asking else None,
            decision=self._decision,
            votes=asking.votes if isinstance(asking, ApprovalWindow) else [],
            stages=asking.outcomes if isinstance(asking, StagedApproval) else [],
            execution=self._execution,
            audit_trail=self._audit.events,
        )
        self._state = WorkflowState.COMPLETED
        set_approval_status(FINAL_APPROVAL_STATUS[outcome])
        record_outcome(self._result, asking.request if asking else None)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result

    def _waiting(self) -> ApprovalWindow | str:
        """The window a decision for this run counts on, or why there is none."""
        asking = self._asking
        if isinstance(asking, StagedApproval):
            return asking.refusal() or NOT_WAITING
        return asking if asking is not None else NOT_WAITING

    def _decoded(
        self, payloads: tuple[object, ...], type_hint: type[Decoded], expected: str
    ) -> Decoded | None:
        """The signal's one payload as ``type_hint``; None, with the refusal recorded, if not."""
        try:
            return single_payload(payloads, type_hint, expected)
        except PayloadRefused as refused:
            self._audit.record("decision_refused", str(refused))
            return None
