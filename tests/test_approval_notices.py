"""One activity for every notice channel: each channel is tried once and reported on its own,
and the workflow retries only a channel that failed, with that channel's own activity.

The opening notice is a local activity (one marker in history); a retried channel is a
regular activity, retried by Temporal."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx2
import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment

from activities.send_approval_notices import ApprovalNotices, _attempt
from activities.send_email_notice import EmailNotifier
from activities.send_webhook_notice import WebhookNotifier
from constants import SLACK_BOT_TOKEN_ENV, SMTP_HOST_ENV
from models.models import ChannelNotice, NoticeChannel, Outcome, WorkflowInput, WorkflowState
from tests.helpers import TimeSkippingRuns, status_of, wait_for_state, wait_until
from tests.test_email_notifier import Inbox, settings, smtp_server  # noqa: F401 - fixture
from tests.test_webhook_notifier import (  # noqa: F401 - fixtures
    Receiver,
    approval_request,
    approve,
    has_event,
    receiver,
    risky_request,
    run_notifying,
)
from tests.test_workflow import scheduled_activities

NOTICE = "APPROVAL REQUIRED"


async def regular_notice_activities(handle: WorkflowHandle) -> list[str]:
    """The notice activities the run scheduled as regular activities (not local ones)."""
    history = await handle.fetch_history()
    return [
        name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and "notice" in (name := event.activity_task_scheduled_event_attributes.activity_type.name)
    ]


@asynccontextmanager
async def notices(webhook_url: str | None, smtp_port: int | None) -> AsyncIterator[ApprovalNotices]:
    async with httpx2.AsyncClient(timeout=10) as http:
        email = EmailNotifier(settings(smtp_port) if smtp_port is not None else None)
        yield ApprovalNotices(WebhookNotifier(webhook_url, None, http), email)


async def test_every_channel_is_tried_once_and_reported_on_its_own(
    receiver: Receiver,  # noqa: F811 - the fixture
    smtp_server: tuple[Inbox, int],  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
) -> None:
    inbox, port = smtp_server
    receiver.answer(503)
    async with notices(receiver.url, port) as sender:
        report = await ActivityEnvironment().run(sender.send_approval_notices, approval_request())
    terminal, webhook, email, _ = report.channels
    assert terminal == ChannelNotice(channel=NoticeChannel.TERMINAL, delivered=True)
    assert webhook == ChannelNotice(
        channel=NoticeChannel.WEBHOOK,
        failed=True,
        retryable=True,
        detail=f"webhook at {receiver.host} answered HTTP 503",
    )
    assert email.delivered and not email.failed
    assert email.detail == f"to approvers@example.com, oncall@example.com via 127.0.0.1:{port}"
    assert capsys.readouterr().out.count(NOTICE) == 1
    assert len(receiver.requests) == 1 and len(inbox.messages) == 1


async def test_a_refusal_is_not_retryable_and_an_unconfigured_channel_sends_nothing(
    receiver: Receiver,  # noqa: F811 - the fixture
) -> None:
    receiver.always(404)
    async with notices(receiver.url, None) as sender:
        report = await ActivityEnvironment().run(sender.send_approval_notices, approval_request())
    _, webhook, email, slack = report.channels
    assert webhook.failed and not webhook.retryable
    assert email == ChannelNotice(channel=NoticeChannel.EMAIL, detail=f"{SMTP_HOST_ENV} is not set")
    assert slack == ChannelNotice(
        channel=NoticeChannel.SLACK, detail=f"{SLACK_BOT_TOKEN_ENV} is not set"
    )


async def test_an_unexpected_error_is_reported_as_retryable() -> None:
    """As Temporal retries an activity that raised anything but a non-retryable
    ``ApplicationError``."""

    async def broken() -> None:
        raise RuntimeError("the notifier broke")

    notice = await ActivityEnvironment().run(_attempt, NoticeChannel.EMAIL, broken())
    assert notice == ChannelNotice(
        channel=NoticeChannel.EMAIL, failed=True, retryable=True, detail="the notifier broke"
    )


async def test_a_run_retries_only_the_channel_that_failed_and_prints_its_notice_once(
    runs: TimeSkippingRuns,
    risky_request: str,  # noqa: F811 - the fixture
    receiver: Receiver,  # noqa: F811 - the fixture
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The webhook fails in the notices' activity and once more in its own, then is
    delivered; the terminal notice went out in the first and is not repeated."""
    receiver.answer(500, 500)
    async with run_notifying(runs, receiver, WorkflowInput(user_request=risky_request)) as handle:
        await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        await runs.env.sleep(timedelta(seconds=5))  # past the retry's backoff
        status = await wait_until(lambda: status_of(handle), has_event("webhook_delivered"))
        await approve(handle, status)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert len(receiver.requests) == 3
    notices_sent = [name for name in await scheduled_activities(handle) if "notice" in name]
    assert notices_sent == ["send_approval_notices", "send_webhook_notice"]
    # The opening notice was local; only the failed channel was scheduled on its own.
    assert await regular_notice_activities(handle) == ["send_webhook_notice"]
    assert capsys.readouterr().out.count(NOTICE) == 1


async def test_a_run_whose_channels_all_answer_schedules_one_notice_activity(
    runs: TimeSkippingRuns,
    risky_request: str,  # noqa: F811 - the fixture
    receiver: Receiver,  # noqa: F811 - the fixture
) -> None:
    async with run_notifying(runs, receiver, WorkflowInput(user_request=risky_request)) as handle:
        status = await wait_until(lambda: status_of(handle), has_event("webhook_delivered"))
        await approve(handle, status)
        assert (await handle.result()).outcome == Outcome.APPROVED
    activities = await scheduled_activities(handle)
    assert [name for name in activities if "notice" in name] == ["send_approval_notices"]
    assert await regular_notice_activities(handle) == []  # a local activity: one marker


async def test_an_unexpected_error_without_a_message_is_named_by_its_type() -> None:
    async def timed_out() -> None:
        raise TimeoutError

    notice = await ActivityEnvironment().run(_attempt, NoticeChannel.WEBHOOK, timed_out())
    assert notice.failed and notice.retryable and notice.detail == "TimeoutError"
