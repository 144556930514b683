"""The webhook notify activity: POST the approval request as JSON to a chat or ticketing hook.

The body is Slack-incoming-webhook compatible (a ``text`` field) and also carries the
request itself, so any receiver can act on it. The URL and the optional bearer token are
secrets: they are read once when the worker starts and never logged; only the host (and
port) is, never the path or any ``user:password@`` in the URL.
A failed delivery raises, so Temporal's retry policy retries it; the terminal notice is a
separate activity and is not repeated.
"""

import os
from urllib.parse import urlsplit

import httpx2
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify_approval_needed import format_approval_notice, inbox_link
from constants import WEBHOOK_TOKEN_ENV, WEBHOOK_URL_ENV
from models.models import ApprovalRequest, WebhookDelivery

RETRYABLE_STATUSES = {408, 429}


def chat_safe(text: str) -> str:
    """Text a chat receiver shows as written: Slack-style receivers read ``<...>`` as links
    and mentions (``<!channel>``) and ``&`` as an entity, so those three are escaped as
    Slack documents. (The notice is already ``terminal_safe``: no control characters.)"""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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


class WebhookNotifier:
    """Holds the webhook settings and one HTTP client for the worker's lifetime."""

    def __init__(self, url: str | None, token: str | None, client: httpx2.AsyncClient) -> None:
        self._url = url
        self._token = token
        self._client = client

    @classmethod
    def from_env(cls) -> "WebhookNotifier":
        return cls(
            os.environ.get(WEBHOOK_URL_ENV) or None,
            os.environ.get(WEBHOOK_TOKEN_ENV) or None,
            httpx2.AsyncClient(timeout=10),
        )

    @activity.defn
    async def send_webhook_notice(self, request: ApprovalRequest) -> WebhookDelivery:
        """POST the notice; without a configured webhook, say so and do nothing."""
        if self._url is None:
            return WebhookDelivery(delivered=False, detail=f"{WEBHOOK_URL_ENV} is not set")
        host = public_host(self._url)
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        try:
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
