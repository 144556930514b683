"""The pydantic models are the contract at every Temporal boundary; these pin that contract."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from models.models import (
    DEFAULT_APPROVAL_TIMEOUT_SECONDS,
    MAX_WAIT_SECONDS,
    UNKNOWN_REVIEWER,
    ApprovalDecision,
    AuditEvent,
    EscalationPolicy,
    ExecutionResult,
    Outcome,
    ProposedAction,
    RiskAssessment,
    VotingPolicy,
    WorkflowInput,
    WorkflowResult,
)
from models.tools import ToolCall
from models.validation import summarise

ACTION = ProposedAction(
    action_type="delete_records",
    description="Delete the test rows from the production database",
    reasoning="The user asked for it",
    risky_action=True,
    parameters={"table": "test_data"},
)
TEN_ROWS = ToolCall(tool="delete_records", arguments={"table": "test_data", "limit": 10})


def test_workflow_input_defaults_to_a_five_minute_timeout_and_no_forced_approval() -> None:
    """A plain request needs only its text; the defaults are what the README promises."""
    run_input = WorkflowInput(user_request="Summarise the report")

    assert DEFAULT_APPROVAL_TIMEOUT_SECONDS == 300
    assert run_input.approval_timeout_seconds == 300
    assert run_input.require_approval is False
    assert run_input.requester is None
    assert run_input.approvers == []


def test_workflow_input_refuses_an_empty_request() -> None:
    """An empty request would make the LLM invent something to do."""
    with pytest.raises(ValidationError, match="user_request"):
        WorkflowInput(user_request="")


@pytest.mark.parametrize("timeout", [0, -1, -300])
def test_workflow_input_refuses_a_non_positive_timeout(timeout: int) -> None:
    """A zero or negative timeout would time a request out before anyone could see it."""
    with pytest.raises(ValidationError, match="approval_timeout_seconds"):
        WorkflowInput(user_request="Delete prod", approval_timeout_seconds=timeout)


@pytest.mark.parametrize("timeout", [MAX_WAIT_SECONDS + 1, 999_999_999_999])
def test_workflow_input_refuses_a_timeout_beyond_a_year(timeout: int) -> None:
    """The deadline is computed in the workflow; far enough out it overflows and every
    workflow task of the run fails. A year is longer than any approval should wait."""
    with pytest.raises(ValidationError) as refused:
        WorkflowInput(user_request="Delete prod", approval_timeout_seconds=timeout)
    assert summarise(refused.value) == (
        "approval_timeout_seconds: must be at most 31536000 seconds (365 days)"
    )


def test_workflow_input_accepts_a_timeout_of_exactly_a_year() -> None:
    run_input = WorkflowInput(user_request="Delete prod", approval_timeout_seconds=MAX_WAIT_SECONDS)
    assert run_input.approval_timeout_seconds == MAX_WAIT_SECONDS == 365 * 24 * 60 * 60


def test_escalation_refuses_a_wait_beyond_a_year() -> None:
    with pytest.raises(ValidationError) as refused:
        WorkflowInput.model_validate(
            {
                "user_request": "Delete prod",
                "escalation": {"after_seconds": 999_999_999_999, "approvers": ["boss"]},
            }
        )
    assert summarise(refused.value) == (
        "escalation.after_seconds: must be at most 31536000 seconds (365 days)"
    )


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"approvers": ["alice"]}, "approvers"),
        ({"voting": VotingPolicy(rejection_vetoes=False)}, "voting"),
        (
            {"escalation": EscalationPolicy(after_seconds=60, approvers=["boss"])},
            "escalation",
        ),
        (
            {
                "approvers": ["alice", "bob"],
                "voting": VotingPolicy(required_approvals=2),
                "escalation": EscalationPolicy(after_seconds=60, approvers=["boss"]),
            },
            "approvers, voting or escalation",
        ),
    ],
    ids=["approvers", "voting", "escalation", "all three"],
)
def test_explicit_stages_refuse_approvers_voting_and_escalation(
    fields: dict[str, object], named: str
) -> None:
    """Each stage is decided by its own approve signal: these would be silently ignored."""
    with pytest.raises(ValidationError) as refused:
        WorkflowInput(user_request="Pay the vendor", approval_stages=["manager"], **fields)
    assert summarise(refused.value) == (
        f"approval_stages cannot be combined with {named}: "
        "each stage is decided by its own approve signal"
    )


def test_proposed_action_refuses_unknown_fields() -> None:
    """The LLM is untrusted input: a field we do not know is a sign it answered something else."""
    with pytest.raises(ValidationError, match="extra"):
        ProposedAction.model_validate({**ACTION.model_dump(), "run_as_root": "yes"})


def test_approval_decision_without_decided_at_is_valid() -> None:
    """The Temporal CLI sends decisions without a time; the workflow stamps them itself."""
    decision = ApprovalDecision.model_validate_json('{"request_id": "req-1", "approved": true}')

    assert decision.decided_at is None
    assert decision.reviewer == UNKNOWN_REVIEWER
    assert decision.reviewer_notes == ""
    assert decision.amended_action is None


def test_approval_decision_parses_a_given_decided_at() -> None:
    """When the sender does say when it decided, that time is kept (timezone included)."""
    decision = ApprovalDecision.model_validate_json(
        '{"request_id": "req-1", "approved": false, "decided_at": "2024-05-01T12:00:00Z"}'
    )

    assert decision.decided_at == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_approval_decision_refuses_an_empty_request_id() -> None:
    """A decision must say which request it answers."""
    with pytest.raises(ValidationError, match="request_id"):
        ApprovalDecision(request_id="", approved=True)


def _full_result() -> WorkflowResult:
    at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    return WorkflowResult(
        outcome=Outcome.APPROVED,
        message="Approved by bob; executed: Simulated delete_records",
        proposed_action=ACTION,
        risk=RiskAssessment(requires_approval=True, reasons=["targets production"]),
        request_id="req-1",
        decision=ApprovalDecision(
            request_id="req-1",
            approved=True,
            reviewer="bob",
            reviewer_notes="ok",
            decided_at=at + timedelta(seconds=30),
            amended_action=ACTION.model_copy(update={"tool_call": TEN_ROWS}),
        ),
        execution=ExecutionResult(idempotency_key="wf/req-1", summary="Simulated delete_records"),
        audit_trail=[
            AuditEvent(at=at, event="action_proposed", detail="delete_records: ..."),
            AuditEvent(at=at + timedelta(seconds=30), event="decision_approved", detail="by bob"),
        ],
    )


def test_workflow_result_survives_the_pydantic_data_converter_round_trip() -> None:
    """Whatever the workflow returns must reach the starter unchanged, nested models included."""
    converter = pydantic_data_converter.payload_converter
    result = _full_result()

    payloads = converter.to_payloads([result])
    (decoded,) = converter.from_payloads(payloads, [WorkflowResult])

    assert isinstance(decoded, WorkflowResult)
    assert decoded == result
    assert decoded.decision is not None and decoded.decision.decided_at is not None
    assert decoded.decision.decided_at.utcoffset() == timedelta(0)


def test_workflow_result_payload_is_plain_json_with_enum_values() -> None:
    """Other SDKs and the Temporal UI read the payload: it must be JSON with readable values."""
    (payload,) = pydantic_data_converter.payload_converter.to_payloads([_full_result()])

    assert payload.metadata["encoding"] == b"json/plain"
    data = json.loads(payload.data)
    assert data["outcome"] == "approved"
    assert data["decision"]["amended_action"]["tool_call"] == TEN_ROWS.model_dump()
    assert [event["event"] for event in data["audit_trail"]] == [
        "action_proposed",
        "decision_approved",
    ]


def test_summarise_names_each_field_and_states_model_rules_plainly() -> None:
    """Errors reach people as one line: field problems by field, a model rule on its own."""
    with pytest.raises(ValidationError) as field_problem:
        ApprovalDecision.model_validate({"request_id": "", "approved": "maybe"})
    with pytest.raises(ValidationError) as model_rule:
        WorkflowInput(
            user_request="x", approvers=["a", "b"], voting=VotingPolicy(required_approvals=3)
        )

    assert summarise(field_problem.value).startswith("request_id: ")
    assert "; approved: " in summarise(field_problem.value)
    assert summarise(model_rule.value) == "3 approvals required but only 2 approvers named"
