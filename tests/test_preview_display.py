"""The effect preview reaches every place an approver looks: the notice, the status, the
webhook; and what the model wrote in it cannot drive a terminal."""

from pathlib import Path

from activities.notify_approval_needed import format_approval_notice
from activities.send_webhook_notice import webhook_body
from console_format import format_status
from models.models import ApprovalRequest, WorkflowState, WorkflowStatus
from tests.test_console_format import REQUEST
from tests.test_tools import DE, call
from tools.database import ensure_database
from tools.execution import preview_call


def request_with_preview(tmp_path: Path) -> ApprovalRequest:
    path = tmp_path / "operations.sqlite3"
    ensure_database(path)
    preview = preview_call(path, call("delete_records", table="customers", filters=[DE]))
    return REQUEST.model_copy(update={"preview": preview})


SUMMARY = "deletes 198 of 2,020 rows in customers where country = 'DE'; first 5 shown"


def test_the_notice_shows_the_effect_and_its_first_rows(tmp_path: Path) -> None:
    notice = format_approval_notice(request_with_preview(tmp_path))
    assert f"Effect:      {SUMMARY}" in notice
    assert notice.count("'country': 'DE'") == 5


def test_the_status_shows_the_effect(tmp_path: Path) -> None:
    status = WorkflowStatus(
        state=WorkflowState.AWAITING_APPROVAL, approval_request=request_with_preview(tmp_path)
    )
    assert f"Effect:     {SUMMARY}" in format_status("wf-1", status)


def test_the_webhook_carries_the_preview_and_its_fingerprint(tmp_path: Path) -> None:
    request = request_with_preview(tmp_path)
    body = webhook_body(request)
    assert SUMMARY in str(body["text"])
    sent = body["approval_request"]
    assert isinstance(sent, dict)
    assert sent["preview"]["fingerprint"] == request.preview.fingerprint  # type: ignore[union-attr]


def test_a_request_without_a_preview_reads_as_before() -> None:
    assert "Effect:" not in format_approval_notice(REQUEST)
