"""The e-mail notifier against a real SMTP server (aiosmtpd) on 127.0.0.1."""

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.send_email_notice import EmailNotifier, SmtpSettings, SmtpSettingsError
from benchmarks.fake_openai import fallback_tool_call, ok
from constants import (
    APPROVE_SIGNAL,
    INBOX_URL_ENV,
    SMTP_FROM_ENV,
    SMTP_HOST_ENV,
    SMTP_PORT_ENV,
    SMTP_TLS_ENV,
    SMTP_TO_ENV,
)
from models.models import ApprovalRequest, ProposedAction
from tests.helpers import TimeSkippingRuns, status_of, wait_until

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HOSTILE = "ok\r\nBcc: victim@example.com\r\n\x1b[8m<b>hidden</b>"
REQUEST = ApprovalRequest(
    workflow_id="wf-mail",
    request_id="req-mail",
    user_request=f"Wire money {HOSTILE}",
    proposed_action=ProposedAction(
        action_type=f"wire{HOSTILE}",
        description=HOSTILE,
        reasoning="asked",
        risky_action=True,
    ),
    risk_reasons=["moves money"],
    requested_at=NOW,
    deadline=NOW + timedelta(minutes=5),
)


RISKY_ANSWER = {
    "action_type": "delete_logs",
    "description": "Delete the audit logs",
    "reasoning": "asked",
    "risky_action": True,
    "parameters": {},
    "tool_call": fallback_tool_call("Delete the audit logs"),
}


class Inbox:
    """Collects what the SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Message]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append((envelope, message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


def settings(port: int) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=port,
        tls="none",
        sender="agent@example.com",
        recipients=["approvers@example.com", "oncall@example.com"],
    )


async def test_the_notice_arrives_as_plain_text_with_the_inbox_link(
    smtp_server: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, port = smtp_server
    monkeypatch.setenv(INBOX_URL_ENV, "https://inbox.example.com")
    notifier = EmailNotifier(settings(port))

    delivery = await ActivityEnvironment().run(notifier.send_email_notice, REQUEST)

    assert delivery.delivered and "127.0.0.1" in delivery.detail
    [(envelope, message)] = inbox.messages
    assert envelope.rcpt_tos == ["approvers@example.com", "oncall@example.com"]
    assert message.get_content_type() == "text/plain"
    assert message["Bcc"] is None  # the hostile text could not add a header
    assert "\\r\\nBcc" in message["Subject"]
    body = message.get_payload(decode=True).decode()
    assert "Decide in the browser: https://inbox.example.com/requests/wf-mail" in body
    assert "\x1b" not in body and "\\x1b[8m<b>hidden</b>" in body


async def test_without_a_server_nothing_is_sent() -> None:
    delivery = await ActivityEnvironment().run(EmailNotifier(None).send_email_notice, REQUEST)
    assert not delivery.delivered and SMTP_HOST_ENV in delivery.detail


async def test_an_unreachable_server_fails_the_attempt_so_temporal_retries() -> None:
    notifier = EmailNotifier(settings(free_port()))

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(notifier.send_email_notice, REQUEST)

    assert not raised.value.non_retryable
    assert "127.0.0.1" in raised.value.message


def test_settings_come_from_the_environment_and_name_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(SMTP_HOST_ENV, raising=False)
    assert SmtpSettings.from_env() is None
    monkeypatch.setenv(SMTP_HOST_ENV, "smtp.example.com")
    with pytest.raises(SmtpSettingsError, match=SMTP_TO_ENV):
        SmtpSettings.from_env()
    monkeypatch.setenv(SMTP_FROM_ENV, "agent@example.com")
    monkeypatch.setenv(SMTP_TO_ENV, "a@example.com, b@example.com")
    loaded = SmtpSettings.from_env()
    assert loaded is not None and loaded.port == 587 and loaded.tls == "starttls"
    assert loaded.recipients == ["a@example.com", "b@example.com"]
    monkeypatch.setenv(SMTP_TLS_ENV, "sometimes")
    with pytest.raises(SmtpSettingsError, match=SMTP_TLS_ENV):
        SmtpSettings.from_env()


async def test_a_run_that_asks_sends_its_notice_by_e_mail(
    smtp_server: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch, runs: TimeSkippingRuns
) -> None:
    """The worker's wiring: with HITL_SMTP_* set, a request that needs a human is e-mailed
    (alongside the terminal notice and the webhook), and the audit trail says so."""
    inbox, port = smtp_server
    for name, value in (
        (SMTP_HOST_ENV, "127.0.0.1"),
        (SMTP_PORT_ENV, str(port)),
        (SMTP_TLS_ENV, "none"),
        (SMTP_FROM_ENV, "agent@example.com"),
        (SMTP_TO_ENV, "approvers@example.com"),
    ):
        monkeypatch.setenv(name, value)
    async with runs.worker():
        handle = await runs.start(f"Delete the audit logs [{runs.workflow_id}]", ok(RISKY_ANSWER))
        status = await wait_until(
            lambda: status_of(handle),
            lambda s: any(event.event == "email_delivered" for event in s.audit_trail),
        )
        request = status.approval_request
        assert request is not None
        await handle.signal(APPROVE_SIGNAL, False)
        await handle.result()

    [(envelope, message)] = inbox.messages
    assert envelope.rcpt_tos == ["approvers@example.com"]
    assert request.request_id in message.get_payload(decode=True).decode()
