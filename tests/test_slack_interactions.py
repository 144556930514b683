"""Deciding from Slack: signed button presses sent to the inbox's interactions route.

The refusals (a forged signature, an old timestamp, a replay, an unmapped Slack user) are
checked in-process, with a service that records what reaches it. End to end, on the dev
server with the real worker: a request approved and one rejected from a Slack button, its
message updated in place, a second press answered "already applied" and a press on a
request already decided refused, each told only to the person who pressed.
"""

import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import httpx2
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.slack_notifier import SlackNotifier
from benchmarks.fake_openai import ok
from client.decide import Applied
from constants import SLACK_INTERACTIONS_PATH
from inbox.app import create_app
from inbox.request_limits import SLACK_BODY_BYTES
from inbox.routes import slack as routes
from inbox.service import TemporalService
from inbox.settings import InboxSettings
from models.limits import (
    MAX_ACTION_TYPE_CHARS,
    MAX_APPROVERS,
    MAX_DESCRIPTION_CHARS,
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    MAX_REASONING_CHARS,
    MAX_REQUEST_CHARS,
)
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    Outcome,
    ProposedAction,
    WorkflowState,
)
from models.tools import EffectPreview
from slack_approvals.messages import (
    APPROVE_ACTION,
    NOTES_BLOCK,
    NOTES_INPUT,
    REJECT_ACTION,
    request_message,
)
from slack_approvals.settings import SlackEndpoint
from tests.fake_slack import CHANNEL, SIGNING_SECRET, FakeSlack, sign
from tests.helpers import TimeSkippingRuns, fallback_tool_call, wait_for_state, wait_until

ALICE, BOB, STRANGER = "U0ALICE", "U0BOB", "U0STRANGER"
RISKY = {
    "action_type": "pay_vendor",
    "description": "Pay $500 to ACME",
    "reasoning": "It is what the user asked for.",
    "risky_action": True,
    "tool_call": fallback_tool_call("Pay $500 to ACME"),
}
WIDE = "\N{GRINNING FACE}"  # outside the BMP: a surrogate pair once escaped in JSON
BUTTON = '{"workflow_id": "wf-1", "request_id": "req-1", "stage": null}'


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def endpoint(tmp_path: Path) -> SlackEndpoint:
    reviewers = tmp_path / "slack-reviewers.json"
    reviewers.write_text(json.dumps({ALICE: "alice", BOB: "bob"}))
    return SlackEndpoint(SIGNING_SECRET, reviewers)


def press(
    user: str,
    action: str,
    button: str,
    response_url: str,
    notes: str | None = None,
    kind: str = "block_actions",
) -> bytes:
    """A button press as Slack sends it: ``payload=<json>``, form-encoded."""
    payload: dict[str, Any] = {
        "type": kind,
        "user": {"id": user, "team_id": "T0TEAM"},
        "actions": [{"action_id": action, "block_id": "hitl_decide", "value": button}],
        "response_url": response_url,
        "state": {"values": {NOTES_BLOCK: {NOTES_INPUT: {"type": "plain_text_input"}}}},
    }
    if notes is not None:
        payload["state"]["values"][NOTES_BLOCK][NOTES_INPUT]["value"] = notes
    return urlencode({"payload": json.dumps(payload)}).encode()


@asynccontextmanager
async def inbox(service: TemporalService, endpoint: SlackEndpoint) -> AsyncIterator[Any]:
    users = endpoint.reviewers_file.parent / "users.json"
    app = create_app(InboxSettings(users_file=users), service, slack=endpoint)
    transport = httpx2.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        yield c


async def send(client: Any, body: bytes, **signing: Any) -> httpx2.Response:
    return await client.post(SLACK_INTERACTIONS_PATH, content=body, headers=sign(body, **signing))


async def _no_temporal() -> Client:
    raise AssertionError("this test must not reach Temporal")


class Recording(TemporalService):
    """Records each decision the route sends, and applies it."""

    def __init__(self) -> None:
        super().__init__(_no_temporal)
        self.decisions: list[tuple[Any, ...]] = []

    async def decide(  # type: ignore[override]
        self, workflow_id: str, reviewer: str, approved: bool, notes: str, **where: Any
    ) -> Applied:
        self.decisions.append((workflow_id, reviewer, approved, notes, where["stage"]))
        decision = ApprovalDecision(
            request_id=where["request_id"], approved=approved, reviewer=reviewer
        )
        return Applied(decision)


async def replies(slack: FakeSlack, url: str, count: int = 1) -> list[dict[str, Any]]:
    """The messages sent to ``url`` (a press's response_url), once there are ``count``."""

    async def sent() -> list[dict[str, Any]]:
        return slack.replies(url)

    return await wait_until(sent, lambda found: len(found) >= count)


# ---- refusals, in-process -------------------------------------------------------------


async def test_a_good_press_decides_as_the_mapped_reviewer_with_the_notes(
    slack: FakeSlack, endpoint: SlackEndpoint
) -> None:
    service = Recording()
    url = slack.response_url("good")
    async with inbox(service, endpoint) as client:
        response = await send(client, press(BOB, REJECT_ACTION, BUTTON, url, "not <!here>"))
    assert response.status_code == 200
    assert service.decisions == [("wf-1", "bob", False, "not <!here>", None)]
    [told] = await replies(slack, url)
    assert told["response_type"] == "ephemeral" and told["replace_original"] is False
    assert told["text"] == "Applied: bob rejected request req-1 of wf-1."


@pytest.mark.parametrize(
    "signing",
    [
        {"secret": "another-apps-secret"},  # forged
        {"age": 6 * 60},  # replayed later: older than five minutes
        {"age": -6 * 60},  # signed "in the future"
    ],
    ids=["forged", "old-timestamp", "future-timestamp"],
)
async def test_a_press_not_signed_by_slack_just_now_is_refused(
    slack: FakeSlack, endpoint: SlackEndpoint, signing: dict[str, Any]
) -> None:
    service = Recording()
    url = slack.response_url(f"refused-{len(signing)}-{next(iter(signing.values()))}")
    if "age" in signing:  # from the moment of sending: collection may be minutes earlier
        signing = {"at": int(time.time()) - signing["age"]}
    async with inbox(service, endpoint) as client:
        response = await send(client, press(ALICE, APPROVE_ACTION, BUTTON, url), **signing)
    assert response.status_code == 401
    assert "signing secret" in response.json()["error"]
    assert service.decisions == [] and slack.replies(url) == []  # nothing sent anywhere


def largest_request() -> ApprovalRequest:
    """Every field the message shows at its limit, in the character that costs most once
    Slack sends it back: four bytes of UTF-8, twelve as JSON's escapes, sixteen in a form."""
    now = datetime.now(UTC)
    return ApprovalRequest(
        workflow_id=WIDE * 250,  # Temporal's limit: 1,000 bytes
        request_id=WIDE * MAX_NAME_CHARS,
        user_request=WIDE * MAX_REQUEST_CHARS,
        proposed_action=ProposedAction(
            action_type=WIDE * MAX_ACTION_TYPE_CHARS,
            description=WIDE * MAX_DESCRIPTION_CHARS,
            reasoning=WIDE * MAX_REASONING_CHARS,
            risky_action=True,
        ),
        risk_reasons=[WIDE * 1000] * 5,
        requested_at=now,
        deadline=now + timedelta(minutes=5),
        approvers=[WIDE * MAX_NAME_CHARS] * MAX_APPROVERS,
        stage=WIDE * MAX_NAME_CHARS,
        preview=EffectPreview(
            tool="t", summary=WIDE * 1000, affected=1, details=[WIDE * 1000], fingerprint="f"
        ),
    )


def press_on(blocks: list[dict[str, Any]], text: str, user: str, notes: str, url: str) -> bytes:
    """A press as Slack sends it: the message it was pressed on included, whole, in JSON
    with every non-ASCII character and slash escaped."""
    [value] = {e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"][:2]}
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "someone", "name": "someone", "team_id": "T0TEAM"},
        "container": {"type": "message", "message_ts": "1.2", "channel_id": CHANNEL},
        "message": {"type": "message", "text": text, "ts": "1.2", "blocks": blocks},
        "state": {"values": {NOTES_BLOCK: {NOTES_INPUT: {"type": "x", "value": notes}}}},
        "response_url": url,
        "actions": [{"action_id": APPROVE_ACTION, "block_id": "hitl_decide", "value": value}],
    }
    return urlencode({"payload": json.dumps(payload).replace("/", "\\/")}).encode()


async def test_a_press_on_the_largest_message_posted_is_taken(
    slack: FakeSlack, endpoint: SlackEndpoint
) -> None:
    """Slack sends the whole message back with each press: the route must take a press on
    any message the worker posts, however long and in whatever script its text is."""
    service = Recording()
    text, blocks = request_message(largest_request())
    body = press_on(blocks, text, ALICE, WIDE * MAX_NOTES_CHARS, slack.response_url("largest"))
    async with inbox(service, endpoint) as client:
        response = await send(client, body)
        over = await send(client, b"payload=" + b"x" * SLACK_BODY_BYTES)  # still bounded
    assert response.status_code == 200, response.text
    assert [decision[1:4] for decision in service.decisions] == [("alice", True, WIDE * 1000)]
    assert over.status_code == 413


async def test_headers_that_are_missing_or_not_numbers_are_refused_without_a_trace(
    endpoint: SlackEndpoint,
) -> None:
    body = press(ALICE, APPROVE_ACTION, BUTTON, "http://127.0.0.1:9/")
    async with inbox(Recording(), endpoint) as client:
        bare = await client.post(SLACK_INTERACTIONS_PATH, content=body)
        headers = sign(body) | {"X-Slack-Request-Timestamp": "soon"}
        garbled = await client.post(SLACK_INTERACTIONS_PATH, content=body, headers=headers)
    assert (bare.status_code, garbled.status_code) == (401, 401)


async def test_the_same_signed_press_sent_again_is_refused(
    slack: FakeSlack, endpoint: SlackEndpoint
) -> None:
    """A captured press replayed within Slack's five minutes: refused, not decided twice
    (after an amendment reset the votes, a replay would count again)."""
    service = Recording()
    url = slack.response_url("replayed")
    body = press(ALICE, APPROVE_ACTION, BUTTON, url)
    headers = sign(body)
    async with inbox(service, endpoint) as client:
        first = await client.post(SLACK_INTERACTIONS_PATH, content=body, headers=headers)
        again = await client.post(SLACK_INTERACTIONS_PATH, content=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 409)
    assert len(service.decisions) == 1


async def test_a_replay_is_refused_for_as_long_as_slack_s_timestamp_is_accepted(
    slack: FakeSlack, endpoint: SlackEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox's clock 200 s behind Slack's: a press stays valid for 500 s of the inbox's
    time, so a replay 301 s after the first is still within the timestamp check and must be
    refused by the replay check."""
    service = Recording()
    start = time.time()
    body = press(ALICE, APPROVE_ACTION, BUTTON, slack.response_url("skewed"))
    headers = sign(body, at=int(start) + 200)
    async with inbox(service, endpoint) as client:
        first = await client.post(SLACK_INTERACTIONS_PATH, content=body, headers=headers)
        later = SimpleNamespace(time=lambda: start + 301, monotonic=lambda: start + 301)
        monkeypatch.setattr("slack_sdk.signature.time", later.time)
        monkeypatch.setattr(routes, "time", later, raising=False)
        again = await client.post(SLACK_INTERACTIONS_PATH, content=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 409)
    assert len(service.decisions) == 1


async def test_an_unmapped_slack_user_is_told_privately_and_nothing_is_decided(
    slack: FakeSlack, endpoint: SlackEndpoint
) -> None:
    service = Recording()
    url = slack.response_url("unmapped")
    async with inbox(service, endpoint) as client:
        response = await send(client, press(STRANGER, APPROVE_ACTION, BUTTON, url))
    assert response.status_code == 200 and service.decisions == []
    [told] = await replies(slack, url)
    assert told["response_type"] == "ephemeral"
    assert "not mapped to a reviewer" in told["text"] and STRANGER in told["text"]


async def test_a_reviewer_removed_from_the_file_is_refused_at_once(
    slack: FakeSlack, endpoint: SlackEndpoint
) -> None:
    service = Recording()
    url = slack.response_url("removed")
    async with inbox(service, endpoint) as client:
        endpoint.reviewers_file.write_text(json.dumps({BOB: "bob"}))
        await send(client, press(ALICE, APPROVE_ACTION, BUTTON, url))
    assert service.decisions == []
    assert "not mapped" in (await replies(slack, url))[0]["text"]


@pytest.mark.parametrize("broken", ["garbled", "missing"])
async def test_a_broken_reviewers_file_is_told_as_such_and_nothing_is_decided(
    slack: FakeSlack, endpoint: SlackEndpoint, broken: str
) -> None:
    """A mapped reviewer is not told they are unmapped when it is the file that broke."""
    service = Recording()
    url = slack.response_url(f"broken-{broken}")
    async with inbox(service, endpoint) as client:
        if broken == "missing":
            endpoint.reviewers_file.unlink()
        else:
            endpoint.reviewers_file.write_text('{"U0ALICE": ')
        response = await send(client, press(ALICE, APPROVE_ACTION, BUTTON, url))
    assert response.status_code == 200 and service.decisions == []
    text = (await replies(slack, url))[0]["text"]
    assert "reviewers file cannot be used" in text and "not mapped" not in text
    assert str(endpoint.reviewers_file.parent) not in text  # the server's paths stay there


async def test_other_interactions_and_foreign_buttons_are_answered_and_ignored(
    endpoint: SlackEndpoint,
) -> None:
    service = Recording()
    url = "http://127.0.0.1:9/"
    async with inbox(service, endpoint) as client:
        other = await send(client, press(ALICE, APPROVE_ACTION, BUTTON, url, kind="shortcut"))
        foreign = await send(client, press(ALICE, "someone_elses_button", BUTTON, url))
        garbage = await send(client, press(ALICE, APPROVE_ACTION, "not json", url))
        unparsable = await send(client, b"payload=%7Bnot-json")
    assert [r.status_code for r in (other, foreign, garbage, unparsable)] == [200] * 4
    assert service.decisions == []


def test_the_route_is_not_there_without_a_signing_secret(tmp_path: Path) -> None:
    app = create_app(InboxSettings(users_file=tmp_path / "users.json"), Recording())
    assert SLACK_INTERACTIONS_PATH not in {getattr(r, "path", "") for r in app.routes}


# ---- end to end: the dev server, the real worker, the stand-in Slack ------------------


@dataclasses.dataclass
class SlackRun:
    slack: FakeSlack
    client: Any

    async def message_for(self, request_id: str, stage: str | None = None) -> dict[str, Any]:
        """The approval message posted for ``request_id`` (its ``stage``), once it is."""
        title = f", stage {stage}" if stage else "required"

        async def posted() -> dict[str, Any] | None:
            for message in self.slack.of("chat.postMessage"):
                header = message["blocks"][0]["text"]["text"]
                if request_id in json.dumps(message["blocks"]) and header.endswith(title):
                    return message
            return None

        found = await wait_until(posted, lambda message: message is not None)
        assert found is not None
        return found

    async def press(self, message: dict[str, Any], user: str, action: str, **options: Any) -> str:
        """Press ``action`` on ``message`` as Slack user ``user``; return the press's
        response_url, where the person is told the outcome."""
        actions = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
        button = next(a for a in actions if a.get("action_id") == action)["value"]
        url = self.slack.response_url(f"{user}-{time.monotonic_ns()}")
        response = await send(self.client, press(user, action, button, url, **options))
        assert response.status_code == 200, response.text
        return url


@pytest.fixture
async def slack_run(
    slack: FakeSlack, endpoint: SlackEndpoint, dev_server: WorkflowEnvironment
) -> AsyncIterator[SlackRun]:
    async def connect() -> Client:
        return dev_server.client

    async with inbox(TemporalService(connect), endpoint) as client:
        yield SlackRun(slack, client)


async def told(slack: FakeSlack, url: str) -> str:
    return (await replies(slack, url))[0]["text"]


def updates_of(slack: FakeSlack, ts: str) -> list[dict[str, Any]]:
    return [u for u in slack.of("chat.update") if u["ts"] == ts]


async def test_a_request_approved_from_slack_executes_and_its_message_shows_who(
    runs: TimeSkippingRuns, dev_server: WorkflowEnvironment, slack_run: SlackRun
) -> None:
    runs = dataclasses.replace(runs, env=dev_server)
    slack = slack_run.slack
    async with runs.worker(slack=SlackNotifier(slack.client(), CHANNEL)):
        handle = await runs.start("Pay ACME [approved from Slack]", ok(RISKY))
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        assert status.approval_request is not None
        request_id = status.approval_request.request_id
        message = await slack_run.message_for(request_id)
        url = await slack_run.press(message, ALICE, APPROVE_ACTION)
        result = await handle.result()
        assert await told(slack, url) == (
            f"Applied: alice approved request {request_id} of {runs.workflow_id}."
        )
        # A double press, once the run has moved on: the vote it counted, not a refusal.
        again = await slack_run.press(message, ALICE, APPROVE_ACTION)
        assert (await told(slack, again)).startswith(
            f"Already applied: alice approved request {request_id}"
        )
        # Someone else, on a request already decided: refused, told only to them.
        late = await slack_run.press(message, BOB, REJECT_ACTION)
        assert (await told(slack, late)).startswith("Not applied: ")

    assert result.outcome == Outcome.APPROVED and result.execution is not None
    assert result.decision is not None and result.decision.reviewer == "alice"
    events = [entry.event for entry in result.audit_trail]
    assert "slack_delivered" in events and "notification_failed" not in events
    [update] = updates_of(slack, posted_ts(result))
    assert not [b for b in update["blocks"] if b["type"] in ("actions", "input")]
    assert update["blocks"][1]["text"]["text"].startswith("Request approved by alice at ")


def posted_ts(result: Any) -> str:
    """The posted message's ts, as the audit trail recorded it ("message <ts> in <channel>")."""
    detail = next(e.detail for e in result.audit_trail if e.event == "slack_delivered")
    return detail.split()[1]


async def test_a_request_rejected_from_slack_with_notes_is_not_executed(
    runs: TimeSkippingRuns, dev_server: WorkflowEnvironment, slack_run: SlackRun
) -> None:
    runs = dataclasses.replace(runs, env=dev_server)
    slack = slack_run.slack
    async with runs.worker(slack=SlackNotifier(slack.client(), CHANNEL)):
        handle = await runs.start("Pay ACME [rejected from Slack]", ok(RISKY))
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        assert status.approval_request is not None
        message = await slack_run.message_for(status.approval_request.request_id)
        url = await slack_run.press(message, BOB, REJECT_ACTION, notes="Not <!channel> this week")
        result = await handle.result()
        assert (await told(slack, url)).startswith("Applied: bob rejected request ")

    assert result.outcome == Outcome.REJECTED and result.execution is None
    assert result.decision is not None
    assert result.decision.reviewer_notes == "Not <!channel> this week"  # as written
    [update] = updates_of(slack, posted_ts(result))
    outcome = update["blocks"][1]["text"]["text"]
    assert outcome.startswith("Request rejected by bob at ")
    assert outcome.endswith("Notes: Not &lt;!channel&gt; this week")  # shown, never a ping


async def test_a_staged_request_is_decided_stage_by_stage_from_slack_by_its_members(
    runs: TimeSkippingRuns, dev_server: WorkflowEnvironment, slack_run: SlackRun
) -> None:
    """Each stage posts its own message; a press decides that stage only, by its members."""
    runs = dataclasses.replace(runs, env=dev_server)
    slack = slack_run.slack
    members = {"manager": ["alice"], "director": ["bob"]}
    async with runs.worker(slack=SlackNotifier(slack.client(), CHANNEL)):
        handle = await runs.start(
            "Pay ACME [staged from Slack]",
            ok(RISKY),
            approval_stages=["manager", "director"],
            stage_approvers=members,
        )
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        assert status.approval_request is not None
        request_id = status.approval_request.request_id
        manager = await slack_run.message_for(request_id, "manager")
        url = await slack_run.press(manager, ALICE, APPROVE_ACTION)
        assert (await told(slack, url)).startswith("Applied: alice approved stage manager")
        director = await slack_run.message_for(request_id, "director")
        refused = await slack_run.press(director, ALICE, APPROVE_ACTION)  # not a director
        assert (await told(slack, refused)).startswith("Not applied: ")
        await slack_run.press(director, BOB, APPROVE_ACTION)
        result = await handle.result()

    assert result.outcome == Outcome.APPROVED and result.execution is not None
    texts = [u["blocks"][1]["text"]["text"] for u in slack.of("chat.update")]
    assert any(t.startswith("Stage manager approved by alice at ") for t in texts)
    assert any(t.startswith("Stage director approved by bob at ") for t in texts)


def test_the_app_manifest_sends_presses_to_the_route() -> None:
    manifest = (Path(__file__).parent.parent / "slack_approvals" / "manifest.yaml").read_text()
    assert f"request_url: https://inbox.example.com{SLACK_INTERACTIONS_PATH}\n" in manifest
    assert "- chat:write " in manifest
