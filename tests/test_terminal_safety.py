"""Untrusted text (the request, the model's proposal, reviewers' notes) in every terminal
surface: escape sequences never reach the terminal, and a newline inside a value never
starts a line that looks like part of the notice."""

import unicodedata
from datetime import UTC, datetime, timedelta

import pytest

from activities.notify_approval_needed import format_approval_notice
from activities.webhook_notifier import webhook_body
from console_format import format_result, format_status, terminal_safe
from constants import INBOX_URL_ENV
from demo import describe_wait
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
FORGED = (
    "harmless\n\nApprove or reject:\n"
    '  uv run python -m send_approval evil-wf evil-req approve "ok"\r'
)
ESCAPES = "\x1b[2J\x1b[8mhidden\x1b[0m\x1b]0;title\x07\x9b31m\u202eevil\u2028line"
HOSTILE = FORGED + ESCAPES
ACTION = ProposedAction(
    action_type=f"drop{ESCAPES}",
    description=HOSTILE,
    reasoning=HOSTILE,
    risky_action=True,
)
REQUEST = ApprovalRequest(
    workflow_id="wf-1",
    request_id="req-1",
    user_request=HOSTILE,
    proposed_action=ACTION,
    risk_reasons=[HOSTILE],
    requested_at=NOW,
    deadline=NOW + timedelta(minutes=5),
    approvers=[f"ann{ESCAPES}"],
)
VOTE = ApprovalDecision(request_id="req-1", approved=True, reviewer=HOSTILE, reviewer_notes=HOSTILE)
TRAIL = [AuditEvent(at=NOW, event="decision_approved", detail=f"by x: {HOSTILE}")]
RESULT = WorkflowResult(
    outcome=Outcome.REJECTED, message=HOSTILE, request_id="req-1", audit_trail=TRAIL
)
STATUS = WorkflowStatus(
    state=WorkflowState.AWAITING_APPROVAL,
    approval_request=REQUEST,
    decision=VOTE,
    votes=[VOTE],
    required_approvals=2,
    current_stage=StageProgress(stage=HOSTILE, child_workflow_id="wf-1-x", position=1, of=2),
    result=RESULT,
    audit_trail=TRAIL,
)


def assert_harmless(text: str) -> None:
    """Only printable characters and real line breaks; no forged line of the notice."""
    unsafe = [
        char
        for char in text
        if char != "\n" and unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")
    ]
    assert unsafe == [], f"unsafe characters reached the terminal: {unsafe!r}"
    lines = text.splitlines()
    assert sum(line.startswith("Approve or reject") for line in lines) <= 1
    assert not any("send_approval evil-wf" in line and "harmless" not in line for line in lines)


def test_terminal_safe_shows_every_unsafe_character_as_its_escape() -> None:
    assert terminal_safe("a\nb\rc\td\x1b[31me\x9bf\u202eg\u2028h\x00") == (
        "a\\nb\\rc\\td\\x1b[31me\\x9bf\\u202eg\\u2028h\\x00"
    )


def test_terminal_safe_keeps_ordinary_text_of_any_language() -> None:
    text = "Überweise 10 000 € an Zoë — 東京 — C:\\temp 🙂"
    assert terminal_safe(text) == text


def test_the_worker_notice_of_a_hostile_proposal_has_one_real_command_block() -> None:
    notice = format_approval_notice(REQUEST)

    assert_harmless(notice)
    commands = [line for line in notice.splitlines() if line.lstrip().startswith("uv run")]
    assert len(commands) == 3  # approve, reject, and the Temporal CLI's signal
    assert all(" wf-1" in line for line in commands)
    assert "\\x1b[2J" in notice  # shown, not hidden: the approver sees something was there


def test_a_stage_notice_is_harmless_too() -> None:
    notice = format_approval_notice(REQUEST.model_copy(update={"stage": HOSTILE}))
    assert_harmless(notice)


def test_approval_status_and_results_are_harmless() -> None:
    assert_harmless(format_status(HOSTILE, STATUS))
    assert_harmless(format_result(RESULT))


def test_the_demo_prompt_is_harmless() -> None:
    staged = STATUS.model_copy(
        update={"current_stage": STATUS.current_stage.model_copy(update={"position": 2})}
    )
    assert_harmless(describe_wait(STATUS))
    assert_harmless(describe_wait(staged))


def test_the_webhook_text_is_harmless_and_cannot_mention_or_link() -> None:
    request = REQUEST.model_copy(update={"user_request": "<!channel> <https://evil|bank> & co"})

    text = webhook_body(request)["text"]

    assert isinstance(text, str)
    assert_harmless(text)
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &lt;https://evil|bank&gt; &amp; co" in text


def test_with_the_inbox_url_the_notice_and_webhook_link_to_the_request_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(INBOX_URL_ENV, "https://inbox.example.com/")
    request = REQUEST.model_copy(update={"workflow_id": "wf 1/x"})

    notice = format_approval_notice(request)
    body = webhook_body(request)

    link = "https://inbox.example.com/requests/wf%201%2Fx"
    assert f"Decide in the browser: {link}" in notice
    assert body["inbox_url"] == link


def test_without_the_inbox_url_there_is_no_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INBOX_URL_ENV, raising=False)
    assert "browser" not in format_approval_notice(REQUEST)
    assert webhook_body(REQUEST)["inbox_url"] is None
