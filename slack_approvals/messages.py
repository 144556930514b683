"""What an approval request looks like in Slack, and what its message becomes once decided.

Block Kit, as plain dicts. Everything a requester, the model or a reviewer wrote goes into
``plain_text`` objects, where Slack parses no mentions, links or formatting, and is escaped
as Slack asks (``&``, ``<``, ``>``) besides, as the webhook's text is: a description reading
``<!channel>`` or ``<https://evil|click>`` shows as those characters. The message's own
``text`` (what notifications show) is sent with ``mrkdwn`` off and holds our words and the
action type, escaped. Each text is cut to fit Slack's limits, so a long request still posts.
"""

from pydantic import BaseModel, ValidationError

from console_format import chat_safe, inbox_link, terminal_safe
from constants import STAGE_ID_MARKER
from models.limits import MAX_NOTES_CHARS
from models.models import ApprovalDecision, ApprovalRequest

APPROVE_ACTION = "hitl_approve"
REJECT_ACTION = "hitl_reject"
DECIDE_ACTIONS = (APPROVE_ACTION, REJECT_ACTION)
NOTES_BLOCK = "hitl_notes"
NOTES_INPUT = "hitl_notes_input"
TEXT_LIMIT = 3000  # one text object (Slack's limit)
FIELD_LIMIT = 1000  # one field of the request: keeps the message, and each press, small
HEADER_LIMIT = 150  # a header block (Slack's limit)
ELLIPSIS = "…"


class ButtonValue(BaseModel):
    """What a button carries back: the run to decide, its request, and the stage."""

    workflow_id: str
    request_id: str
    stage: str | None = None

    @classmethod
    def parse(cls, value: str) -> "ButtonValue | None":
        try:
            return cls.model_validate_json(value)
        except ValidationError:
            return None


def slack_text(text: str, limit: int = FIELD_LIMIT) -> str:
    """``text`` as Slack shows it literally, at most ``limit`` characters: control
    characters made visible, ``&<>`` escaped, cut (never inside an entity) with an ellipsis."""
    safe = chat_safe(terminal_safe(text, keep=frozenset("\n")))
    if len(safe) <= limit:
        return safe or "-"
    cut = safe[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # half an entity would show as its letters
    return cut + ELLIPSIS


def plain(text: str, limit: int = FIELD_LIMIT) -> dict[str, object]:
    return {"type": "plain_text", "text": slack_text(text, limit), "emoji": False}


def _section(label: str, text: str, limit: int = FIELD_LIMIT) -> dict[str, object]:
    return {"type": "section", "text": plain(f"{label}\n{text}", limit)}


def button_value(request: ApprovalRequest) -> str:
    """The run is the request's workflow; a stage's notice names the stage's child, whose
    decision goes to the run, bound to the stage (as ``send_approval --stage`` does)."""
    run_id = request.workflow_id.partition(STAGE_ID_MARKER)[0]
    return ButtonValue(
        workflow_id=run_id, request_id=request.request_id, stage=request.stage
    ).model_dump_json()


def _title(request: ApprovalRequest, *, closed: bool = False) -> str:
    if closed:
        title = "Approval request closed"
    elif request.escalated:
        title = "Escalated: approval still required"
    else:
        title = "Approval required"
    return f"{title}, stage {request.stage}" if request.stage else title


def _summary(request: ApprovalRequest) -> list[dict[str, object]]:
    """The request as the approver weighs it: what was asked, the proposal, its effect, why
    a person must decide, who may, and until when."""
    action = request.proposed_action
    blocks = [
        _section("Request:", request.user_request),
        _section("Action:", f"{action.action_type}: {action.description}"),
        _section("Reasoning:", action.reasoning),
    ]
    if request.preview is not None:
        preview = request.preview
        rows = [*preview.details, *(repr(row) for row in preview.sample_rows)]
        blocks.append(_section("Effect:", "\n".join([preview.summary, *rows])))
    reasons = "\n".join(f"- {reason}" for reason in request.risk_reasons) or "-"
    blocks.append(_section("Why a person must decide:", reasons))
    if request.stage is not None:
        blocks.append(_section("Waiting stage:", request.stage, limit=200))
    if request.approvers:
        blocks.append(_section("Who may decide:", ", ".join(request.approvers)))
    deadline = request.deadline.isoformat(timespec="seconds")
    ids = f"Workflow {request.workflow_id}, request {request.request_id}"
    blocks.append({"type": "context", "elements": [plain(f"Decide before {deadline}. {ids}")]})
    return blocks


def request_message(request: ApprovalRequest) -> tuple[str, list[dict[str, object]]]:
    """The approval message: (its notification text, its blocks)."""
    title = _title(request)
    value = button_value(request)
    buttons: list[dict[str, object]] = [
        {
            "type": "button",
            "action_id": APPROVE_ACTION,
            "text": plain("Approve"),
            "style": "primary",
            "value": value,
        },
        {
            "type": "button",
            "action_id": REJECT_ACTION,
            "text": plain("Reject"),
            "style": "danger",
            "value": value,
        },
    ]
    if (link := inbox_link(request.workflow_id.partition(STAGE_ID_MARKER)[0])) is not None:
        buttons.append({"type": "button", "text": plain("Open in the inbox"), "url": link})
    notes = {
        "type": "input",
        "block_id": NOTES_BLOCK,
        "optional": True,
        "label": plain("Notes (optional), sent with your decision"),
        "element": {
            "type": "plain_text_input",
            "action_id": NOTES_INPUT,
            "multiline": True,
            "max_length": MAX_NOTES_CHARS,
        },
    }
    blocks = [
        {"type": "header", "text": plain(title, HEADER_LIMIT)},
        *_summary(request),
        notes,
        {"type": "actions", "block_id": "hitl_decide", "elements": buttons},
    ]
    return slack_text(f"{title}: {request.proposed_action.action_type}", 200), blocks


def outcome_line(
    request: ApprovalRequest, decision: ApprovalDecision | None, cancelled: bool = False
) -> str:
    """Who decided, when, and how; or that nobody decided in time, or that it was cancelled."""
    what = f"Stage {request.stage}" if request.stage else "Request"
    if cancelled:
        return f"{what} was cancelled while it waited: nothing was approved."
    if decision is None:
        deadline = request.deadline.isoformat(timespec="seconds")
        return f"{what} timed out at {deadline}: no decision in time, nothing was approved."
    verdict = "approved" if decision.approved else "rejected"
    when = decision.decided_at.isoformat(timespec="seconds") if decision.decided_at else "-"
    notes = f"\nNotes: {decision.reviewer_notes}" if decision.reviewer_notes else ""
    return f"{what} {verdict} by {decision.reviewer} at {when}.{notes}"


def decided_message(
    request: ApprovalRequest, decision: ApprovalDecision | None, cancelled: bool = False
) -> tuple[str, list[dict[str, object]]]:
    """The message once the request closed: the outcome first, the request below it, and
    no buttons or notes field left to press."""
    outcome = outcome_line(request, decision, cancelled)
    blocks = [
        {"type": "header", "text": plain(_title(request, closed=True), HEADER_LIMIT)},
        {"type": "section", "text": plain(outcome, TEXT_LIMIT)},
        *_summary(request),
    ]
    return slack_text(outcome.partition("\n")[0], 200), blocks
