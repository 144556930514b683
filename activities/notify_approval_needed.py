"""The notify activity: tell a human that a decision is needed, and exactly how to give it.

Here the notice is printed in the worker's terminal, the one place this sample prints
instead of logging: it is a message for a person. ``webhook_notifier.py`` sends the same
notice to a chat or ticketing webhook.
"""

import json
import shlex

from temporalio import activity

from console_format import format_preview
from constants import APPROVAL_DECISION_SIGNAL, APPROVE_SIGNAL
from models.models import ApprovalRequest


def _decision_commands(request: ApprovalRequest) -> list[str]:
    """Commands an approver can paste as they are: the Temporal CLI lives in the project's
    virtualenv, hence ``uv run``, and every ID is shell-quoted (IDs are user-chosen)."""
    workflow_id, request_id = shlex.quote(request.workflow_id), shlex.quote(request.request_id)
    if request.stage is not None:
        signal = (
            f"uv run temporal workflow signal --workflow-id {workflow_id} --name {APPROVE_SIGNAL}"
        )
        return [
            f"Approve or reject stage {request.stage!r}:",
            f"  {signal} --input true",
            f"  {signal} --input false",
        ]
    approve_json = json.dumps(
        {"request_id": request.request_id, "approved": True, "reviewer_notes": "Looks good"}
    )
    return [
        "Approve or reject:",
        f'  uv run python -m send_approval {workflow_id} {request_id} approve "notes"',
        f'  uv run python -m send_approval {workflow_id} {request_id} reject "notes"',
        "Or with the Temporal CLI:",
        f"  uv run temporal workflow signal --workflow-id {workflow_id} \\",
        f"    --name {APPROVAL_DECISION_SIGNAL} --input {shlex.quote(approve_json)}",
    ]


def format_approval_notice(request: ApprovalRequest) -> str:
    action = request.proposed_action
    title = "ESCALATED: APPROVAL STILL REQUIRED" if request.escalated else "APPROVAL REQUIRED"
    lines = [
        f"================ {title} ================",
        f"Workflow ID: {request.workflow_id}",
        f"Request ID: {request.request_id}",
        f"Request:     {request.user_request}",
        f"Action:      {action.action_type}: {action.description}",
        f"Reasoning:   {action.reasoning}",
        *(format_preview(request.preview, width=13) if request.preview is not None else []),
        "Why a human must decide:",
        *(f"    - {reason}" for reason in request.risk_reasons),
    ]
    if request.approvers:
        lines.append(f"Who may decide: {', '.join(request.approvers)}")
    lines.append(f"Decide before {request.deadline.isoformat(timespec='seconds')}.")
    lines += ["", *_decision_commands(request), "=" * 50]
    return "\n" + "\n".join(lines) + "\n"


@activity.defn
async def notify_approval_needed(request: ApprovalRequest) -> None:
    """Print the approval notice for the person watching the worker."""
    print(format_approval_notice(request), flush=True)
    activity.logger.info("Approval requested: %s", request.request_id)
