"""The e-mail notify activity: send the approval notice to approvers over SMTP.

Configured by ``HITL_SMTP_*`` (see ``constants.py``); without ``HITL_SMTP_HOST`` it does
nothing and says so. The message is plain text only: the same ``terminal_safe`` notice the
worker prints, with the inbox link when ``HITL_INBOX_URL`` is set, so nothing a requester
or the model wrote can become markup, a link text or an extra header. The password is read
once and never logged. A failed delivery raises: ``send_approval_notices`` (which calls this
first, beside the other channels) then retries it alone, as this activity, by Temporal's
retry policy, unless the error says another attempt cannot succeed.
"""

import asyncio
import os
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify_approval_needed import format_approval_notice
from console_format import terminal_safe
from constants import (
    SMTP_FROM_ENV,
    SMTP_HOST_ENV,
    SMTP_PASSWORD_ENV,
    SMTP_PORT_ENV,
    SMTP_TLS_ENV,
    SMTP_TO_ENV,
    SMTP_USER_ENV,
)
from models.models import ApprovalRequest, EmailDelivery

TLS_MODES = ("starttls", "implicit", "none")
DEFAULT_PORTS = {"starttls": 587, "implicit": 465, "none": 25}
SMTP_TIMEOUT_SECONDS = 20
SUBJECT_MAX = 120


class SmtpSettingsError(Exception):
    """An ``HITL_SMTP_*`` setting cannot work; the message names it."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    tls: str
    sender: str
    recipients: list[str]
    user: str | None = None
    password: str | None = None

    @classmethod
    def from_env(cls) -> "SmtpSettings | None":
        host = os.environ.get(SMTP_HOST_ENV, "").strip()
        if not host:
            return None
        tls = os.environ.get(SMTP_TLS_ENV, "starttls").strip().lower()
        if tls not in TLS_MODES:
            raise SmtpSettingsError(f"{SMTP_TLS_ENV} must be one of {', '.join(TLS_MODES)}")
        port_text = os.environ.get(SMTP_PORT_ENV, "").strip() or str(DEFAULT_PORTS[tls])
        if not port_text.isdigit():
            raise SmtpSettingsError(f"{SMTP_PORT_ENV} must be a port number")
        recipients = [r.strip() for r in os.environ.get(SMTP_TO_ENV, "").split(",") if r.strip()]
        sender = os.environ.get(SMTP_FROM_ENV, "").strip()
        if not recipients or not sender:
            raise SmtpSettingsError(f"{SMTP_HOST_ENV} needs {SMTP_FROM_ENV} and {SMTP_TO_ENV}")
        return cls(
            host=host,
            port=int(port_text),
            tls=tls,
            sender=sender,
            recipients=recipients,
            user=os.environ.get(SMTP_USER_ENV) or None,
            password=os.environ.get(SMTP_PASSWORD_ENV) or None,
        )


def notice_email(request: ApprovalRequest, sender: str, recipients: list[str]) -> EmailMessage:
    action = request.proposed_action
    title = "Escalated: approval still required" if request.escalated else "Approval required"
    subject = terminal_safe(f"{title}: {action.action_type} ({request.workflow_id})")
    message = EmailMessage()
    message["Subject"] = subject[:SUBJECT_MAX]
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content(format_approval_notice(request).strip() + "\n")
    return message


class EmailNotifier:
    """Holds the SMTP settings for the worker's lifetime."""

    def __init__(self, settings: SmtpSettings | None) -> None:
        self._settings = settings

    @classmethod
    def from_env(cls) -> "EmailNotifier":
        return cls(SmtpSettings.from_env())

    @activity.defn
    async def send_email_notice(self, request: ApprovalRequest) -> EmailDelivery:
        """E-mail the notice; without a configured server, say so and do nothing."""
        settings = self._settings
        if settings is None:
            return EmailDelivery(delivered=False, detail=f"{SMTP_HOST_ENV} is not set")
        message = notice_email(request, settings.sender, settings.recipients)
        server = f"{settings.host}:{settings.port}"
        try:
            await asyncio.to_thread(_send, settings, message)
        except smtplib.SMTPAuthenticationError:
            raise ApplicationError(
                f"SMTP server {server} refused the credentials ({SMTP_USER_ENV})",
                type="SmtpRejected",
                non_retryable=True,
            ) from None
        except smtplib.SMTPRecipientsRefused:
            raise ApplicationError(
                f"SMTP server {server} refused the recipients ({SMTP_TO_ENV})",
                type="SmtpRejected",
                non_retryable=True,
            ) from None
        except (smtplib.SMTPException, OSError) as err:
            raise ApplicationError(f"SMTP server {server}: {type(err).__name__}") from None
        recipients = ", ".join(settings.recipients)
        return EmailDelivery(delivered=True, detail=f"to {recipients} via {server}")


def _send(settings: SmtpSettings, message: EmailMessage) -> None:
    context = ssl.create_default_context()
    if settings.tls == "implicit":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT_SECONDS)
    with smtp:
        if settings.tls == "starttls":
            smtp.starttls(context=context)
        if settings.user and settings.password:
            smtp.login(settings.user, settings.password)
        smtp.send_message(message)
