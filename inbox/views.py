"""What the pages and the API show of a run: plain dicts built from the workflow's models,
so a page and its JSON twin always say the same thing."""

from typing import Any

from inbox.service import Decided, Pending, outcome_name
from models.models import WorkflowStatus


def status_json(workflow_id: str, status: WorkflowStatus) -> dict[str, Any]:
    """The status query's answer, as it returns it, with the workflow ID."""
    return {"workflow_id": workflow_id, **status.model_dump(mode="json")}


def pending_item(pending: Pending) -> dict[str, Any]:
    item: dict[str, Any] = {
        "workflow_id": pending.workflow_id,
        "started": pending.started.isoformat(),
        "request_id": None,
        "user_request": None,
        "proposed_action": None,
        "preview": None,
        "deadline": None,
        "risk_reasons": [],
        "approvers": [],
        "escalated": False,
        "unreadable": pending.unreadable,
    }
    status = pending.status
    if status is None:  # listed as pending, but unreadable here or no worker answered
        return item | {"state": None}
    request = status.approval_request
    stage = status.current_stage
    if request is not None:
        item |= {
            "request_id": request.request_id,
            "user_request": request.user_request,
            "proposed_action": request.proposed_action.model_dump(mode="json"),
            "deadline": request.deadline.isoformat(),
            "risk_reasons": request.risk_reasons,
            "approvers": request.approvers,
            "escalated": request.escalated,
            "preview": request.preview.model_dump(mode="json") if request.preview else None,
        }
    return item | {
        "state": status.state.value,
        "votes": [vote.model_dump(mode="json") for vote in status.votes],
        "required_approvals": status.required_approvals,
        "current_stage": stage.model_dump(mode="json") if stage is not None else None,
    }


UNREADABLE = "payload encrypted, not readable here"

# States and outcomes as a person reads them; the API keeps the values themselves.
IN_WORDS = {
    "analysing": "being analysed",
    "awaiting_approval": "waiting for a decision",
    "decided": "decided",
    "executing": "carrying out the action",
    "completed": "finished",
    "auto_approved": "approved automatically (low risk)",
    "timed_out": "timed out: nobody decided in time",
    "analysis_failed": "not analysed: the analysis failed",
    "execution_failed": "approved, but the action failed",
    "stage_failed": "a stage could not run",
    "input_refused": "refused: the request was over a limit",
}


def in_words(value: str) -> str:
    """A state or outcome in words (``awaiting_approval`` -> waiting for a decision)."""
    return IN_WORDS.get(value, value.replace("_", " "))


def decided_item(decided: Decided) -> dict[str, Any]:
    result = decided.result
    closed = decided.closed.isoformat() if decided.closed is not None else None
    if result is None:  # encrypted with a key this inbox lacks: listed, not hidden
        return {
            "workflow_id": decided.workflow_id,
            "request_id": None,
            "user_request": None,
            "proposed_action": None,
            "deadline": None,
            "outcome": outcome_name(decided.approval_status),
            "message": UNREADABLE,
            "decided_by": None,
            "decided_at": None,
            "closed": closed,
            "readable": False,
            "unreadable": decided.unreadable,
        }
    decision = result.decision
    action = result.proposed_action
    decided_at = decision.decided_at if decision is not None else None
    return {
        "workflow_id": decided.workflow_id,
        "request_id": result.request_id,
        "user_request": decided.user_request,
        "proposed_action": action.model_dump(mode="json") if action is not None else None,
        "deadline": None,  # not kept in the result; the status query has it
        "outcome": result.outcome.value,
        "message": result.message,
        "decided_by": decision.reviewer if decision is not None else None,
        "decided_at": decided_at.isoformat() if decided_at is not None else None,
        "closed": closed,
        "readable": True,
        "unreadable": None,
    }
