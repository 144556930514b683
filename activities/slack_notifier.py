"""The Slack notify activities: post the approval message, and update it once decided.

Posting is one more channel of ``send_approval_notices`` (the terminal, the webhook, e-mail,
Slack), in the same shape as the webhook: an unconfigured Slack answers at once, a failed
post raises an ``ApplicationError`` that says whether another attempt can succeed. The
posted message's channel and ``ts`` go back to the workflow, which updates the message
(``update_slack_messages``) when the request closes, wherever it was decided.

Slack's own SDK does the HTTP (its ``WebClient``, in a thread: the async client would need
aiohttp). Its log of each request redacts the token; nothing here logs it either.
"""

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from constants import SLACK_BOT_TOKEN_ENV
from models.models import ApprovalRequest, SlackClosing, SlackDelivery, SlackMessage
from slack_approvals.messages import decided_message, request_message
from slack_approvals.settings import SlackPosting

HTTP_SECONDS = 10
# Slack's errors another attempt can get past; any other (a wrong token or channel, a
# missing scope, a deleted message) needs a person, so it is not retried.
TRANSIENT_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable"}


class SlackNotifier:
    """Holds the Slack client and channel for the worker's lifetime; None: not configured."""

    def __init__(self, client: WebClient | None, channel: str | None) -> None:
        self._client = client
        self._channel = channel

    @classmethod
    def from_env(cls) -> "SlackNotifier":
        """The notifier for the environment's settings; SlackSettingsError if half set."""
        posting = SlackPosting.from_env()
        if posting is None:
            return cls(None, None)
        return cls(WebClient(token=posting.token, timeout=HTTP_SECONDS), posting.channel)

    @activity.defn
    async def send_slack_notice(self, request: ApprovalRequest) -> SlackDelivery:
        """Post the approval message; without a configured Slack, say so and do nothing."""
        if self._client is None or self._channel is None:
            return SlackDelivery(delivered=False, detail=f"{SLACK_BOT_TOKEN_ENV} is not set")
        text, blocks = request_message(request)
        response = await _call(
            self._client.chat_postMessage,
            channel=self._channel,
            text=text,
            blocks=blocks,
            mrkdwn=False,
            unfurl_links=False,
            unfurl_media=False,
        )
        message = SlackMessage(channel=response["channel"], ts=response["ts"])
        return SlackDelivery(
            delivered=True, detail=f"message {message.ts} in {message.channel}", message=message
        )

    @activity.defn
    async def update_slack_messages(self, closing: SlackClosing) -> SlackDelivery:
        """Show the outcome in each message the request posted, its buttons gone."""
        if self._client is None:
            return SlackDelivery(delivered=False, detail=f"{SLACK_BOT_TOKEN_ENV} is not set")
        text, blocks = decided_message(closing.request, closing.decision, closing.cancelled)
        for message in closing.messages:
            await _call(
                self._client.chat_update,
                channel=message.channel,
                ts=message.ts,
                text=text,
                blocks=blocks,
            )
        return SlackDelivery(delivered=True, detail=f"{len(closing.messages)} message(s) updated")


async def _call(method: Callable[..., Any], **arguments: Any) -> Any:
    """One Web API call, its failure as an ``ApplicationError`` Temporal can judge."""
    try:
        return await asyncio.to_thread(method, **arguments)
    except SlackApiError as err:
        error = str(err.response.get("error", "unknown"))
        status = err.response.status_code
        raise ApplicationError(
            f"Slack refused the message: {error} (HTTP {status})",
            type="SlackRejected",
            non_retryable=error not in TRANSIENT_ERRORS and status < 500 and status != 429,
        ) from None
    except (URLError, OSError) as err:  # includes timeouts and refused connections
        raise ApplicationError(f"Slack unreachable: {type(err).__name__}") from None
