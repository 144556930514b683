"""The input limits as plain functions: each at its limit passes, one character over is
refused with the limit named; the audit trail stays bounded; and the largest status the
limits allow, built here with the costliest characters, stays under half of Temporal's
2 MB payload limit."""

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from activities.offline_analysis import propose_offline
from activities.proposal_parser import MalformedProposalError, parse_proposed_action
from models.limits import (
    AUDIT_STORY_MAX_CHARS,
    MAX_ACTION_TYPE_CHARS,
    MAX_APPROVERS,
    MAX_AUDIT_DETAIL_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_ITEMISED_REFUSALS,
    MAX_MODEL_ANSWER_CHARS,
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    MAX_PARAMETER_VALUE_CHARS,
    MAX_PARAMETERS,
    MAX_REASONING_CHARS,
    MAX_REFUSAL_DETAIL_CHARS,
    MAX_REQUEST_CHARS,
    MAX_STAGES,
    MAX_TOOL_CALL_BYTES,
    MAX_VOTES,
    action_problem,
    decision_problem,
    run_input_problem,
    tool_call_problem,
    votes_problem,
)
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    AuditEvent,
    EscalationPolicy,
    ExecutionResult,
    Outcome,
    ProposedAction,
    RiskAssessment,
    StageOutcome,
    StageProgress,
    VotingPolicy,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from models.tools import (
    MAX_RESULT_CELL_CHARS,
    MAX_RESULT_COLUMNS,
    MAX_RESULT_ROWS,
    EffectPreview,
    ToolCall,
    ToolOutcome,
    ToolStatus,
)
from workflows.audit_trail import NOT_ITEMISED, AuditBounds

# JSON's costliest character: a control character is written \u0001, 6 bytes.
COSTLY = "\x01"
PAYLOAD_LIMIT_BYTES = 2 * 1024 * 1024
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TEMPORAL_MAX_ID_CHARS = 1000  # the server's default limit on workflow IDs
# A failed notice is our own activities' message ("webhook at host answered HTTP 503").
NOTICE_FAILURE_CHARS = 300


def text(length: int, tag: str = "", fill: str = "x") -> str:
    """``length`` characters, starting with ``tag`` (to keep names distinct)."""
    return (tag + fill * length)[:length]


def largest_tool_call(fill: str = "x") -> ToolCall:
    """An e-mail whose JSON is exactly ``MAX_TOOL_CALL_BYTES``, whatever ``fill`` costs."""
    arguments = {"to": "ops@example.com", "mailing_list": None, "subject": "Done", "body": ""}

    def size(body: str) -> int:
        call = ToolCall(tool="send_email", arguments=arguments | {"body": body})
        return len(call.model_dump_json().encode())

    per_char = size(fill) - size("")
    room = MAX_TOOL_CALL_BYTES - size("")
    body = text(room // per_char, fill=fill) + "x" * (room % per_char)
    return ToolCall(tool="send_email", arguments=arguments | {"body": body})


def largest_action(fill: str = "x") -> ProposedAction:
    return ProposedAction(
        tool_call=largest_tool_call(fill),
        action_type=text(MAX_ACTION_TYPE_CHARS, fill=fill),
        description=text(MAX_DESCRIPTION_CHARS, fill=fill),
        reasoning=text(MAX_REASONING_CHARS, fill=fill),
        risky_action=True,
        parameters={
            text(MAX_NAME_CHARS, str(n), fill): text(MAX_PARAMETER_VALUE_CHARS, fill=fill)
            for n in range(MAX_PARAMETERS)
        },
    )


def over(limit: int) -> str:
    return f"{limit + 1:,} characters; the limit is {limit:,}"


# The request and the run's settings


def test_a_request_at_the_limit_passes_and_one_character_more_is_refused() -> None:
    assert run_input_problem(WorkflowInput(user_request=text(MAX_REQUEST_CHARS))) is None
    refused = run_input_problem(WorkflowInput(user_request=text(MAX_REQUEST_CHARS + 1)))
    assert refused == f"the request is {over(MAX_REQUEST_CHARS)}"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"requester": text(MAX_NAME_CHARS + 1)}, f"the requester is {over(MAX_NAME_CHARS)}"),
        (
            {"approvers": ["ann", text(MAX_NAME_CHARS + 1)]},
            f"approver 2 is {over(MAX_NAME_CHARS)}",
        ),
        (
            {"approvers": [f"a{n}" for n in range(MAX_APPROVERS + 1)]},
            f"{MAX_APPROVERS + 1} approvers named (escalation included); "
            f"the limit is {MAX_APPROVERS}",
        ),
        (
            {
                "approvers": [f"a{n}" for n in range(MAX_APPROVERS)],
                "escalation": EscalationPolicy(after_seconds=60, approvers=["boss"]),
            },
            f"{MAX_APPROVERS + 1} approvers named (escalation included)",
        ),
        (
            {"approvers": ["ann"] * (MAX_APPROVERS + 1)},
            f"{MAX_APPROVERS + 1} approvers named (escalation included)",
        ),
        (
            {"voting": VotingPolicy(required_approvals=MAX_APPROVERS + 1)},
            f"{MAX_APPROVERS + 1} approvals required; the limit is {MAX_APPROVERS}",
        ),
        (
            {"approval_stages": [f"s{n}" for n in range(MAX_STAGES + 1)]},
            f"{MAX_STAGES + 1} approval stages; the limit is {MAX_STAGES}",
        ),
    ],
    ids=[
        "requester",
        "approver name",
        "approvers",
        "escalation tier",
        "one name repeated",
        "quorum",
        "stages",
    ],
)
def test_run_settings_over_a_limit_are_refused_with_the_limit(
    fields: dict[str, object], expected: str
) -> None:
    problem = run_input_problem(WorkflowInput(user_request="Delete the logs", **fields))
    assert problem is not None and problem.startswith(expected), problem


def test_the_largest_settings_pass() -> None:
    run_input = WorkflowInput(
        user_request=text(MAX_REQUEST_CHARS),
        requester=text(MAX_NAME_CHARS),
        approvers=[text(MAX_NAME_CHARS, f"a{n}") for n in range(MAX_APPROVERS - 1)],
        escalation=EscalationPolicy(after_seconds=60, approvers=[text(MAX_NAME_CHARS, "e")]),
        voting=VotingPolicy(required_approvals=MAX_APPROVERS),
    )
    assert run_input_problem(run_input) is None
    staged = WorkflowInput(user_request="Pay", approval_stages=[f"s{n}" for n in range(MAX_STAGES)])
    assert run_input_problem(staged) is None


# The proposed action and the decision


def test_the_largest_action_passes() -> None:
    assert action_problem(largest_action()) is None


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("action_type", MAX_ACTION_TYPE_CHARS),
        ("description", MAX_DESCRIPTION_CHARS),
        ("reasoning", MAX_REASONING_CHARS),
    ],
)
def test_an_action_field_one_character_over_is_refused(field: str, limit: int) -> None:
    action = largest_action().model_copy(update={field: text(limit + 1)})
    assert action_problem(action) == f"{field} is {over(limit)}"


def test_a_tool_call_at_its_limit_passes_and_one_character_more_is_refused() -> None:
    action = largest_action(COSTLY)
    assert action.tool_call is not None
    assert len(action.tool_call.model_dump_json().encode()) == MAX_TOOL_CALL_BYTES
    assert tool_call_problem(action) is None
    body = action.tool_call.arguments["body"] + "x"
    longer = action.tool_call.model_copy(
        update={"arguments": {**action.tool_call.arguments, "body": body}}
    )
    over_limit = action.model_copy(update={"tool_call": longer})
    reason = f"the tool call is {MAX_TOOL_CALL_BYTES + 1:,} bytes as JSON; the limit is 6,000"
    assert tool_call_problem(over_limit) == reason
    decision = ApprovalDecision(
        request_id="r", approved=True, reviewer="ann", amended_action=over_limit
    )
    assert decision_problem(decision) == f"the amended action: {reason}"


def test_parameters_over_a_limit_are_refused() -> None:
    action = largest_action()
    one_more = {**action.parameters, "extra": "1"}
    assert action_problem(action.model_copy(update={"parameters": one_more})) == (
        f"{MAX_PARAMETERS + 1} parameters; the limit is {MAX_PARAMETERS}"
    )
    long_value = {"sql": text(MAX_PARAMETER_VALUE_CHARS + 1)}
    assert action_problem(action.model_copy(update={"parameters": long_value})) == (
        f"parameter 'sql' is {over(MAX_PARAMETER_VALUE_CHARS)}"
    )
    long_name = {text(MAX_NAME_CHARS + 1): "1"}
    assert action_problem(action.model_copy(update={"parameters": long_name})) == (
        f"a parameter name is {over(MAX_NAME_CHARS)}"
    )


def test_the_largest_decision_passes_and_each_field_over_is_refused() -> None:
    largest = ApprovalDecision(
        request_id=text(MAX_NAME_CHARS),
        approved=True,
        reviewer=text(MAX_NAME_CHARS),
        reviewer_notes=text(MAX_NOTES_CHARS),
        amended_action=largest_action(),
    )
    assert decision_problem(largest) is None
    for field, what, limit in [
        ("request_id", "the request ID", MAX_NAME_CHARS),
        ("reviewer", "the reviewer name", MAX_NAME_CHARS),
        ("reviewer_notes", "the reviewer notes", MAX_NOTES_CHARS),
    ]:
        refused = largest.model_copy(update={field: text(limit + 1)})
        assert decision_problem(refused) == f"{what} is {over(limit)}"
    amended = largest_action().model_copy(update={"description": text(MAX_DESCRIPTION_CHARS + 1)})
    assert decision_problem(largest.model_copy(update={"amended_action": amended})) == (
        f"the amended action: description is {over(MAX_DESCRIPTION_CHARS)}"
    )


def test_a_refusal_never_repeats_the_text_at_fault() -> None:
    """A refusal is recorded and, for the update, returned: it must stay small."""
    huge = ApprovalDecision(request_id="r", approved=True, reviewer_notes="secret " * 100_000)
    problem = decision_problem(huge)
    assert problem is not None and "secret" not in problem and len(problem) < 100


def test_votes_are_counted_up_to_the_limit() -> None:
    assert votes_problem(MAX_VOTES - 1) is None
    assert votes_problem(MAX_VOTES) == (
        f"this request already counts {MAX_VOTES} votes, the most one request takes"
    )


# The model's answer


def test_a_model_answer_over_a_limit_is_malformed() -> None:
    # The largest e-mail the tool takes (its own limit, 5,000 characters, is the tighter).
    email = largest_tool_call()
    email.arguments["body"] = text(5_000)
    largest = largest_action().model_copy(update={"tool_call": email})
    at_limit = largest.model_dump_json()
    assert parse_proposed_action(at_limit) == largest
    too_long_description = json.loads(at_limit) | {"description": text(MAX_DESCRIPTION_CHARS + 1)}
    with pytest.raises(
        MalformedProposalError, match=f"description is {over(MAX_DESCRIPTION_CHARS)}"
    ):
        parse_proposed_action(json.dumps(too_long_description))
    call = largest_tool_call().model_dump()
    call["arguments"]["body"] += "x"
    with pytest.raises(MalformedProposalError, match="the tool call is 6,001 bytes as JSON"):
        parse_proposed_action(json.dumps(json.loads(at_limit) | {"tool_call": call}))
    with pytest.raises(
        MalformedProposalError, match=f"the answer is {over(MAX_MODEL_ANSWER_CHARS)}"
    ):
        parse_proposed_action(" " * (MAX_MODEL_ANSWER_CHARS + 1))


def test_the_offline_analyser_proposes_within_the_limits_for_the_longest_request() -> None:
    action = propose_offline("Delete all test data " + text(MAX_REQUEST_CHARS - 21))
    assert action_problem(action) is None
    assert action.description.endswith(f"[cut: {MAX_REQUEST_CHARS + 23:,} characters]")


# The audit trail


def event(name: str, detail: str) -> AuditEvent:
    return AuditEvent(at=NOW, event=name, detail=detail)


def test_refusals_past_the_itemised_number_are_counted_in_one_entry_kept_last() -> None:
    trail: list[AuditEvent] = []
    bounds = AuditBounds()
    bounds.append(trail, event("action_proposed", "delete: the logs"))
    for n in range(3_000):
        bounds.append(trail, event("decision_refused", f"from r{n}: not an approver"))
        if n == 1_000:
            bounds.append(trail, event("decision_approved", "by ann: ok"))
    names = [entry.event for entry in trail]
    assert names.count("decision_refused") == MAX_ITEMISED_REFUSALS
    assert names.count(NOT_ITEMISED) == 1 and names[-1] == NOT_ITEMISED
    assert "decision_approved" in names  # the story is never crowded out by refusals
    assert trail[-1].detail.startswith(f"{3_000 - MAX_ITEMISED_REFUSALS:,} more refused decisions")
    assert "Latest: decision_refused: from r2999: not an approver" in trail[-1].detail


def test_the_story_is_itemised_within_its_budget_then_counted() -> None:
    trail: list[AuditEvent] = []
    bounds = AuditBounds()
    for n in range(100):
        bounds.append(trail, event("action_amended", f"{n}: " + text(MAX_AUDIT_DETAIL_CHARS)))
    itemised = trail[:-1]
    assert sum(len(e.event) + len(e.detail) for e in itemised) <= AUDIT_STORY_MAX_CHARS
    assert trail[-1].event == NOT_ITEMISED
    assert f"{100 - len(itemised)} more events (the trail is full)" in trail[-1].detail
    assert "Latest: action_amended: 99: xxx" in trail[-1].detail
    bounds.append(trail, event("executed", "Simulated delete"))  # a short one still fits
    assert [e.event for e in trail[-2:]] == [NOT_ITEMISED, "executed"]


def test_details_are_cut_saying_how_long_they_were() -> None:
    trail: list[AuditEvent] = []
    bounds = AuditBounds()
    bounds.append(trail, event("analysis_failed", text(1_000_000)))
    bounds.append(trail, event("decision_refused", text(1_000_000)))
    assert len(trail[0].detail) == MAX_AUDIT_DETAIL_CHARS
    assert len(trail[1].detail) == MAX_REFUSAL_DETAIL_CHARS
    assert trail[1].detail.endswith("[cut: 1,000,000 characters]")


# The arithmetic: the largest status the limits allow


def largest_answer(fill: str) -> ToolOutcome:
    """A look-up's answer at its bounds (models/tools.py): every row, column and cell full,
    column names as long as the schema's longest."""
    row = {
        text(16, f"c{n}"): text(MAX_RESULT_CELL_CHARS, fill=fill) for n in range(MAX_RESULT_COLUMNS)
    }
    preview = EffectPreview(tool="find_records", summary="", affected=0, fingerprint="0" * 64)
    return ToolOutcome(
        idempotency_key="k",
        tool="find_records",
        status=ToolStatus.EXECUTED,
        summary="",
        preview=preview,
        rows=[row] * MAX_RESULT_ROWS,
    )


def largest_status(fill: str) -> WorkflowStatus:
    """What the status query answers for the largest run the limits allow, every text at
    its limit in ``fill``: the request, an amended action at its limit in a vote, the
    decision and the result, every vote with the longest notes, escalation, every stage,
    and a trail full of refusals and of events at their longest detail. IDs are at
    Temporal's own limit."""
    action = largest_action(fill)
    votes = [
        ApprovalDecision(
            request_id=str(n) * 36,
            approved=True,
            reviewer=text(MAX_NAME_CHARS, str(n), fill),
            reviewer_notes=text(MAX_NOTES_CHARS, fill=fill),
            decided_at=NOW,
            amended_action=action if n == 0 else None,  # an amendment resets earlier votes
        )
        for n in range(MAX_VOTES)
    ]
    trail: list[AuditEvent] = []
    bounds = AuditBounds()
    for _ in range(MAX_ITEMISED_REFUSALS + 5):
        bounds.append(trail, event("decision_refused", text(10_000, fill=fill)))
    while bounds.others_counted < 5:
        bounds.append(trail, event("action_amended", text(10_000, fill=fill)))
    workflow_id = text(TEMPORAL_MAX_ID_CHARS, fill=fill)
    request = ApprovalRequest(
        workflow_id=workflow_id,
        request_id="0" * 36,
        user_request=text(MAX_REQUEST_CHARS, fill=fill),
        proposed_action=action,
        risk_reasons=["a risk policy reason, forty characters.."] * 9,
        requested_at=NOW,
        deadline=NOW,
        approvers=[vote.reviewer for vote in votes],
        escalated=True,
        stage=text(40, fill=fill),
    )
    stages = [
        StageOutcome(
            stage=text(40, str(n), fill),
            approved=True,
            decided_at=NOW,
            notice_failures=[text(NOTICE_FAILURE_CHARS, fill=fill)] * 2,
        )
        for n in range(MAX_STAGES)
    ]
    result = WorkflowResult(
        outcome=Outcome.APPROVED,
        message=text(
            MAX_NAME_CHARS + MAX_DESCRIPTION_CHARS + MAX_ACTION_TYPE_CHARS + 50, fill=fill
        ),
        proposed_action=action,
        risk=RiskAssessment(requires_approval=True, reasons=request.risk_reasons),
        request_id=request.request_id,
        decision=votes[0],
        votes=votes,
        stages=stages,
        execution=ExecutionResult(
            idempotency_key=f"{workflow_id}/{request.request_id}",
            summary=text(MAX_ACTION_TYPE_CHARS + MAX_DESCRIPTION_CHARS + 20, fill=fill),
            tool_outcome=largest_answer(fill),
        ),
        audit_trail=trail,
    )
    return WorkflowStatus(
        state=WorkflowState.COMPLETED,
        approval_request=request,
        decision=votes[0],
        votes=votes,
        required_approvals=MAX_APPROVERS,
        current_stage=StageProgress(
            stage=text(40, fill=fill), child_workflow_id=workflow_id, position=1, of=MAX_STAGES
        ),
        result=result,
        audit_trail=trail,
    )


def test_the_largest_status_stays_under_half_the_payload_limit(
    record_property: Callable[[str, object], None],
) -> None:
    """The status answer holds everything the run holds (the result inside it, the votes and
    trail twice): if it fits, every other payload of the run does."""
    worst = len(largest_status(COSTLY).model_dump_json().encode())
    plain = len(largest_status("x").model_dump_json().encode())
    record_property(
        "measured",
        f"largest status: {worst:,} bytes with every character a control character "
        f"(6 bytes in JSON), {plain:,} bytes in plain text; Temporal's limit is "
        f"{PAYLOAD_LIMIT_BYTES:,}",
    )
    assert worst < PAYLOAD_LIMIT_BYTES / 2
