"""How results and status read in a terminal. Plain functions, shared by every script.

Everything a requester, the model or a reviewer wrote is untrusted: it goes through
``terminal_safe`` before it reaches a terminal, so it can neither send escape sequences
(colours, cursor moves, hidden text, a rewritten title) nor start a line of its own that
would look like part of the notice (a forged "Approve or reject:" command).
"""

import os
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from constants import INBOX_URL_ENV
from models.models import ApprovalRequest, AuditEvent, WorkflowResult, WorkflowStatus
from models.tools import EffectPreview, ToolStatus

# A read-only answer as a table: cells cut to fit a terminal line (the rows and columns are
# bounded by the result itself: models/tools.py).
MAX_ANSWER_CELL_CHARS = 30
# The escapes written for the three control characters people know by name.
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Control characters (C0, DEL, C1: ESC and CSI start every escape sequence), invisible
# format characters (bidi overrides, zero-width characters: they reorder or hide text),
# line and paragraph separators, and lone surrogates.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def terminal_safe(text: object, keep: frozenset[str] = frozenset()) -> str:
    """``text`` as one line of characters that only print themselves (but for ``keep``).

    Every unsafe character is shown as its escape (``\\x1b``, ``\\n``, ``\\u202e``), so the
    reader sees that something was there, and a newline inside a value can never start a
    line of the notice. A web page keeps newlines and tabs, which are only white space there.
    """
    return "".join(char if char in keep else _safe_char(char) for char in str(text))


def _safe_char(char: str) -> str:
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def format_audit_trail(events: list[AuditEvent]) -> str:
    lines = ["Audit trail:"]
    lines += [
        f"  {event.at.isoformat(timespec='seconds')}  {terminal_safe(event.event)}: "
        f"{terminal_safe(event.detail)}"
        for event in events
    ]
    return "\n".join(lines)


def format_result(result: WorkflowResult) -> str:
    lines = [f"Result: {result.outcome.value} - {terminal_safe(result.message)}"]
    lines += format_answer(result)
    if result.request_id is not None:
        lines.append(f"Request ID: {terminal_safe(result.request_id)}")
    lines.append(format_audit_trail(result.audit_trail))
    return "\n".join(lines)


def format_preview(preview: EffectPreview, width: int = 12) -> list[str]:
    """The effect an approver approves: what changes, then the first rows it touches."""
    indent = " " * width
    lines = [f"{'Effect:':<{width}}{terminal_safe(preview.summary)}"]
    lines += [f"{indent}{terminal_safe(line)}" for line in preview.details]
    lines += [f"{indent}{terminal_safe(repr(row))}" for row in preview.sample_rows]
    return lines


def format_status(workflow_id: str, status: WorkflowStatus) -> str:
    lines = [f"Workflow {terminal_safe(workflow_id)}: {status.state.value}"]
    request = status.approval_request
    if request is not None:
        action = request.proposed_action
        lines += [
            f"Request ID: {terminal_safe(request.request_id)}",
            f"Action:     {terminal_safe(action.action_type)}: {terminal_safe(action.description)}",
            *(
                [f"Call:       {terminal_safe(action.tool_call.as_text())}"]
                if action.tool_call
                else []
            ),
            *(format_preview(request.preview) if request.preview is not None else []),
            f"Risk:       {terminal_safe('; '.join(request.risk_reasons))}",
            f"Deadline:   {request.deadline.isoformat(timespec='seconds')}",
        ]
        lines += _who_decides(request, status)
    if status.current_stage is not None:
        stage = status.current_stage
        lines.append(
            f"Stage:      {terminal_safe(stage.stage)} ({stage.position}/{stage.of}), "
            f"waiting in child workflow {terminal_safe(stage.child_workflow_id)}"
        )
        if stage.members:
            lines.append(f"Members:    {terminal_safe(', '.join(stage.members))}")
    if status.decision is not None:
        verdict = "approved" if status.decision.approved else "rejected"
        lines.append(f"Decision:   {verdict} by {terminal_safe(status.decision.reviewer)}")
    if status.result is not None:
        result = status.result
        lines.append(f"Result:     {result.outcome.value} - {terminal_safe(result.message)}")
        lines += format_answer(result)
    lines.append(format_audit_trail(status.audit_trail))
    return "\n".join(lines)


def _who_decides(request: ApprovalRequest, status: WorkflowStatus) -> list[str]:
    """Approvers and the vote tally: what an approver checks before voting."""
    lines = []
    if request.approvers:
        tier = " (escalated)" if request.escalated else ""
        lines.append(f"Approvers:  {terminal_safe(', '.join(request.approvers))}{tier}")
    if status.required_approvals > 1:
        approvals = sum(vote.approved for vote in status.votes)
        votes = ", ".join(
            f"{vote.reviewer} {'approved' if vote.approved else 'rejected'}"
            for vote in status.votes
        )
        lines.append(
            f"Votes:      {approvals}/{status.required_approvals} approvals"
            + (f" ({terminal_safe(votes)})" if votes else "")
        )
    return lines


@dataclass(frozen=True)
class Answer:
    """What a read-only tool answered (rows found, or counts by group), as text cells: the
    table the terminal and the inbox show. ``more_rows`` were found but not kept."""

    columns: list[str]
    rows: list[list[str]]
    more_rows: int


def answer_of(result: WorkflowResult | None) -> Answer | None:
    """The answer a run's execution returned, or None (it changed data, or found nothing)."""
    execution = result.execution if result is not None else None
    outcome = execution.tool_outcome if execution is not None else None
    if outcome is None or outcome.status is not ToolStatus.EXECUTED or not outcome.rows:
        return None
    columns = list(outcome.rows[0])
    rows = [
        ["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in outcome.rows
    ]
    return Answer(columns=columns, rows=rows, more_rows=outcome.rows_left_off)


def format_answer(result: WorkflowResult | None) -> list[str]:
    """The answer as an aligned table, every cell made terminal-safe and cut to fit."""
    answer = answer_of(result)
    if answer is None:
        return []
    table = [
        [_fit(terminal_safe(cell)) for cell in line] for line in [answer.columns, *answer.rows]
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(answer.columns))]
    rule = ["-" * width for width in widths]
    lines = ["Answer:"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
              for line in [table[0], rule, *table[1:]]]  # fmt: skip
    if answer.more_rows:
        lines.append(f"  ... and {answer.more_rows:,} more rows, not kept in the result")
    return lines


def _fit(text: str) -> str:
    if len(text) <= MAX_ANSWER_CELL_CHARS:
        return text
    return text[: MAX_ANSWER_CELL_CHARS - 1] + "…"


def chat_safe(text: str) -> str:
    """Text a chat receiver shows as written: Slack-style receivers read ``<...>`` as links
    and mentions (``<!channel>``) and ``&`` as an entity, so those three are escaped as
    Slack documents. (The notice is already ``terminal_safe``: no control characters.)"""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def inbox_link(workflow_id: str) -> str | None:
    """The request's page in the web inbox, when ``HITL_INBOX_URL`` says where it runs
    (the page still asks the reader to sign in)."""
    base = os.environ.get(INBOX_URL_ENV, "").strip().rstrip("/")
    return f"{base}/requests/{quote(workflow_id, safe='')}" if base else None
