"""A decision that comes while a notice is still being sent: the notice is moot and
cancelled, and the run goes on with the decision.

Cancelling a notice raises the activity's cancellation (an ``ActivityError`` whose cause is
the cancellation, not ``asyncio.CancelledError``) where the window waits for it to stop. It
once escaped the window, and the run took it for its own cancellation: an approved request
ended ``cancelled``, nothing executed. A webhook that is down (its notice retrying), or a
run evicted from a full cache before its opening notice was recorded (the notice is then
sent again in the task that brings the decision), was enough.
"""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from temporalio.testing import WorkflowEnvironment

from activities.send_webhook_notice import WebhookNotifier
from activities.slack_notifier import SlackNotifier
from benchmarks.fake_openai import ok
from constants import SUBMIT_DECISION_UPDATE
from models.models import EscalationPolicy, Outcome, WorkflowState
from tests.fake_slack import CHANNEL, FakeSlack
from tests.helpers import (
    TimeSkippingRuns,
    fallback_tool_call,
    status_of,
    wait_for_state,
    wait_until,
)
from tests.record_histories import decision_for

SLOW_WEBHOOK_SECONDS = 4.0
RISKY = {
    "action_type": "pay_vendor",
    "description": "Pay $500 to ACME",
    "reasoning": "It is what the user asked for.",
    "risky_action": True,
    "tool_call": fallback_tool_call("Pay $500 to ACME"),
}


@asynccontextmanager
async def webhook_down() -> AsyncIterator[WebhookNotifier]:
    """A webhook that answers 503 every time: its notice retries with back-off."""
    async with httpx2.AsyncClient(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(503))
    ) as http:
        yield WebhookNotifier("https://hooks.example.test/down", None, http)


async def test_an_approval_while_the_notice_retries_is_executed_not_cancelled(
    runs: TimeSkippingRuns, dev_server: WorkflowEnvironment
) -> None:
    """On the dev server, whose clock is real: the notice's retries back off for seconds
    (the time-skipping server would skip them before the decision arrives)."""
    runs = dataclasses.replace(runs, env=dev_server)
    async with webhook_down() as notifier, runs.worker(notifier=notifier):
        handle = await runs.start("Pay ACME [notice retrying]", ok(RISKY))
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        assert status.approval_request is not None
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE,
            decision_for(status.approval_request, approved=True, reviewer="ann"),
        )
        result = await handle.result()

    events = [entry.event for entry in result.audit_trail]
    assert result.outcome == Outcome.APPROVED, result.audit_trail
    assert "notification_cancelled" in events and "cancelled" not in events
    assert result.execution is not None


@asynccontextmanager
async def webhook_slow(seconds: float) -> AsyncIterator[WebhookNotifier]:
    """A webhook that takes ``seconds`` to answer."""

    async def answer(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(seconds)
        return httpx2.Response(204)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        yield WebhookNotifier("https://hooks.example.test/slow", None, http)


async def test_an_approval_while_the_escalation_notice_is_sent_is_executed_not_cancelled(
    runs: TimeSkippingRuns, dev_server: WorkflowEnvironment
) -> None:
    """The request escalates after a second; its reminder takes seconds to post (a slow
    webhook), and the new tier approves meanwhile."""
    runs = dataclasses.replace(runs, env=dev_server)
    escalation = EscalationPolicy(after_seconds=1, approvers=["boss"])
    async with webhook_slow(SLOW_WEBHOOK_SECONDS) as notifier, runs.worker(notifier=notifier):
        handle = await runs.start(
            "Pay ACME [escalation notice slow]", ok(RISKY), approvers=["ann"], escalation=escalation
        )
        status = await wait_until(
            lambda: status_of(handle),
            lambda s: s.approval_request is not None and s.approval_request.escalated,
            timeout=SLOW_WEBHOOK_SECONDS * 3,
        )
        assert status.approval_request is not None
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE,
            decision_for(status.approval_request, approved=True, reviewer="boss"),
        )
        result = await handle.result()

    events = [entry.event for entry in result.audit_trail]
    assert result.outcome == Outcome.APPROVED, result.audit_trail
    assert "notification_cancelled" in events and "cancelled" not in events
    assert result.execution is not None


async def test_a_slack_message_posted_while_the_webhook_retries_is_closed_once_decided(
    runs: TimeSkippingRuns, dev_server: WorkflowEnvironment
) -> None:
    """Slack took the message at once; the webhook is down, its notice retrying when the
    request is approved. The message posted must still show the outcome, buttons gone."""
    runs = dataclasses.replace(runs, env=dev_server)
    slack = FakeSlack().start()
    try:
        async with (
            webhook_down() as notifier,
            runs.worker(notifier=notifier, slack=SlackNotifier(slack.client(), CHANNEL)),
        ):
            handle = await runs.start("Pay ACME [webhook down, Slack up]", ok(RISKY))
            status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
            assert status.approval_request is not None
            await handle.execute_update(
                SUBMIT_DECISION_UPDATE,
                decision_for(status.approval_request, approved=True, reviewer="ann"),
            )
            result = await handle.result()
        posted, updates = slack.of("chat.postMessage"), slack.of("chat.update")
    finally:
        slack.stop()
    assert result.outcome == Outcome.APPROVED, result.audit_trail
    assert len(posted) == 1
    [update] = updates  # the posted message, closed
    assert update["blocks"][1]["text"]["text"].startswith("Request approved by ann at ")
    assert "notification_cancelled" in [entry.event for entry in result.audit_trail]


async def test_a_run_cancelled_while_waiting_closes_its_slack_message(
    runs: TimeSkippingRuns,
) -> None:
    """A cancelled request can no longer be decided: its message says so, buttons gone, so
    nobody presses Approve on a run that will never act."""
    slack = FakeSlack().start()
    try:
        async with runs.worker(slack=SlackNotifier(slack.client(), CHANNEL)):
            handle = await runs.start("Pay ACME [cancelled in Slack's sight]", ok(RISKY))
            await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
            await wait_until(lambda: asyncio.sleep(0, slack.of("chat.postMessage")), bool)
            await handle.cancel()
            result = await handle.result()
    finally:
        slack.stop()
    assert result.outcome == Outcome.CANCELLED, result.audit_trail
    [update] = slack.of("chat.update")
    assert not [b for b in update["blocks"] if b["type"] in ("actions", "input")]
    assert update["blocks"][1]["text"]["text"] == (
        "Request was cancelled while it waited: nothing was approved."
    )
