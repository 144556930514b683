"""Command-line mistakes must stop before anything is sent, with a usage line and exit 2,
and correct commands must mean exactly what the README says."""

import getpass
import json

import pytest

import approval_status
import demo
import send_approval
import start_workflow
from models.limits import MAX_TOOL_CALL_BYTES
from models.models import DEFAULT_APPROVAL_TIMEOUT_SECONDS, MAX_WAIT_SECONDS


def _usage_error(
    capsys: pytest.CaptureFixture[str], prog: str, entry: object, argv: list[str]
) -> str:
    """Run ``entry(argv)``, expect argparse's exit 2, and return the error printed."""
    assert callable(entry)
    with pytest.raises(SystemExit) as caught:
        entry(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: {prog}" in err
    return err


# start_workflow


def test_start_defaults() -> None:
    args = start_workflow.parse_args(["Delete the test data"])

    assert args.request == "Delete the test data"
    assert args.approval_timeout == DEFAULT_APPROVAL_TIMEOUT_SECONDS
    assert args.require_approval is False
    assert args.requester is None
    assert args.approvers == []
    assert args.workflow_id is None


def test_start_options_are_parsed() -> None:
    args = start_workflow.parse_args(
        [
            "Pay the invoice",
            "--approval-timeout",
            "45",
            "--require-approval",
            "--requester",
            "alice",
            "--approver",
            "bob",
            "--approver",
            "carol",
            "--workflow-id",
            "hitl-mine",
        ]
    )

    assert args.approval_timeout == 45
    assert args.require_approval is True
    assert args.requester == "alice"
    assert args.approvers == ["bob", "carol"]
    assert args.workflow_id == "hitl-mine"


@pytest.mark.parametrize("request_text", ["", "   "])
def test_start_refuses_an_empty_request(
    capsys: pytest.CaptureFixture[str], request_text: str
) -> None:
    """Through main: the error comes before any connection attempt."""
    err = _usage_error(capsys, "start_workflow", start_workflow.main, [request_text])

    assert "must not be empty" in err


@pytest.mark.parametrize("timeout", ["0", "-1", "abc", "1.5"])
def test_start_refuses_a_bad_approval_timeout(
    capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    err = _usage_error(
        capsys, "start_workflow", start_workflow.main, ["Delete it", "--approval-timeout", timeout]
    )

    assert "--approval-timeout" in err
    assert repr(timeout) in err


@pytest.mark.parametrize(
    ("prog", "parse"),
    [("start_workflow", start_workflow.parse_args), ("demo", demo.parse_args)],
)
def test_a_wait_longer_than_a_year_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], prog: str, parse: object
) -> None:
    """The workflow refuses it too, but the CLI says so before anything starts."""
    argv = ["Delete it", "--approval-timeout", str(MAX_WAIT_SECONDS + 1)]
    err = _usage_error(capsys, prog, parse, argv)

    assert f"must be at most {MAX_WAIT_SECONDS} seconds (365 days)" in err
    assert start_workflow.parse_args(["Delete it", "--approval-timeout", str(MAX_WAIT_SECONDS)])


def test_start_without_a_request_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    _usage_error(capsys, "start_workflow", start_workflow.parse_args, [])


# send_approval


def test_send_three_word_form_with_request_id_and_notes() -> None:
    args = send_approval.parse_args(["wf-1", "req-1", "approve", "looks good"])

    assert args.workflow_id == "wf-1"
    assert args.request_id == "req-1"
    assert args.verdict == "approve"
    assert args.notes == "looks good"
    assert args.edit_arguments is None


def test_send_without_request_id_targets_the_pending_request() -> None:
    args = send_approval.parse_args(["wf-1", "reject", "too risky"])

    assert args.request_id is None
    assert args.verdict == "reject"
    assert args.notes == "too risky"


@pytest.mark.parametrize(
    ("argv", "request_id", "verdict"),
    [(["wf-1", "approve"], None, "approve"), (["wf-1", "req-1", "reject"], "req-1", "reject")],
)
def test_send_notes_are_optional(argv: list[str], request_id: str | None, verdict: str) -> None:
    args = send_approval.parse_args(argv)

    assert args.request_id == request_id
    assert args.verdict == verdict
    assert args.notes == ""


def test_send_reviewer_defaults_to_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The OS user is read when the command runs, so the trail names who actually decided."""
    monkeypatch.setenv("LOGNAME", "os-user-for-test")

    assert send_approval.parse_args(["wf-1", "approve"]).reviewer == "os-user-for-test"
    assert send_approval.parse_args(["wf-1", "approve", "--reviewer", "bob"]).reviewer == "bob"


def test_send_without_an_os_user_asks_for_a_reviewer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A container running as a bare UID has no user name: the decision is not sent unsigned."""

    def no_user() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)

    err = _usage_error(capsys, "send_approval", send_approval.main, ["wf-1", "approve"])
    assert "--reviewer NAME" in err
    assert send_approval.parse_args(["wf-1", "approve", "--reviewer", "bob"]).reviewer == "bob"


def test_send_stage_names_the_stage_decided_and_cannot_amend(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--stage`` binds the decision to one stage of a staged request; a stage approves or
    rejects the action, so it never goes with edited arguments."""
    args = send_approval.parse_args(["wf-1", "approve", "--stage", "manager", "--reviewer", "bob"])
    assert (args.stage, args.reviewer) == ("manager", "bob")
    assert send_approval.parse_args(["wf-1", "approve"]).stage is None
    err = _usage_error(
        capsys,
        "send_approval",
        send_approval.parse_args,
        ["wf-1", "approve", "--stage", "manager", "--edit-arguments", "{}"],
    )
    assert "cannot amend" in err


def test_send_edit_arguments_goes_with_approve() -> None:
    edit = '{"table": "customers", "filters": [{"column": "id", "op": "=", "value": "2001"}]}'
    args = send_approval.parse_args(["wf-1", "approve", "--edit-arguments", edit])

    assert args.edit_arguments == {
        "table": "customers",
        "filters": [{"column": "id", "op": "=", "value": "2001"}],
    }


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ('{"table": "customers"', "not JSON (Expecting ',' delimiter: line 1 column 22"),
        ("table=customers", "not JSON (Expecting value: line 1 column 1"),
        ('{"limit": NaN}', "not JSON (NaN is not a JSON value)"),
        ("[1, 2]", "must be a JSON object of the arguments by name"),
        ('"customers"', "must be a JSON object of the arguments by name"),
        ("[" * 5_000 + "]" * 5_000, "not JSON (maximum recursion depth exceeded"),
        # Decodable here, but not once the run nests it in its status or a continued run.
        ('{"a": ' + "[" * 190 + "]" * 190 + "}", "nests deeper than 16 levels"),
        # Infinity as a float, which JSON cannot carry: the run would be sent null.
        ('{"amount_cents": 1e400}', "a number is too large"),
        (
            json.dumps({"body": "b" * MAX_TOOL_CALL_BYTES}),
            f"is {MAX_TOOL_CALL_BYTES + 11:,} bytes as JSON; the limit is {MAX_TOOL_CALL_BYTES:,}",
        ),
    ],
    ids=["unclosed", "not json", "nan", "array", "string", "nested", "deep", "inf", "too long"],
)
def test_send_refuses_edit_arguments_that_are_no_json_object_within_the_limit(
    capsys: pytest.CaptureFixture[str], edit: str, reason: str
) -> None:
    """Said before anything is sent, without repeating what was typed."""
    err = _usage_error(
        capsys, "send_approval", send_approval.main, ["wf-1", "approve", "--edit-arguments", edit]
    )

    assert f"argument --edit-arguments: {reason}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["wf-1", "req-1", "maybe"], id="bad-verdict"),
        pytest.param(["wf-1", "maybe"], id="bad-verdict-no-request-id"),
        pytest.param(["wf-1", "req-1", "approve", "notes", "extra"], id="too-many-words"),
        pytest.param(["wf-1", "approve", "notes", "extra"], id="too-many-words-no-request-id"),
        pytest.param(["wf-1", "req-1", "extra", "approve"], id="verdict-in-wrong-place"),
    ],
)
def test_send_refuses_malformed_decisions(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    err = _usage_error(capsys, "send_approval", send_approval.main, argv)

    assert "expected approve or reject" in err


def test_send_refuses_edit_arguments_with_reject(capsys: pytest.CaptureFixture[str]) -> None:
    """An edit that is rejected means nothing; say so before sending it."""
    err = _usage_error(
        capsys, "send_approval", send_approval.main, ["wf-1", "reject", "--edit-arguments", "{}"]
    )

    assert "--edit-arguments only goes with approve" in err


def test_send_without_a_decision_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    _usage_error(capsys, "send_approval", send_approval.parse_args, ["wf-1"])


# approval_status


def test_status_of_one_workflow() -> None:
    args = approval_status.parse_args(["wf-1"])

    assert args.workflow_id == "wf-1"
    assert args.pending is False


def test_status_pending_list() -> None:
    args = approval_status.parse_args(["--pending"])

    assert args.pending is True
    assert args.workflow_id is None


def test_status_needs_a_workflow_id_or_pending(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, "approval_status", approval_status.main, [])

    assert "required" in err


def test_status_refuses_both_a_workflow_id_and_pending(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = _usage_error(capsys, "approval_status", approval_status.main, ["wf-1", "--pending"])

    assert "not allowed with" in err


@pytest.mark.parametrize(
    ("prog", "entry", "argv", "expected"),
    [
        ("send_approval", send_approval.main, ["", "approve"], "the workflow ID must not be empty"),
        ("send_approval", send_approval.main, ["  ", "r-1", "reject"], "workflow ID must not be"),
        ("approval_status", approval_status.main, [""], "the workflow ID must not be empty"),
        ("start_workflow", start_workflow.main, ["Do it", "--workflow-id", ""], "must not be"),
    ],
    ids=["send", "send-blank-with-request-id", "status", "start"],
)
def test_an_empty_workflow_id_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], prog: str, entry: object, argv: list[str], expected: str
) -> None:
    """Temporal would only answer "WorkflowId is not set on request"; say it before sending."""
    err = _usage_error(capsys, prog, entry, argv)

    assert expected in err
