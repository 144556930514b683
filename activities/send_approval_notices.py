"""Every channel of an approval notice in one activity: the terminal, webhook, e-mail, Slack.

Each activity a run schedules adds three events to its history and, when it completes, a
workflow task; one activity per channel cost every waiting run up to nine events and two
workflow tasks more than this one (README, "Benchmarks"), and most deployments configure
one channel or none. Here each channel is tried once, side by side, and reported on its
own. A failed channel is not retried by this activity, whose retry would send the others
again: the workflow retries that channel alone, with its own activity
(``workflows/notifications.py``).
"""

import asyncio
from collections.abc import Awaitable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify_approval_needed import notify_approval_needed
from activities.send_email_notice import EmailNotifier
from activities.send_webhook_notice import WebhookNotifier
from activities.slack_notifier import SlackNotifier
from models.models import (
    ApprovalRequest,
    ChannelNotice,
    EmailDelivery,
    NoticeChannel,
    NoticeReport,
    SlackDelivery,
    WebhookDelivery,
)

# What one channel's own activity returns: the terminal notice returns nothing.
ChannelDelivery = WebhookDelivery | EmailDelivery | SlackDelivery | None


class ApprovalNotices:
    """The worker's notice channels, sent together."""

    def __init__(
        self, webhook: WebhookNotifier, email: EmailNotifier, slack: SlackNotifier | None = None
    ) -> None:
        self._webhook = webhook
        self._email = email
        self._slack = slack or SlackNotifier(None, None)

    @activity.defn
    async def send_approval_notices(self, request: ApprovalRequest) -> NoticeReport:
        """Notify on every channel at once; an unconfigured one reports that it sent nothing."""
        channels = await asyncio.gather(
            _attempt(NoticeChannel.TERMINAL, notify_approval_needed(request)),
            _attempt(NoticeChannel.WEBHOOK, self._webhook.send_webhook_notice(request)),
            _attempt(NoticeChannel.EMAIL, self._email.send_email_notice(request)),
            _attempt(NoticeChannel.SLACK, self._slack.send_slack_notice(request)),
        )
        return NoticeReport(channels=list(channels))


async def _attempt(channel: NoticeChannel, sending: Awaitable[ChannelDelivery]) -> ChannelNotice:
    """One channel's attempt, reported as Temporal would judge it if it were its own
    activity: an ``ApplicationError`` says whether to retry, any other error is retried."""
    try:
        delivery = await sending
    except ApplicationError as err:
        retryable = not err.non_retryable
        return ChannelNotice(channel=channel, failed=True, retryable=retryable, detail=err.message)
    except Exception as err:  # reported per channel, so the other channels still count
        activity.logger.warning("%s notice failed: %s", channel.value, type(err).__name__)
        detail = str(err) or type(err).__name__  # e.g. a bare TimeoutError says nothing
        return ChannelNotice(channel=channel, failed=True, retryable=True, detail=detail)
    if delivery is None:  # the terminal: printed
        return ChannelNotice(channel=channel, delivered=True)
    posted = delivery.message if isinstance(delivery, SlackDelivery) else None
    return ChannelNotice(
        channel=channel,
        delivered=delivery.delivered,
        detail=delivery.detail,
        slack_message=posted,
    )
