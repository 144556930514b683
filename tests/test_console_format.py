"""What people read in the terminal: results and status must carry everything needed to act."""

from datetime import UTC, datetime, timedelta

from console_format import format_result, format_status
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    AuditEvent,
    Outcome,
    ProposedAction,
    StageProgress,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(minutes=5)
ACTION = ProposedAction(
    action_type="delete_records",
    description="Delete the test rows from production",
    reasoning="asked for",
    risky_action=True,
)
AUDIT = [
    AuditEvent(at=NOW, event="action_proposed", detail="delete_records: Delete the rows"),
    AuditEvent(at=NOW + timedelta(seconds=1), event="risk_classified", detail="targets production"),
    AuditEvent(at=NOW + timedelta(seconds=42), event="decision_rejected", detail="by bob: no way"),
]
REQUEST = ApprovalRequest(
    workflow_id="wf-1",
    request_id="req-7f3a",
    user_request="Delete test rows from production",
    proposed_action=ACTION,
    risk_reasons=["destructive or irreversible operation", "targets production"],
    requested_at=NOW,
    deadline=DEADLINE,
)
DECISION = ApprovalDecision(request_id="req-7f3a", approved=False, reviewer="bob")
RESULT = WorkflowResult(
    outcome=Outcome.REJECTED,
    message="Rejected by bob: no way. Nothing was executed.",
    proposed_action=ACTION,
    request_id="req-7f3a",
    decision=DECISION,
    audit_trail=AUDIT,
)


def _assert_every_audit_event_shown(text: str) -> None:
    for event in AUDIT:
        assert f"{event.at.isoformat(timespec='seconds')}  {event.event}: {event.detail}" in text


def test_format_result_shows_outcome_message_and_every_audit_event() -> None:
    text = format_result(RESULT)

    assert "rejected" in text
    assert RESULT.message in text
    _assert_every_audit_event_shown(text)


def test_format_result_shows_the_request_id() -> None:
    """The request ID ties the result to the notice and the approver's decision."""
    assert "req-7f3a" in format_result(RESULT)


def test_format_status_while_awaiting_shows_request_id_deadline_and_risk() -> None:
    """An approver needs the request ID to decide, and the deadline to know how long they have."""
    status = WorkflowStatus(
        state=WorkflowState.AWAITING_APPROVAL, approval_request=REQUEST, audit_trail=AUDIT[:2]
    )

    text = format_status("wf-1", status)

    assert "wf-1" in text
    assert "awaiting_approval" in text
    assert "req-7f3a" in text
    assert "2024-05-01T12:05:00+00:00" in text
    assert "delete_records: Delete the test rows from production" in text
    assert "destructive or irreversible operation; targets production" in text
    for event in AUDIT[:2]:
        assert event.detail in text


def test_format_status_when_completed_shows_decision_outcome_message_and_trail() -> None:
    status = WorkflowStatus(
        state=WorkflowState.COMPLETED,
        approval_request=REQUEST,
        decision=DECISION,
        result=RESULT,
        audit_trail=AUDIT,
    )

    text = format_status("wf-1", status)

    assert "completed" in text
    assert "rejected by bob" in text
    assert "req-7f3a" in text
    assert "2024-05-01T12:05:00+00:00" in text
    assert f"rejected - {RESULT.message}" in text
    _assert_every_audit_event_shown(text)


def test_format_status_before_any_request_has_no_request_lines() -> None:
    """While analysing there is no request ID yet; the status must not invent one."""
    text = format_status("wf-1", WorkflowStatus(state=WorkflowState.ANALYSING))

    assert "analysing" in text
    assert "Request ID" not in text
    assert "Audit trail:" in text


def test_format_status_of_a_vote_shows_the_approvers_and_the_tally() -> None:
    """A voter must see who else may decide and how far the quorum is, before voting."""
    request = REQUEST.model_copy(update={"approvers": ["ann", "bob", "cy"], "escalated": True})
    vote = ApprovalDecision(request_id="req-7f3a", approved=True, reviewer="ann")
    status = WorkflowStatus(
        state=WorkflowState.AWAITING_APPROVAL,
        approval_request=request,
        votes=[vote],
        required_approvals=2,
    )

    text = format_status("wf-1", status)

    assert "Approvers:  ann, bob, cy (escalated)" in text
    assert "Votes:      1/2 approvals (ann approved)" in text


def test_format_status_of_a_staged_run_names_the_child_to_signal() -> None:
    """The waiting stage's child workflow is where the decision goes, so it must be shown."""
    status = WorkflowStatus(
        state=WorkflowState.AWAITING_APPROVAL,
        approval_request=REQUEST,
        current_stage=StageProgress(
            stage="director", child_workflow_id="wf-1-director", position=2, of=3
        ),
    )

    text = format_status("wf-1", status)

    assert "Stage:      director (2/3), waiting in child workflow wf-1-director" in text
    assert "Votes:" not in text
    assert "Approvers:" not in text
