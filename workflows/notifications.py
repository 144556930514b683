"""Sending an approval notice from workflow code: to the worker's terminal and the webhook.

Shared by the main workflow (first notice, escalation reminder) and each approval stage.
A failed notice never fails the run: the request can still be found (status query,
ApprovalStatus search attribute) and decided, so failures are returned for the audit trail.
"""

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.email_notifier import EmailNotifier
    from activities.notify_approval_needed import notify_approval_needed
    from activities.webhook_notifier import WebhookNotifier
    from models.models import ApprovalRequest, EmailDelivery, WebhookDelivery
    from workflows.patches import Patches

NOTICE_TIMEOUT = timedelta(seconds=30)
# Runs that opened a request before this patch sent no e-mail; later ones do.
EMAIL_NOTICES_PATCH = "email-notices"
NOTICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)


async def send_notices(request: ApprovalRequest, patches: Patches) -> list[tuple[str, str]]:
    """Notify everywhere configured, all at once; return audit events (event, detail).
    ``patches`` are the calling run's (the main workflow's, or the stage's own).

    Running the activities concurrently saves the run a workflow task before it parks. An
    unconfigured channel (no webhook URL, no SMTP host) answers at once, delivering nothing.
    """
    notices = [
        workflow.execute_activity(
            notify_approval_needed,
            request,
            start_to_close_timeout=NOTICE_TIMEOUT,
            retry_policy=NOTICE_RETRY,
        ),
        workflow.execute_activity_method(
            WebhookNotifier.send_webhook_notice,
            request,
            start_to_close_timeout=NOTICE_TIMEOUT,
            retry_policy=NOTICE_RETRY,
        ),
    ]
    if patches.applied(EMAIL_NOTICES_PATCH):
        notices.append(
            workflow.execute_activity_method(
                EmailNotifier.send_email_notice,
                request,
                start_to_close_timeout=NOTICE_TIMEOUT,
                retry_policy=NOTICE_RETRY,
            )
        )
    terminal, *channels = await asyncio.gather(*notices, return_exceptions=True)
    for outcome in (terminal, *channels):
        if isinstance(outcome, BaseException) and not isinstance(outcome, ActivityError):
            raise outcome  # e.g. the run was cancelled: not a notice failure to swallow
    events: list[tuple[str, str]] = []
    if isinstance(terminal, ActivityError):
        events.append(("notification_failed", f"terminal notice: {root_message(terminal)}"))
    for name, outcome in zip(("webhook", "e-mail"), channels, strict=False):
        if isinstance(outcome, ActivityError):
            events.append(("notification_failed", f"{name}: {root_message(outcome)}"))
        elif isinstance(outcome, WebhookDelivery) and outcome.delivered:
            events.append(("webhook_delivered", outcome.detail))
        elif isinstance(outcome, EmailDelivery) and outcome.delivered:
            events.append(("email_delivered", outcome.detail))
    return events


def root_message(err: BaseException) -> str:
    """The activity's own words: the first ApplicationError's message, not Temporal's
    wrapping above it nor the library error it chained below it."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause.message
        cause = cause.__cause__
    return str(err)
