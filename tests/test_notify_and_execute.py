"""The approval notice is what a person acts on: its commands must work as pasted. The
simulated execute step (the benchmarks' baseline; the workflow executes only through tools)
must carry the idempotency key and never pretend it changed anything."""

import json
import os
import pwd
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import ActivityEnvironment

import send_approval
from activities.notify_approval_needed import notify_approval_needed
from constants import APPROVAL_DECISION_SIGNAL
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    ProposedAction,
)
from tests.e2e import PASTING_USER, shell_words
from workflows.stage_ids import stage_child_id

ACTION = ProposedAction(
    action_type="delete_records",
    description="Delete the test rows from the production database",
    reasoning="The user asked for the cleanup",
    risky_action=True,
)
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
REQUEST = ApprovalRequest(
    workflow_id="hitl-3b9c2e",
    request_id="0f6d7c1e-5a4b-4c3d-9e8f-1a2b3c4d5e6f",
    user_request="Delete all test data from the production database",
    proposed_action=ACTION,
    risk_reasons=["destructive or irreversible operation", "targets production"],
    requested_at=NOW,
    deadline=NOW + timedelta(minutes=5),
)


async def _printed_notice(
    capsys: pytest.CaptureFixture[str], request: ApprovalRequest = REQUEST
) -> str:
    await ActivityEnvironment().run(notify_approval_needed, request)
    return capsys.readouterr().out


def _commands(notice: str, marker: str) -> list[list[str]]:
    """The words of every command line containing ``marker`` (continuations joined), as a
    shell reads them when ``PASTING_USER`` pastes the line."""
    joined = notice.replace("\\\n", " ")
    return [shell_words(line) for line in joined.splitlines() if marker in line]


def _option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


async def test_notice_names_the_workflow_and_the_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Both IDs on lines of their own, so they can be copied or grepped from the worker log."""
    lines = (await _printed_notice(capsys)).splitlines()

    assert f"Workflow ID: {REQUEST.workflow_id}" in lines
    assert f"Request ID: {REQUEST.request_id}" in lines


async def test_notice_explains_the_action_the_risk_and_the_deadline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    notice = await _printed_notice(capsys)

    assert REQUEST.user_request in notice
    assert f"{ACTION.action_type}: {ACTION.description}" in notice
    for reason in REQUEST.risk_reasons:
        assert reason in notice
    assert "2024-05-01T12:05:00+00:00" in notice


async def test_notice_send_approval_commands_parse_as_decisions_for_this_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The pasted send_approval command must target this workflow and this request."""
    commands = _commands(await _printed_notice(capsys), "-m send_approval")

    verdicts = []
    for words in commands:
        args = send_approval.parse_args(words[words.index("send_approval") + 1 :])
        assert args.workflow_id == REQUEST.workflow_id
        assert args.request_id == REQUEST.request_id
        verdicts.append(args.verdict)
    assert sorted(verdicts) == ["approve", "reject"]


async def test_notice_temporal_cli_command_sends_a_valid_decision_for_this_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The Temporal CLI recipe's --input must decode into an ApprovalDecision the workflow
    accepts for the pending request; a typo here would be refused silently (it is a signal)."""
    (words,) = _commands(await _printed_notice(capsys), "temporal workflow signal")

    # The CLI is installed in the project's virtualenv, not on PATH: hence `uv run`.
    assert words[:5] == ["uv", "run", "temporal", "workflow", "signal"]
    assert _option(words, "--workflow-id") == REQUEST.workflow_id
    assert _option(words, "--name") == APPROVAL_DECISION_SIGNAL
    decision = ApprovalDecision.model_validate(json.loads(_option(words, "--input")))
    assert decision.request_id == REQUEST.request_id
    assert decision.approved is True
    assert decision.reviewer == PASTING_USER  # never "unknown"


async def test_notice_signal_names_the_os_user_where_the_shell_has_no_user(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Containers and service shells often leave $USER unset: the pasted decision must still
    name someone (an empty reviewer is refused), the OS user, as send_approval does."""
    notice = (await _printed_notice(capsys)).replace("\\\n", " ")
    [line] = [line for line in notice.splitlines() if "temporal workflow signal" in line]
    words = shell_words(line, user=None)
    decision = ApprovalDecision.model_validate(json.loads(_option(words, "--input")))
    assert decision.reviewer == pwd.getpwuid(os.getuid()).pw_name


async def test_notice_commands_quote_ids_a_shell_would_split_or_expand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Workflow IDs are the user's choice (``--workflow-id``): spaces, quotes and ``$`` must
    reach the command as typed, in every pasted line, and JSON with a quote must stay JSON."""
    workflow_id, request_id = "inv 2291; echo $HOME's", "req 'quoted'"
    request = REQUEST.model_copy(update={"workflow_id": workflow_id, "request_id": request_id})
    notice = await _printed_notice(capsys, request)

    (signal,) = _commands(notice, "temporal workflow signal")
    assert _option(signal, "--workflow-id") == workflow_id
    assert json.loads(_option(signal, "--input"))["request_id"] == request_id
    for words in _commands(notice, "-m send_approval"):
        assert words[:2] == ["uv", "run"]
        args = send_approval.parse_args(words[words.index("send_approval") + 1 :])
        assert (args.workflow_id, args.request_id) == (workflow_id, request_id)


async def test_stage_notice_commands_decide_the_stage_as_a_member_through_uv_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A stage is decided by its members: the notice's commands send a named reviewer's
    decision bound to the stage, never the shorthand signal (temporal-cli is no member)."""
    child_id = stage_child_id("inv 2291", REQUEST.request_id, 1, "manager")
    stage_request = REQUEST.model_copy(update={"workflow_id": child_id, "stage": "manager"})
    notice = await _printed_notice(capsys, stage_request)

    assert "Approve or reject stage 'manager', as one of its members:" in notice
    assert not _commands(notice, "temporal workflow signal")
    commands = _commands(notice, "-m send_approval")
    assert len(commands) == 2
    verdicts = []
    for words in commands:
        assert words[:2] == ["uv", "run"]
        args = send_approval.parse_args(words[words.index("send_approval") + 1 :])
        assert (args.workflow_id, args.request_id) == ("inv 2291", REQUEST.request_id)
        assert (args.stage, args.reviewer) == ("manager", "MEMBER")
        verdicts.append(args.verdict)
    assert sorted(verdicts) == ["approve", "reject"]
