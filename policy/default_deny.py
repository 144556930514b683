"""Default-deny: only a read-only tool whose request and arguments trip no content rule
runs without a person.

A deny-list of risky words always has holes, and a model can be talked into calling
anything safe. So the question is turned around: a call runs unasked only when its tool
*declares* that it changes nothing (``Tool.read_only``, set by whoever wrote the tool, not
by the model) and the content rules of ``risk_policy`` find nothing in the request or the
arguments. Everything else asks: a tool that changes data, an ad-hoc statement, an unknown
tool, arguments the tool does not take, or no tool at all. The content rules stay as a
floor that can only add reasons; a preview that moves a large amount adds the stages.

Plain, deterministic functions: unit tests call them directly, and the risk assessment
(recorded in the run's history) calls them once per proposal.
"""

from typing import Any

from models.models import AssessRiskInput, ProposedAction, RecordedWorkflowInput, RiskAssessment
from models.tools import EffectPreview, ToolCall
from policy.risk_policy import (
    LARGE_AMOUNT,
    LARGE_AMOUNT_STAGES,
    adds_requirements,
    assess_request,
    matching_rules,
)
from tools.registry import InvalidToolCall, validated_arguments

NO_TOOL_REASON = "no tool call was proposed (default-deny)"
CHANGES_DATA_REASON = "{tool} changes data: only read-only tools run without a person"
ALWAYS_ASKS_REASON = "{tool} always asks a person"


def assess_with_default_deny(request: AssessRiskInput) -> RiskAssessment:
    """The policy's assessment, and for runs under default-deny its reasons and stages too.

    Runs started before default-deny keep the assessment they were started under. A proposal
    with no tool call cannot act on anything (its execution is only simulated), so "no tool
    call" is added only when nothing else already asks a person.
    """
    risk = assess_request(request)
    if not request.default_deny:
        return risk
    reasons = [*risk.reasons]
    call = request.action.tool_call
    if call is not None or not reasons:
        reasons += [reason for reason in tool_call_reasons(call) if reason not in reasons]
    stages = risk.stages or tool_call_stages(request.preview)
    return RiskAssessment(requires_approval=bool(reasons), reasons=reasons, stages=stages)


def still_asks(before: RiskAssessment, fresh: RiskAssessment) -> RiskAssessment:
    """After the data drifted under an approval: a person is asked again whatever the fresh
    assessment says, for every reason found before or now, in stages if either staged."""
    return RiskAssessment(
        requires_approval=True,
        reasons=[*before.reasons, *(r for r in fresh.reasons if r not in before.reasons)],
        stages=before.stages or fresh.stages,
    )


def tool_call_reasons(call: ToolCall | None) -> list[str]:
    """Why this call needs a person; empty only for a valid call of a read-only tool whose
    argument values trip no content rule."""
    if call is None:
        return [NO_TOOL_REASON]
    try:
        tool, _ = validated_arguments(call)
    except InvalidToolCall as err:
        return [f"{err} (default-deny)"]
    reasons = []
    if not tool.read_only:
        reasons.append(CHANGES_DATA_REASON.format(tool=tool.name))
    if tool.always_asks:
        reasons.append(ALWAYS_ASKS_REASON.format(tool=tool.name))
    matched = {reason for text in _values(call.arguments) for reason in matching_rules(text)}
    reasons.extend(sorted(matched))
    return reasons


def tool_call_stages(preview: EffectPreview | None) -> list[str]:
    """The staged approval for a call that moves a large amount, per its preview."""
    if preview is not None and preview.amount_cents >= LARGE_AMOUNT * 100:
        return list(LARGE_AMOUNT_STAGES)
    return []


def _values(value: Any) -> list[str]:
    """Every string in the arguments, each on its own (keys are the tool's own names)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _values(item)]
    if isinstance(value, list):
        return [text for item in value for text in _values(item)]
    return [] if value is None else [str(value)]


def assess(
    run_input: RecordedWorkflowInput, action: ProposedAction, preview: EffectPreview | None
) -> RiskAssessment:
    """The run's assessment of ``action`` (with its previewed effect, once known)."""
    return assess_with_default_deny(
        AssessRiskInput(
            user_request=run_input.user_request,
            action=action,
            require_approval=run_input.require_approval,
            approvers=run_input.approvers,
            approval_stages=run_input.approval_stages,
            default_deny=True,
            preview=preview,
        )
    )


def reassess(
    run_input: RecordedWorkflowInput,
    action: ProposedAction,
    before: RiskAssessment,
    preview: EffectPreview | None,
) -> tuple[list[str], RiskAssessment]:
    """What an amended ``action`` requires beyond ``before``, and the assessment to ask
    with: the stricter of the two."""
    after = assess(run_input, action, preview)
    added = adds_requirements(before, after)
    if not added:
        return [], before
    reasons = [*before.reasons, *(reason for reason in after.reasons if reason in added)]
    stricter = RiskAssessment(
        requires_approval=True, reasons=reasons, stages=after.stages or before.stages
    )
    return added, stricter
