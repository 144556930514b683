"""The notify activity: tell a human that a decision is needed, and exactly how to give it.

Here the notice is printed in the worker's terminal, the one place this sample prints
instead of logging: it is a message for a person. A real deployment would send e-mail or
chat messages from this same activity.
"""

import json

from temporalio import activity

from constants import APPROVAL_DECISION_SIGNAL
from models.models import ApprovalRequest


def format_approval_notice(request: ApprovalRequest) -> str:
    """The notice, with commands an approver can paste as they are."""
    action = request.proposed_action
    approve_json = json.dumps(
        {"request_id": request.request_id, "approved": True, "reviewer_notes": "Looks good"}
    )
    reasons = "\n".join(f"    - {reason}" for reason in request.risk_reasons)
    return f"""
================ APPROVAL REQUIRED ================
Workflow ID: {request.workflow_id}
Request ID: {request.request_id}
Request:     {request.user_request}
Action:      {action.action_type}: {action.description}
Reasoning:   {action.reasoning}
Why a human must decide:
{reasons}
Decide before {request.deadline.isoformat(timespec="seconds")}.

Approve or reject:
  uv run python -m send_approval {request.workflow_id} {request.request_id} approve "notes"
  uv run python -m send_approval {request.workflow_id} {request.request_id} reject "notes"
Or with the Temporal CLI:
  temporal workflow signal --workflow-id {request.workflow_id} \\
    --name {APPROVAL_DECISION_SIGNAL} --input '{approve_json}'
===================================================
"""


@activity.defn
async def notify_approval_needed(request: ApprovalRequest) -> None:
    """Print the approval notice for the person watching the worker."""
    print(format_approval_notice(request), flush=True)
    activity.logger.info("Approval requested: %s", request.request_id)
