"""Sending an approval notice from workflow code: to the terminal, webhook, e-mail and Slack.

Shared by the main workflow (first notice, escalation reminder) and each approval stage.
A failed notice never fails the run: the request can still be found (status query,
ApprovalStatus search attribute) and decided, so failures are returned for the audit trail.
Every channel goes out in one activity (``activities/send_approval_notices.py``); a channel that
failed is retried alone, with its own activity. The opening notice's one attempt is a local
activity, sent in the workflow task that opens the request: one marker in history instead
of an activity's three events and the workflow task its completion would take. A
cancellation is never a notice failure: it is raised, so a cancellation stays one.
"""

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.notify_approval_needed import notify_approval_needed
    from activities.send_approval_notices import ApprovalNotices, ChannelDelivery
    from activities.send_email_notice import EmailNotifier
    from activities.send_webhook_notice import WebhookNotifier
    from activities.slack_notifier import SlackNotifier
    from models.models import (
        ApprovalDecision,
        ApprovalRequest,
        ChannelNotice,
        NoticeChannel,
        NoticeReport,
        SlackClosing,
        SlackDelivery,
        SlackMessage,
    )

NOTICE_TIMEOUT = timedelta(seconds=30)
NOTICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
SLACK_UPDATE_RETRY = RetryPolicy(maximum_attempts=3)  # the run waits for it: briefly
AuditEvents = list[tuple[str, str]]
DELIVERED_EVENTS = {
    NoticeChannel.WEBHOOK: "webhook_delivered",
    NoticeChannel.EMAIL: "email_delivered",
    NoticeChannel.SLACK: "slack_delivered",
}


async def send_notices(
    request: ApprovalRequest, posted: list[SlackMessage], *, opening: bool = False
) -> AuditEvents:
    """Notify everywhere configured, all at once; return audit events (event, detail).
    ``opening``: the request's first notice, tried once as a local activity. Each Slack
    message goes into ``posted`` as soon as it is known, not once every channel is done: a
    request decided while another channel still retries cancels this notice, and its Slack
    message must still be closed.

    An unconfigured channel (no webhook URL, no SMTP host) answers at once, delivering
    nothing.
    """
    try:
        if opening:
            report: NoticeReport = await workflow.execute_local_activity_method(
                ApprovalNotices.send_approval_notices,
                request,
                start_to_close_timeout=NOTICE_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        else:
            report = await workflow.execute_activity_method(
                ApprovalNotices.send_approval_notices,
                request,
                start_to_close_timeout=NOTICE_TIMEOUT,
                retry_policy=NOTICE_RETRY,
            )
    except ActivityError as err:
        if is_cancelled_exception(err):
            raise
        return [("notification_failed", f"notices: {root_message(err)}")]
    posted += [notice.slack_message for notice in report.channels if notice.slack_message]
    events = [event for notice in report.channels for event in _reported(notice)]
    retried = [notice.channel for notice in report.channels if notice.retryable]
    outcomes = await _gather([_kept(_channel_activity(c, request), posted) for c in retried])
    return events + _audit_all(retried, outcomes)


async def _kept(sending: Awaitable[ChannelDelivery], posted: list[SlackMessage]) -> ChannelDelivery:
    """A retried channel's delivery; the Slack message it posted, if any, kept at once."""
    delivery = await sending
    if isinstance(delivery, SlackDelivery) and delivery.message is not None:
        posted.append(delivery.message)
    return delivery


async def close_slack_messages(
    messages: list[SlackMessage],
    request: ApprovalRequest,
    decision: ApprovalDecision | None,
    cancelled: bool = False,
) -> AuditEvents:
    """Show the outcome in the request's Slack messages and take their buttons away. A
    local activity: one marker in history, in the task that closed the request."""
    try:
        await workflow.execute_local_activity_method(
            SlackNotifier.update_slack_messages,
            SlackClosing(
                messages=messages, request=request, decision=decision, cancelled=cancelled
            ),
            start_to_close_timeout=NOTICE_TIMEOUT,
            schedule_to_close_timeout=NOTICE_TIMEOUT,  # all attempts: a Slack outage holds
            retry_policy=SLACK_UPDATE_RETRY,  # a decided run briefly, never for minutes
        )
    except ActivityError as err:
        if is_cancelled_exception(err):
            raise
        return [("notification_failed", f"slack update: {root_message(err)}")]
    return []


def _channel_activity(
    channel: NoticeChannel, request: ApprovalRequest
) -> Awaitable[ChannelDelivery]:
    """One channel's own activity, retried by Temporal."""
    if channel == NoticeChannel.TERMINAL:
        return workflow.execute_activity(
            notify_approval_needed,
            request,
            start_to_close_timeout=NOTICE_TIMEOUT,
            retry_policy=NOTICE_RETRY,
        )
    notifier = {
        NoticeChannel.WEBHOOK: WebhookNotifier.send_webhook_notice,
        NoticeChannel.EMAIL: EmailNotifier.send_email_notice,
        NoticeChannel.SLACK: SlackNotifier.send_slack_notice,
    }[channel]
    return workflow.execute_activity_method(
        notifier, request, start_to_close_timeout=NOTICE_TIMEOUT, retry_policy=NOTICE_RETRY
    )


async def _gather(
    sending: list[Awaitable[ChannelDelivery]],
) -> list[ChannelDelivery | ActivityError]:
    """Every outcome; an activity's failure is one of them, a cancellation (of the run, or
    of a notice moot once the request closed) is not a notice failure and is raised."""
    outcomes = await asyncio.gather(*sending, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and (
            is_cancelled_exception(outcome) or not isinstance(outcome, ActivityError)
        ):
            raise outcome
    return outcomes


def _reported(notice: ChannelNotice) -> AuditEvents:
    """The audit events for one channel of ``send_approval_notices``; none for a failure
    that is retried (its own activity reports it)."""
    if notice.failed:
        failure = f"{notice.channel.value}: {notice.detail}"
        return [] if notice.retryable else [("notification_failed", failure)]
    return _delivered(notice.channel, notice.delivered, notice.detail)


def _audit_all(
    channels: list[NoticeChannel], outcomes: list[ChannelDelivery | ActivityError]
) -> AuditEvents:
    return [event for pair in zip(channels, outcomes, strict=True) for event in _audited(*pair)]


def _audited(channel: NoticeChannel, outcome: ChannelDelivery | ActivityError) -> AuditEvents:
    """The audit events for one channel's own activity."""
    if isinstance(outcome, ActivityError):
        return [("notification_failed", f"{channel.value}: {root_message(outcome)}")]
    if outcome is None:  # the terminal notice was printed
        return []
    return _delivered(channel, outcome.delivered, outcome.detail)


def _delivered(channel: NoticeChannel, delivered: bool, detail: str) -> AuditEvents:
    if not delivered or channel == NoticeChannel.TERMINAL:
        return []
    return [(DELIVERED_EVENTS[channel], detail)]


def root_message(err: BaseException) -> str:
    """The activity's own words: the first ApplicationError's message, not Temporal's
    wrapping above it nor the library error it chained below it."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.message
        cause = cause.__cause__
    return str(err)
