"""Everything that crosses a Temporal boundary: workflow input and result, activity inputs
and outputs, signal payloads and the status query's answer.

All of it is pydantic, carried by ``pydantic_data_converter``, so a payload that does not
match its model is refused at the edge instead of surfacing as a confusing error later.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from models.tools import EffectPreview, ToolCall, ToolOutcome

DEFAULT_APPROVAL_TIMEOUT_SECONDS = 300
# The longest a run may wait for a person. Far beyond it, the deadline (now + timeout)
# overflows inside the workflow and fails every workflow task of the run.
MAX_WAIT_SECONDS = 365 * 24 * 60 * 60


def _at_most_a_year(seconds: int) -> int:
    if seconds > MAX_WAIT_SECONDS:
        raise ValueError(f"must be at most {MAX_WAIT_SECONDS} seconds (365 days)")
    return seconds


# Seconds a run waits for a person: more than none, at most a year.
WaitSeconds = Annotated[int, Field(gt=0), AfterValidator(_at_most_a_year)]

# A stage name becomes part of a child workflow ID and of commands people type: short,
# plain characters, unique within a run.
STAGE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"


def _unique_stages(stages: list[str]) -> list[str]:
    repeated = sorted({stage for stage in stages if stages.count(stage) > 1})
    if repeated:
        raise ValueError(f"each stage may appear once; repeated: {', '.join(repeated)}")
    return stages


StageNames = Annotated[
    list[Annotated[str, Field(pattern=STAGE_NAME_PATTERN)]], AfterValidator(_unique_stages)
]


class VotingPolicy(BaseModel):
    """When several approvers vote: how many approvals settle it, and what a rejection does.

    With ``rejection_vetoes`` one rejection rejects. Without it, the request is rejected
    only once the remaining approvers can no longer reach the quorum.
    """

    required_approvals: int = Field(default=1, ge=1)
    rejection_vetoes: bool = True


class EscalationPolicy(BaseModel):
    """If nobody decides within ``after_seconds``, remind and widen the circle of approvers."""

    after_seconds: WaitSeconds
    approvers: list[str] = Field(min_length=1)


def single_decision_settings(
    approvers: list[str], voting: VotingPolicy, escalation: object | None
) -> list[str]:
    """Which of the single-decision settings a request gives; shared by the strict input
    model and the lenient one the workflow decodes."""
    given = (
        ("approvers", bool(approvers)),
        ("voting", voting != VotingPolicy()),
        ("escalation", escalation is not None),
    )
    return [name for name, present in given if present]


class WorkflowInput(BaseModel):
    """What a user asks the agent to do, and how long a human may take to decide.

    Approval stages replace the single decision: each stage is decided in its own child
    workflow by its ``approve`` signal, so stages cannot be combined with approvers, voting
    or escalation. (When the risk policy stages a request, the stages win and the audit
    trail says which settings do not apply.)
    """

    user_request: str = Field(min_length=1)
    approval_timeout_seconds: WaitSeconds = DEFAULT_APPROVAL_TIMEOUT_SECONDS
    require_approval: bool = False
    requester: str | None = None
    approvers: list[str] = Field(
        default_factory=list, description="who may decide; empty means anyone"
    )
    voting: VotingPolicy = Field(default_factory=VotingPolicy)
    escalation: EscalationPolicy | None = None
    approval_stages: StageNames = Field(
        default_factory=list,
        description="approve stage by stage, each in its own child workflow; "
        "empty lets the risk policy choose; names of letters, digits, '_', '-', '.' "
        "(at most 40), each once",
    )

    stage_approvers: dict[str, list[str]] = Field(
        default_factory=dict,
        description="who may approve each stage, by stage name (from HITL_STAGE_APPROVERS); "
        "a stage with no members is never approved by anyone",
    )

    @model_validator(mode="after")
    def _quorum_is_reachable(self) -> "WorkflowInput":
        eligible = set(self.approvers)
        if self.escalation is not None:
            eligible |= set(self.escalation.approvers)
        if self.approvers and self.voting.required_approvals > len(eligible):
            raise ValueError(
                f"{self.voting.required_approvals} approvals required but only "
                f"{len(eligible)} approvers named"
            )
        return self

    @model_validator(mode="after")
    def _stages_stand_alone(self) -> "WorkflowInput":
        if self.approval_stages and (given := self.single_decision_settings()):
            *others, last = given
            listed = f"{', '.join(others)} or {last}" if others else last
            raise ValueError(
                f"approval_stages cannot be combined with {listed}: "
                "each stage is decided by its own approve signal"
            )
        return self

    def single_decision_settings(self) -> list[str]:
        """The settings given for a single decision (approvers, voting, escalation), which
        a staged request does not use."""
        return single_decision_settings(self.approvers, self.voting, self.escalation)


class RecordedEscalation(BaseModel):
    """``EscalationPolicy`` as any version stored it (no cap on the wait)."""

    after_seconds: int
    approvers: list[str]


class RecordedWorkflowInput(BaseModel):
    """``WorkflowInput`` as the workflow decodes it: as lenient as every earlier version.

    A run's input is decoded again on every replay, by whatever code the worker runs then.
    The rules ``WorkflowInput`` applies to new requests (stages alone, a wait of at most a
    year, stage names safe for IDs) live at the entrances; were they applied here, a run
    started before a rule existed would fail every workflow task on its own input.
    """

    user_request: str
    approval_timeout_seconds: int = DEFAULT_APPROVAL_TIMEOUT_SECONDS
    require_approval: bool = False
    requester: str | None = None
    approvers: list[str] = []
    voting: VotingPolicy = Field(default_factory=VotingPolicy)
    escalation: RecordedEscalation | None = None
    approval_stages: list[str] = []
    stage_approvers: dict[str, list[str]] = {}
    carried: "CarriedRun | None" = Field(
        default=None, description="a waiting run's state, given only by continue-as-new"
    )

    def single_decision_settings(self) -> list[str]:
        """The settings given for a single decision (approvers, voting, escalation), which
        a staged request does not use."""
        return single_decision_settings(self.approvers, self.voting, self.escalation)


class ProposedAction(BaseModel):
    """The LLM's proposal. Unknown fields are refused: the LLM is untrusted input."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    action_type: str = Field(min_length=1)
    description: str = Field(min_length=1)
    reasoning: str
    risky_action: bool
    parameters: dict[str, str] = Field(default_factory=dict)
    tool_call: ToolCall | None = Field(
        default=None,
        description="the tool to run (tools/registry.py); the analysis refuses a proposal "
        "without one, so None appears only in runs analysed before it did",
    )

    def with_arguments(self, arguments: dict[str, Any]) -> "ProposedAction":
        """This action with its tool call's arguments replaced: what an approval with edits
        approves. An edit changes what runs, so it changes the call, never the words about
        it; the tool stays (``workflows/decision_rules.py``). Raises ValueError without a
        call to edit."""
        if self.tool_call is None:
            raise ValueError("this action has no tool call to edit")
        call = self.tool_call.model_copy(update={"arguments": arguments})
        return self.model_copy(update={"tool_call": call})


class AnalysisRequest(BaseModel):
    """Input of the analysis activity."""

    user_request: str


class Proposal(BaseModel):
    """What the analysis proposes: the action, and its tool call's effect worked out."""

    action: ProposedAction
    preview: EffectPreview | None = None
    preview_failure: str | None = Field(
        default=None, description="why the call's effect could not be worked out"
    )


class RiskAssessment(BaseModel):
    """Why a proposed action does, or does not, need a human, and in which stages (empty:
    a single decision). Recorded in the run's history, so a later rule change never alters
    a run that already acted on it."""

    requires_approval: bool
    reasons: list[str]
    stages: list[str] = []


class ApprovalRequest(BaseModel):
    """What an approver is shown: the request, the proposal, why it is risky, and until when."""

    workflow_id: str
    request_id: str
    user_request: str
    proposed_action: ProposedAction
    risk_reasons: list[str]
    requested_at: datetime
    deadline: datetime
    approvers: list[str] = Field(default_factory=list, description="empty means anyone")
    escalated: bool = False
    stage: str | None = Field(default=None, description="set for a staged (child) approval")
    preview: EffectPreview | None = Field(
        default=None, description="what the tool call would change, worked out before asking"
    )


UNKNOWN_REVIEWER = "unknown"

# The payload of the ``approve`` shorthand signal: JSON true or false, nothing else.
# Pydantic's lax bool would read "yes", "on" or 1 as approval; an approval must be explicit.
ApproveSignalPayload = StrictBool


class ApprovalDecision(BaseModel):
    """An approver's answer to one approval request.

    ``decided_at`` may be omitted (e.g. from the Temporal CLI); the workflow then records the
    time it received the decision. ``amended_action`` approves the proposal with its tool
    call's arguments edited (``ProposedAction.with_arguments``): that call is previewed and
    asked about again, and it is what executes.
    """

    request_id: str = Field(min_length=1)
    approved: StrictBool  # "yes" or 1 must not approve anything
    reviewer: str = Field(default=UNKNOWN_REVIEWER, min_length=1)
    reviewer_notes: str = ""
    decided_at: datetime | None = None
    amended_action: ProposedAction | None = None
    stage: str | None = Field(
        default=None, description="the stage it decides, for a staged request: never another"
    )


class AssessRiskInput(BaseModel):
    """Input of the risk assessment (an activity, so its answer is in history)."""

    user_request: str
    action: ProposedAction
    require_approval: bool = False
    approvers: list[str] = []
    approval_stages: list[str] = []
    default_deny: bool = Field(
        default=False, description="only a read-only tool call may run unasked (new runs)"
    )
    preview: EffectPreview | None = Field(
        default=None, description="the tool call's effect, once worked out: large amounts stage"
    )


class StageApprovalInput(BaseModel):
    """Input of one approval stage's child workflow: its request names its approvers."""

    stage: str
    approval_request: ApprovalRequest  # its deadline is the stage's deadline
    barred_reviewers: list[str] = Field(
        default_factory=list,
        description="who may not approve it: the requester, an amender, an earlier stage's",
    )
    voting: VotingPolicy = Field(default_factory=VotingPolicy)


class StageOutcome(BaseModel):
    """How a stage ended: approved, rejected, or (``approved`` is None) timed out.

    ``notice_failures`` are the stage's notices that failed (terminal, webhook), for the
    parent's audit trail: the stage could still be decided.
    """

    stage: str
    approved: bool | None
    decided_at: datetime | None = None
    notice_failures: list[str] = []
    reviewer: str | None = Field(default=None, description="who decided the stage")
    notes: str = Field(default="", description="the deciding reviewer's notes")
    approvers: list[str] = Field(
        default_factory=list,
        description="everyone whose approval the stage counted (a quorum: more than the "
        "reviewer): none of them may approve a later stage",
    )
    detail: str = Field(default="", description="why a stage never ran, when it did not")
    refusals: list[str] = Field(
        default_factory=list, description="decisions the stage refused, for the parent's audit"
    )


class StageProgress(BaseModel):
    """Which stage waits now, who may decide it, and the child workflow that takes it."""

    stage: str
    child_workflow_id: str
    position: int
    of: int
    members: list[str] = Field(
        default=[], description="who may decide the stage (empty: a worker that did not say)"
    )


class WebhookDelivery(BaseModel):
    """What the webhook notifier did. The URL is a secret: only its host is reported."""

    delivered: bool
    detail: str


class EmailDelivery(BaseModel):
    """What the e-mail notifier did: recipients and server, never credentials."""

    delivered: bool
    detail: str


class SlackMessage(BaseModel):
    """A posted Slack message, by the two IDs ``chat.update`` needs to change it."""

    channel: str
    ts: str


class SlackDelivery(BaseModel):
    """What the Slack notifier did; ``message`` is the one it posted, if it posted one."""

    delivered: bool
    detail: str
    message: SlackMessage | None = None


class SlackClosing(BaseModel):
    """Input of the activity that updates a request's Slack messages once it closed:
    ``decision`` None means no decision counted in time (the request timed out), or, with
    ``cancelled``, that the run was cancelled while it waited."""

    messages: list[SlackMessage]
    request: ApprovalRequest
    decision: ApprovalDecision | None = None
    cancelled: bool = False


class NoticeChannel(StrEnum):
    """Where an approval notice goes; the names are those the audit trail uses."""

    TERMINAL = "terminal notice"
    WEBHOOK = "webhook"
    EMAIL = "e-mail"
    SLACK = "slack"


class ChannelNotice(BaseModel):
    """One channel's part of ``send_approval_notices``: delivered, not configured (neither
    delivered nor failed), or failed, and then whether another attempt may succeed."""

    channel: NoticeChannel
    delivered: bool = False
    failed: bool = False
    retryable: bool = False
    detail: str = ""
    slack_message: SlackMessage | None = None  # the Slack channel's posted message


class NoticeReport(BaseModel):
    """What ``send_approval_notices`` did on each channel, in ``NoticeChannel`` order."""

    channels: list[ChannelNotice]


class ExecutionResult(BaseModel):
    """What the execution did: a tool's outcome, or (with no tool call) a simulation."""

    idempotency_key: str
    summary: str
    simulated: bool = True
    tool_outcome: ToolOutcome | None = None


class Outcome(StrEnum):
    AUTO_APPROVED = "auto_approved"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"
    ANALYSIS_FAILED = "analysis_failed"
    EXECUTION_FAILED = "execution_failed"
    CANCELLED = "cancelled"
    STAGE_FAILED = "stage_failed"  # a stage's child workflow could not be started
    INPUT_REFUSED = "input_refused"  # over a limit (models/limits.py), started bypassing checks


class WorkflowState(StrEnum):
    ANALYSING = "analysing"
    AWAITING_APPROVAL = "awaiting_approval"
    DECIDED = "decided"
    EXECUTING = "executing"
    COMPLETED = "completed"


class AuditEvent(BaseModel):
    """One line of the audit trail, stamped with workflow time (deterministic on replay)."""

    at: datetime
    event: str
    detail: str


class WorkflowResult(BaseModel):
    """How a run ended, in a form both people and programs can read."""

    outcome: Outcome
    message: str
    proposed_action: ProposedAction | None = None
    risk: RiskAssessment | None = None
    request_id: str | None = None
    decision: ApprovalDecision | None = None
    votes: list[ApprovalDecision] = []
    stages: list[StageOutcome] = []
    execution: ExecutionResult | None = None
    audit_trail: list[AuditEvent] = []


class WorkflowStatus(BaseModel):
    """The answer of the status query: where a run stands right now.

    ``approval_request`` is the request awaiting (or, later, given) a decision.
    """

    state: WorkflowState
    approval_request: ApprovalRequest | None = None
    decision: ApprovalDecision | None = None
    votes: list[ApprovalDecision] = []
    required_approvals: int = 1
    current_stage: StageProgress | None = None
    result: WorkflowResult | None = None
    audit_trail: list[AuditEvent] = []
    refused_updates: int = Field(
        default=0, description="decisions by update this worker refused (kept in memory only)"
    )


class ApprovalStatus(StrEnum):
    """Values of the ``ApprovalStatus`` search attribute, for listing runs by where they stand."""

    ANALYSING = "Analysing"
    PENDING = "Pending"
    APPROVED = "Approved"
    REJECTED = "Rejected"
    TIMED_OUT = "TimedOut"
    AUTO_APPROVED = "AutoApproved"
    FAILED = "Failed"
    EXECUTION_FAILED = "ExecutionFailed"
    CANCELLED = "Cancelled"


class CarriedRun(BaseModel):
    """What a run waiting for a decision carries into its next run (continue-as-new), so
    the request goes on as it was: same request ID, deadline, votes and audit trail."""

    action: ProposedAction
    risk: RiskAssessment
    preview: EffectPreview | None
    previews: int
    request: ApprovalRequest
    votes: list[ApprovalDecision]
    amenders: list[str]
    barred: list[str]
    audit_trail: list[AuditEvent]
    refused_updates: int
    slack_messages: list[SlackMessage] = Field(default_factory=list)  # updated once decided
    edits_change_the_call: bool = Field(
        default=False,
        description="the run takes version EDITS_CHANGE_THE_CALL's path (constants.py); "
        "a run carried by 1.0 code says nothing and keeps 1.0's",
    )
    from_run_id: str = Field(
        description="the run that carried it: the next run checks it is the one it continues"
    )


RecordedWorkflowInput.model_rebuild()
