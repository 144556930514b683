"""The webhook notify activity: POST the approval request as JSON to a chat or ticketing hook.

The body is Slack-incoming-webhook compatible (a ``text`` field) and also carries the
request itself, so any receiver can act on it. The URL and the optional bearer token are
secrets: they are read once when the worker starts and never logged; only the host (and
port) is, never the path or any ``user:password@`` in the URL.
A failed delivery raises: ``send_approval_notices`` (which calls this first, beside the
other channels) then retries it alone, as this activity, by Temporal's retry policy, so the
terminal notice and the e-mail are not repeated; a 4xx other than 408 and 429 is not retried.

httpx2 logs every request with its full URL (``HTTP Request: POST <url>``) at INFO, on its
own ``httpx2`` logger. Whatever level or handlers a program sets, that record is dropped at
the logger while a notice is being sent (a filter keyed on a context variable), so the
secret path cannot reach any log; other uses of httpx2 in the process are untouched.
"""

import ipaddress
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import urlsplit

import httpx2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify_approval_needed import format_approval_notice
from console_format import chat_safe, inbox_link
from constants import WEBHOOK_TOKEN_ENV, WEBHOOK_URL_ENV
from models.models import ApprovalRequest, WebhookDelivery

RETRYABLE_STATUSES = {408, 429}
HTTP_LOGGER = "httpx2"  # the logger httpx2's clients write ``HTTP Request: ...`` to

_sending_notice: ContextVar[bool] = ContextVar("sending_webhook_notice", default=False)


class _DropWhileSendingNotice(logging.Filter):
    """Drops the HTTP client's records emitted while this task sends a notice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _sending_notice.get()


def _install_log_filter() -> None:
    logger = logging.getLogger(HTTP_LOGGER)
    if not any(isinstance(f, _DropWhileSendingNotice) for f in logger.filters):
        logger.addFilter(_DropWhileSendingNotice())


@contextmanager
def _unlogged() -> Iterator[None]:
    """HTTP client records are dropped inside this block (this task only)."""
    token = _sending_notice.set(True)
    try:
        yield
    finally:
        _sending_notice.reset(token)


_install_log_filter()


def webhook_body(request: ApprovalRequest) -> dict[str, object]:
    return {
        "text": chat_safe(format_approval_notice(request).strip()),
        "approval_request": request.model_dump(mode="json"),
        "inbox_url": inbox_link(request.workflow_id),
    }


def public_host(url: str) -> str:
    """host[:port] of ``url``, which is all messages and logs may show: never the
    ``user:password@`` a URL can carry (``netloc`` would), nor its path or query."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a number: httpx2 will say so; the message only needs the host
        port = None
    return host if port is None else f"{host}:{port}"


class WebhookSettingsError(ValueError):
    """The webhook settings cannot work; the message names the setting, never the secret."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_webhook(url: str | None, token: str | None) -> str | None:
    """The URL unchanged if the notifier can use it safely; WebhookSettingsError otherwise.

    Checked when the worker starts, so a typo is one message instead of a failed delivery
    retried on every notice; a token is never sent in clear to another host. Messages show
    the scheme and host only: the path of a webhook URL is usually its secret.
    """
    if url is None:
        return None
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{public_host(url)}" if parts.scheme else "a value without a scheme"
    example = "e.g. https://hooks.slack.com/services/..."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookSettingsError(
            f"{WEBHOOK_URL_ENV} ({shown}) is not a URL the notifier can use: it needs "
            f"http:// or https:// and a host, {example}."
        )
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise WebhookSettingsError(
            f"{WEBHOOK_URL_ENV} ({parts.scheme}://{parts.hostname}) has no valid port: after "
            "the host's ':' comes a number from 1 to 65535."
        )
    if token and parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise WebhookSettingsError(
            f"{WEBHOOK_TOKEN_ENV} is set but {WEBHOOK_URL_ENV} ({shown}) is plain http: the "
            "token would cross the network in clear; use https:// (http is accepted only "
            "for a loopback host)."
        )
    return url


def webhook_settings() -> tuple[str | None, str | None]:
    """The webhook's (URL, token) from the environment, checked; WebhookSettingsError if
    they cannot work. Programs call it before they start anything, as the worker does."""
    token = os.environ.get(WEBHOOK_TOKEN_ENV) or None
    return checked_webhook(os.environ.get(WEBHOOK_URL_ENV) or None, token), token


class WebhookNotifier:
    """Holds the webhook settings and one HTTP client for the worker's lifetime."""

    def __init__(self, url: str | None, token: str | None, client: httpx2.AsyncClient) -> None:
        self._url = url
        self._token = token
        self._client = client

    @classmethod
    def from_env(cls) -> "WebhookNotifier":
        """The notifier for the environment's settings; WebhookSettingsError if unusable."""
        url, token = webhook_settings()
        return cls(url, token, httpx2.AsyncClient(timeout=10))

    @activity.defn
    async def send_webhook_notice(self, request: ApprovalRequest) -> WebhookDelivery:
        """POST the notice; without a configured webhook, say so and do nothing."""
        if self._url is None:
            return WebhookDelivery(delivered=False, detail=f"{WEBHOOK_URL_ENV} is not set")
        host = public_host(self._url)
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
            with _unlogged():
                response = await self._client.post(
                    self._url, json=webhook_body(request), headers=headers
                )
        except httpx2.TransportError as err:
            raise ApplicationError(f"webhook at {host} unreachable: {type(err).__name__}") from None
        if response.is_success:
            return WebhookDelivery(
                delivered=True, detail=f"HTTP {response.status_code} from {host}"
            )
        status = response.status_code
        raise ApplicationError(
            f"webhook at {host} answered HTTP {status}",
            type="WebhookRejected",
            non_retryable=status < 500 and status not in RETRYABLE_STATUSES,
        )
