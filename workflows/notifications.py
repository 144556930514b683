"""Sending an approval notice from workflow code: to the terminal, the webhook and e-mail.

Shared by the main workflow (first notice, escalation reminder) and each approval stage.
A failed notice never fails the run: the request can still be found (status query,
ApprovalStatus search attribute) and decided, so failures are returned for the audit trail.

A run of ``ONE_NOTICE_VERSION_PATCH`` or later sends every channel in one activity
(``activities/approval_notices.py``) and retries only a channel that failed, with that
channel's own activity; older runs schedule one activity per channel, as they did.
"""

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.approval_notices import ApprovalNotices, ChannelDelivery
    from activities.email_notifier import EmailNotifier
    from activities.notify_approval_needed import notify_approval_needed
    from activities.webhook_notifier import WebhookNotifier
    from constants import ONE_NOTICE_VERSION_PATCH
    from models.models import ApprovalRequest, ChannelNotice, NoticeChannel, NoticeReport
    from workflows.patches import Patches

NOTICE_TIMEOUT = timedelta(seconds=30)
# Runs that opened a request before this patch sent no e-mail; later ones do.
EMAIL_NOTICES_PATCH = "email-notices"
NOTICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)
AuditEvents = list[tuple[str, str]]


async def send_notices(request: ApprovalRequest, patches: Patches) -> AuditEvents:
    """Notify everywhere configured, all at once; return audit events (event, detail).
    ``patches`` are the calling run's (the main workflow's, or the stage's own).

    An unconfigured channel (no webhook URL, no SMTP host) answers at once, delivering
    nothing.
    """
    if not patches.since(ONE_NOTICE_VERSION_PATCH):
        return await _one_activity_per_channel(request, patches)
    try:
        report: NoticeReport = await workflow.execute_activity_method(
            ApprovalNotices.send_approval_notices,
            request,
            start_to_close_timeout=NOTICE_TIMEOUT,
            retry_policy=NOTICE_RETRY,
        )
    except ActivityError as err:
        return [("notification_failed", f"notices: {root_message(err)}")]
    events = [event for notice in report.channels for event in _reported(notice)]
    retried = [notice.channel for notice in report.channels if notice.retryable]
    outcomes = await _gather([_channel_activity(channel, request) for channel in retried])
    return events + _audit_all(retried, outcomes)


async def _one_activity_per_channel(request: ApprovalRequest, patches: Patches) -> AuditEvents:
    """How runs of an earlier version notify: an activity per channel, side by side (which
    saves the run a workflow task before it parks, against one after the other)."""
    channels = [NoticeChannel.TERMINAL, NoticeChannel.WEBHOOK]
    if patches.applied(EMAIL_NOTICES_PATCH):
        channels.append(NoticeChannel.EMAIL)
    outcomes = await _gather([_channel_activity(channel, request) for channel in channels])
    return _audit_all(channels, outcomes)


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
    notifier = (
        WebhookNotifier.send_webhook_notice
        if channel == NoticeChannel.WEBHOOK
        else EmailNotifier.send_email_notice
    )
    return workflow.execute_activity_method(
        notifier, request, start_to_close_timeout=NOTICE_TIMEOUT, retry_policy=NOTICE_RETRY
    )


async def _gather(
    sending: list[Awaitable[ChannelDelivery]],
) -> list[ChannelDelivery | ActivityError]:
    """Every outcome; an activity's failure is one of them, anything else (the run was
    cancelled, say) is not a notice failure to swallow and is raised."""
    outcomes = await asyncio.gather(*sending, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, ActivityError):
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
    event = "webhook_delivered" if channel == NoticeChannel.WEBHOOK else "email_delivered"
    return [(event, detail)]


def root_message(err: BaseException) -> str:
    """The activity's own words: the first ApplicationError's message, not Temporal's
    wrapping above it nor the library error it chained below it."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.message
        cause = cause.__cause__
    return str(err)
