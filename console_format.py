"""How results and status read in a terminal. Plain functions, shared by every script."""

from models.models import AuditEvent, WorkflowResult, WorkflowStatus


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


def format_status(workflow_id: str, status: WorkflowStatus) -> str:
    lines = [f"Workflow {workflow_id}: {status.state.value}"]
    request = status.approval_request
    if request is not None:
        action = request.proposed_action
        lines += [
            f"Request ID: {request.request_id}",
            f"Action:     {action.action_type}: {action.description}",
            f"Risk:       {'; '.join(request.risk_reasons)}",
            f"Deadline:   {request.deadline.isoformat(timespec='seconds')}",
        ]
    if status.decision is not None:
        verdict = "approved" if status.decision.approved else "rejected"
        lines.append(f"Decision:   {verdict} by {status.decision.reviewer}")
    if status.result is not None:
        lines.append(f"Result:     {status.result.outcome.value} - {status.result.message}")
    lines.append(format_audit_trail(status.audit_trail))
    return "\n".join(lines)
