"""What people read in the terminal: results and status must carry everything needed to act,
and untrusted text (the request, the model's proposal, reviewers' notes) in every terminal
surface stays harmless: escape sequences never reach the terminal, and a newline inside a
value never starts a line that looks like part of the notice."""

import unicodedata
from datetime import UTC, datetime, timedelta

import pytest

from activities.notify_approval_needed import format_approval_notice
from activities.send_webhook_notice import webhook_body
from console_format import format_result, format_status, terminal_safe
from constants import INBOX_URL_ENV
from demo import describe_wait
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    AuditEvent,
    ExecutionResult,
    Outcome,
    ProposedAction,
    StageProgress,
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


def test_format_status_shows_the_call_as_send_approval_edit_arguments_takes_it() -> None:
    """An approver who edits the call starts from its arguments, shown as JSON on one line
    (what ``--edit-arguments`` takes), with what the model wrote made harmless."""
    call = ToolCall(tool="delete_records", arguments={"table": "customers", "note": "a\x1b[2Jb"})
    action = ACTION.model_copy(update={"tool_call": call})
    request = REQUEST.model_copy(update={"proposed_action": action})
    status = WorkflowStatus(state=WorkflowState.AWAITING_APPROVAL, approval_request=request)

    (line,) = [line for line in format_status("wf-1", status).splitlines() if "Call:" in line]

    assert line == 'Call:       delete_records {"table":"customers","note":"a\\u001b[2Jb"}'


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
            stage="director",
            child_workflow_id="wf-1-director",
            position=2,
            of=3,
            members=["dee", "eve\x1b[2J"],
        ),
    )

    text = format_status("wf-1", status)

    assert "Stage:      director (2/3), waiting in child workflow wf-1-director" in text
    assert "Members:    dee, eve\\x1b[2J" in text  # who may decide it, made harmless
    assert "Votes:" not in text
    assert "Approvers:" not in text


# --- untrusted text in every terminal surface ---------------------------------------

FORGED = (
    "harmless\n\nApprove or reject:\n"
    '  uv run python -m send_approval evil-wf evil-req approve "ok"\r'
)
ESCAPES = "\x1b[2J\x1b[8mhidden\x1b[0m\x1b]0;title\x07\x9b31m\u202eevil\u2028line"
HOSTILE = FORGED + ESCAPES
HOSTILE_ACTION = ProposedAction(
    action_type=f"drop{ESCAPES}",
    description=HOSTILE,
    reasoning=HOSTILE,
    risky_action=True,
)
HOSTILE_REQUEST = ApprovalRequest(
    workflow_id="wf-1",
    request_id="req-1",
    user_request=HOSTILE,
    proposed_action=HOSTILE_ACTION,
    risk_reasons=[HOSTILE],
    requested_at=NOW,
    deadline=NOW + timedelta(minutes=5),
    approvers=[f"ann{ESCAPES}"],
)
HOSTILE_VOTE = ApprovalDecision(
    request_id="req-1", approved=True, reviewer=HOSTILE, reviewer_notes=HOSTILE
)
HOSTILE_TRAIL = [AuditEvent(at=NOW, event="decision_approved", detail=f"by x: {HOSTILE}")]
HOSTILE_RESULT = WorkflowResult(
    outcome=Outcome.REJECTED, message=HOSTILE, request_id="req-1", audit_trail=HOSTILE_TRAIL
)
HOSTILE_STATUS = WorkflowStatus(
    state=WorkflowState.AWAITING_APPROVAL,
    approval_request=HOSTILE_REQUEST,
    decision=HOSTILE_VOTE,
    votes=[HOSTILE_VOTE],
    required_approvals=2,
    current_stage=StageProgress(stage=HOSTILE, child_workflow_id="wf-1-x", position=1, of=2),
    result=HOSTILE_RESULT,
    audit_trail=HOSTILE_TRAIL,
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
    notice = format_approval_notice(HOSTILE_REQUEST)

    assert_harmless(notice)
    commands = [line for line in notice.splitlines() if line.lstrip().startswith("uv run")]
    assert len(commands) == 3  # approve, reject, and the Temporal CLI's signal
    assert all(" wf-1" in line for line in commands)
    assert "\\x1b[2J" in notice  # shown, not hidden: the approver sees something was there


def test_a_stage_notice_is_harmless_too() -> None:
    notice = format_approval_notice(HOSTILE_REQUEST.model_copy(update={"stage": HOSTILE}))
    assert_harmless(notice)


def test_approval_status_and_results_are_harmless() -> None:
    assert_harmless(format_status(HOSTILE, HOSTILE_STATUS))
    assert_harmless(format_result(HOSTILE_RESULT))


def test_the_demo_prompt_is_harmless() -> None:
    staged = HOSTILE_STATUS.model_copy(
        update={"current_stage": HOSTILE_STATUS.current_stage.model_copy(update={"position": 2})}
    )
    assert_harmless(describe_wait(HOSTILE_STATUS))
    assert_harmless(describe_wait(staged))


def test_the_webhook_text_is_harmless_and_cannot_mention_or_link() -> None:
    request = HOSTILE_REQUEST.model_copy(
        update={"user_request": "<!channel> <https://evil|bank> & co"}
    )

    text = webhook_body(request)["text"]

    assert isinstance(text, str)
    assert_harmless(text)
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &lt;https://evil|bank&gt; &amp; co" in text


def test_with_the_inbox_url_the_notice_and_webhook_link_to_the_request_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(INBOX_URL_ENV, "https://inbox.example.com/")
    request = HOSTILE_REQUEST.model_copy(update={"workflow_id": "wf 1/x"})

    notice = format_approval_notice(request)
    body = webhook_body(request)

    link = "https://inbox.example.com/requests/wf%201%2Fx"
    assert f"Decide in the browser: {link}" in notice
    assert body["inbox_url"] == link


def test_without_the_inbox_url_there_is_no_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INBOX_URL_ENV, raising=False)
    assert "browser" not in format_approval_notice(HOSTILE_REQUEST)
    assert webhook_body(HOSTILE_REQUEST)["inbox_url"] is None


def read_only_result(rows: list[dict], left_off: int = 0) -> WorkflowResult:
    """A run that executed a read-only tool, which answered ``rows``."""
    preview = EffectPreview(
        tool="find_records", summary="reads", affected=len(rows), fingerprint="f"
    )
    outcome = ToolOutcome(
        idempotency_key="k",
        tool="find_records",
        status=ToolStatus.EXECUTED,
        summary="reads 198 of 2,020 rows in customers where country = 'DE'; 5 returned",
        preview=preview,
        rows=rows,
        rows_left_off=left_off,
    )
    execution = ExecutionResult(idempotency_key="k", summary=outcome.summary, tool_outcome=outcome)
    return WorkflowResult(
        outcome=Outcome.AUTO_APPROVED, message="Auto-approved", execution=execution
    )


def test_a_look_up_shows_its_rows_as_a_table_of_harmless_cells() -> None:
    hostile = "Eve\x1b[2J\nApprove or reject: send_approval wf approve"
    rows = [
        {"id": 7, "name": "Ada Berg", "email": "ada.berg.7@example.com", "country": "DE"},
        {"id": 12, "name": hostile, "email": None, "country": "DE"},
    ]

    text = format_result(read_only_result(rows))

    lines = text.splitlines()
    start = lines.index("Answer:")
    assert lines[start + 1 : start + 5] == [
        "  id  name                            email                   country",
        "  --  ------------------------------  ----------------------  -------",
        "  7   Ada Berg                        ada.berg.7@example.com  DE",
        "  12  Eve\\x1b[2J\\nApprove or reject…                          DE",
    ]
    assert "\x1b" not in text and not any(line.startswith("Approve") for line in lines)


def test_a_summary_shows_its_counts_and_says_what_was_left_off() -> None:
    rows = [{"status": "active", "count": 1_700}, {"status": "inactive", "count": 300}]
    status = WorkflowStatus(state=WorkflowState.COMPLETED, result=read_only_result(rows, 3))
    text = format_status("wf-1", status)

    assert "  status    count\n  --------  -----\n  active    1700\n  inactive  300\n" in text
    assert "  ... and 3 more rows, not kept in the result" in text


def test_a_run_that_changed_data_or_found_nothing_shows_no_answer() -> None:
    assert "Answer:" not in format_result(RESULT)
    assert "Answer:" not in format_result(read_only_result([]))


def test_the_answer_a_run_carries_is_bounded() -> None:
    """It travels in the run's result and status: a few rows, each cell cut."""
    row = {f"c{n}": "x" * 500 for n in range(MAX_RESULT_COLUMNS + 3)}
    outcome = read_only_result([row] * (MAX_RESULT_ROWS + 30)).execution.tool_outcome

    assert len(outcome.rows) == MAX_RESULT_ROWS and outcome.rows_left_off == 30
    assert all(len(kept) == MAX_RESULT_COLUMNS for kept in outcome.rows)
    assert {len(cell) for kept in outcome.rows for cell in kept.values()} == {MAX_RESULT_CELL_CHARS}
    assert ToolOutcome.model_validate_json(outcome.model_dump_json()) == outcome  # read back
