"""The Slack notice: what is posted (plain text, buttons, notes, the waiting stage), what a
failed post says to Temporal, and the message once the request closed. Against a stand-in
Slack Web API on 127.0.0.1, through the real ``slack_sdk`` client."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.slack_notifier import SlackNotifier
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    ProposedAction,
    SlackClosing,
    SlackMessage,
)
from slack_approvals.messages import (
    APPROVE_ACTION,
    NOTES_BLOCK,
    REJECT_ACTION,
    ButtonValue,
    slack_text,
)
from tests.fake_slack import CHANNEL, FakeSlack

HOSTILE = "<!channel> *urgent* <https://evil.example|click> & <@U0BOSS> `x`"


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


def request(stage: str | None = None, text: str = HOSTILE) -> ApprovalRequest:
    now = datetime.now(UTC)
    workflow_id = "wf-slack" + (f"/stage/req-1/1-{stage}" if stage else "")
    return ApprovalRequest(
        workflow_id=workflow_id,
        request_id="req-1",
        user_request=text,
        proposed_action=ProposedAction(
            action_type="pay_vendor", description=text, reasoning=text, risky_action=True
        ),
        risk_reasons=[text],
        requested_at=now,
        deadline=now + timedelta(minutes=5),
        stage=stage,
    )


def texts(blocks: list[dict]) -> list[dict]:
    """Every text object in ``blocks``, wherever it sits."""
    found: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("plain_text", "mrkdwn"):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


async def test_the_notice_posts_the_request_as_plain_text_with_buttons_and_notes(
    slack: FakeSlack,
) -> None:
    notifier = SlackNotifier(slack.client(), CHANNEL)
    delivery = await ActivityEnvironment().run(notifier.send_slack_notice, request())

    assert delivery.delivered and delivery.message is not None
    posted = slack.of("chat.postMessage")[-1]
    assert posted["channel"] == CHANNEL and posted["mrkdwn"] is False
    blocks = posted["blocks"]
    # Nothing anyone wrote is read as markup: plain text only, escaped as Slack asks.
    assert all(t["type"] == "plain_text" for t in texts(blocks))
    dumped = json.dumps(blocks)
    assert "<!channel>" not in dumped and "<https://" not in dumped and "<@U0BOSS>" not in dumped
    assert "&lt;!channel&gt;" in dumped and "&amp;" in dumped
    actions = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [a.get("action_id") for a in actions] == [APPROVE_ACTION, REJECT_ACTION]
    value = ButtonValue.model_validate_json(actions[0]["value"])
    assert (value.workflow_id, value.request_id, value.stage) == ("wf-slack", "req-1", None)
    assert any(b.get("block_id") == NOTES_BLOCK for b in blocks)
    assert "<" not in posted["text"]


async def test_a_staged_request_shows_its_waiting_stage_and_its_buttons_decide_that_stage(
    slack: FakeSlack,
) -> None:
    notifier = SlackNotifier(slack.client(), CHANNEL)
    await ActivityEnvironment().run(notifier.send_slack_notice, request(stage="cfo"))
    blocks = slack.of("chat.postMessage")[-1]["blocks"]
    assert "stage cfo" in blocks[0]["text"]["text"]
    assert any(t["text"] == "Waiting stage:\ncfo" for t in texts(blocks))
    value = ButtonValue.model_validate_json(
        next(b for b in blocks if b["type"] == "actions")["elements"][0]["value"]
    )
    assert (value.workflow_id, value.stage) == ("wf-slack", "cfo")  # the run, bound to the stage


async def test_without_slack_configured_nothing_is_posted(slack: FakeSlack) -> None:
    before = len(slack.calls)
    delivery = await ActivityEnvironment().run(
        SlackNotifier(None, None).send_slack_notice, request()
    )
    assert not delivery.delivered and len(slack.calls) == before


@pytest.mark.parametrize(
    ("error", "status", "retryable"),
    [("channel_not_found", 200, False), ("invalid_auth", 200, False), ("ratelimited", 429, True)],
)
async def test_a_refused_post_is_retried_only_when_another_attempt_can_succeed(
    slack: FakeSlack, error: str, status: int, retryable: bool
) -> None:
    slack.fail("chat.postMessage", error, status)
    notifier = SlackNotifier(slack.client(), CHANNEL)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(notifier.send_slack_notice, request())
    assert error in raised.value.message and raised.value.non_retryable is not retryable
    assert "xoxb-test" not in raised.value.message


async def test_an_unreachable_slack_is_retried() -> None:
    unreachable = WebClient(
        token="xoxb-test", base_url="http://127.0.0.1:9/api/", retry_handlers=[]
    )
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(
            SlackNotifier(unreachable, CHANNEL).send_slack_notice, request()
        )
    assert not raised.value.non_retryable and "unreachable" in raised.value.message


async def test_the_closed_request_shows_who_decided_when_and_no_buttons(slack: FakeSlack) -> None:
    notifier = SlackNotifier(slack.client(), CHANNEL)
    messages = [SlackMessage(channel=CHANNEL, ts="1.1"), SlackMessage(channel=CHANNEL, ts="1.2")]
    decided_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    decision = ApprovalDecision(
        request_id="req-1",
        approved=False,
        reviewer="alice",
        reviewer_notes="<!here> not this week",
        decided_at=decided_at,
    )
    closing = SlackClosing(messages=messages, request=request(), decision=decision)
    await ActivityEnvironment().run(notifier.update_slack_messages, closing)

    updates = slack.of("chat.update")[-2:]
    assert [u["ts"] for u in updates] == ["1.1", "1.2"]
    blocks = updates[0]["blocks"]
    assert not [b for b in blocks if b["type"] in ("actions", "input")]
    assert blocks[1]["text"]["text"] == (
        "Request rejected by alice at 2030-01-02T03:04:05+00:00.\n"
        "Notes: &lt;!here&gt; not this week"
    )


async def test_a_request_that_timed_out_says_so(slack: FakeSlack) -> None:
    notifier = SlackNotifier(slack.client(), CHANNEL)
    closing = SlackClosing(
        messages=[SlackMessage(channel=CHANNEL, ts="2.1")], request=request(stage="cfo")
    )
    await ActivityEnvironment().run(notifier.update_slack_messages, closing)
    text = slack.of("chat.update")[-1]["blocks"][1]["text"]["text"]
    assert text.startswith("Stage cfo timed out at ") and "nothing was approved" in text


def test_long_text_is_cut_to_slacks_limit_never_inside_an_entity() -> None:
    text = slack_text("a" * 995 + "&&&&&&&&", 1000)
    assert len(text) <= 1000 and text.endswith("…")
    assert text.rstrip("…").endswith(("&amp;", "a"))
    assert slack_text("line one\nline two\x1b[31m") == "line one\nline two\\x1b[31m"
