"""How results and status read in a terminal. Plain functions, shared by every script."""

from models.models import ApprovalRequest, AuditEvent, WorkflowResult, WorkflowStatus
from tools.models import EffectPreview


def format_audit_trail(events: list[AuditEvent]) -> str:
    lines = ["Audit trail:"]
    lines += [
        f"  {event.at.isoformat(timespec='seconds')}  {event.event}: {event.detail}"
        for event in events
    ]
    return "\n".join(lines)


def format_result(result: WorkflowResult) -> str:
    lines = [f"Result: {result.outcome.value} - {result.message}"]
    if result.request_id is not None:
        lines.append(f"Request ID: {result.request_id}")
    lines.append(format_audit_trail(result.audit_trail))
    return "\n".join(lines)


def format_preview(preview: EffectPreview, width: int = 12) -> list[str]:
    """The effect an approver approves: what changes, then the first rows it touches."""
    indent = " " * width
    lines = [f"{'Effect:':<{width}}{preview.summary}"]
    lines += [f"{indent}{line}" for line in preview.details]
    lines += [f"{indent}{row!r}" for row in preview.sample_rows]
    return lines


def format_status(workflow_id: str, status: WorkflowStatus) -> str:
    lines = [f"Workflow {workflow_id}: {status.state.value}"]
    request = status.approval_request
    if request is not None:
        action = request.proposed_action
        lines += [
            f"Request ID: {request.request_id}",
            f"Action:     {action.action_type}: {action.description}",
            *(format_preview(request.preview) if request.preview is not None else []),
            f"Risk:       {'; '.join(request.risk_reasons)}",
            f"Deadline:   {request.deadline.isoformat(timespec='seconds')}",
        ]
        lines += _who_decides(request, status)
    if status.current_stage is not None:
        stage = status.current_stage
        lines.append(
            f"Stage:      {stage.stage} ({stage.position}/{stage.of}), "
            f"waiting in child workflow {stage.child_workflow_id}"
        )
    if status.decision is not None:
        verdict = "approved" if status.decision.approved else "rejected"
        lines.append(f"Decision:   {verdict} by {status.decision.reviewer}")
    if status.result is not None:
        lines.append(f"Result:     {status.result.outcome.value} - {status.result.message}")
    lines.append(format_audit_trail(status.audit_trail))
    return "\n".join(lines)


def _who_decides(request: ApprovalRequest, status: WorkflowStatus) -> list[str]:
    """Approvers and the vote tally: what an approver checks before voting."""
    lines = []
    if request.approvers:
        tier = " (escalated)" if request.escalated else ""
        lines.append(f"Approvers:  {', '.join(request.approvers)}{tier}")
    if status.required_approvals > 1:
        approvals = sum(vote.approved for vote in status.votes)
        votes = ", ".join(
            f"{vote.reviewer} {'approved' if vote.approved else 'rejected'}"
            for vote in status.votes
        )
        lines.append(
            f"Votes:      {approvals}/{status.required_approvals} approvals"
            + (f" ({votes})" if votes else "")
        )
    return lines
