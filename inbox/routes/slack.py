"""The route Slack sends button presses to: verified, mapped to a reviewer, then decided.

A press counts only if Slack signed it (its signing secret, checked by Slack's SDK) less
than five minutes ago, and only once: the same signed body sent again is refused, so a
captured press cannot be replayed, e.g. after an amendment reset the votes. The Slack user
must be in the reviewers file; the decision then goes through the inbox's own
``decide``, the path the inbox and ``send_approval`` take, so the workflow judges
it by the same rules (approvers, stages, quorum, no self-approval) and a double press is
answered "already applied". Slack wants an answer within three seconds, so the route
answers at once and the person is told the outcome afterwards, in a message only they see
(the press's ``response_url``). The message itself is updated by the workflow when the
request closes, however it was decided.
"""

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.webhook import WebhookClient

from constants import SLACK_INTERACTIONS_PATH, SLACK_REVIEWERS_ENV
from inbox.service import NotFoundError, RefusedError, TemporalService, UnavailableError
from models.models import ApprovalDecision
from slack_approvals.messages import (
    APPROVE_ACTION,
    DECIDE_ACTIONS,
    NOTES_BLOCK,
    NOTES_INPUT,
    ButtonValue,
    slack_text,
)
from slack_approvals.settings import SlackEndpoint, SlackSettingsError

log = logging.getLogger("slack_approvals")
SIGNATURE_SECONDS = 5 * 60  # Slack's own rule, which its SDK applies
REPLY_SECONDS = 10
UNUSABLE_REVIEWERS = (
    "Nothing was decided: the inbox's Slack reviewers file cannot be used just now. "
    "Tell whoever runs the approvals; its log says why."
)


class Press(BaseModel):
    """One Approve or Reject press, as read from Slack's signed payload."""

    slack_user: str
    button: ButtonValue
    approved: bool
    notes: str
    response_url: str | None


def read_press(body: bytes) -> Press | None:
    """The press in a ``block_actions`` payload; None for anything else Slack sends (the
    notes field's own events, another app's shortcut), which is answered and ignored."""
    try:
        [payload] = parse_qs(body.decode(), strict_parsing=True)["payload"]
        interaction = _Interaction.model_validate_json(payload)
    except (ValueError, KeyError, ValidationError):
        return None
    ours = [a for a in interaction.actions if a.action_id in DECIDE_ACTIONS]
    if interaction.type != "block_actions" or len(ours) != 1:
        return None
    button = ButtonValue.parse(ours[0].value)
    if button is None:
        return None
    notes_field = (interaction.state or _State()).values.get(NOTES_BLOCK, {}).get(NOTES_INPUT)
    return Press(
        slack_user=interaction.user.id,
        button=button,
        approved=ours[0].action_id == APPROVE_ACTION,
        notes=(notes_field.value or "") if notes_field else "",
        response_url=interaction.response_url,
    )


class _User(BaseModel):
    id: str


class _Action(BaseModel):
    action_id: str
    value: str = ""


class _Field(BaseModel):
    value: str | None = None


class _State(BaseModel):
    values: dict[str, dict[str, _Field]] = {}


class _Interaction(BaseModel):
    type: str
    user: _User
    actions: list[_Action] = []
    response_url: str | None = None
    state: _State | None = None


class SeenSignatures:
    """Signatures of the presses taken, each kept until the timestamp check would refuse
    its body anyway: five minutes after Slack's timestamp, on the clock that check reads.
    (Kept by when it arrived instead, a clock behind Slack's would let a replay in.)"""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}

    def first(self, signature: str, timestamp: str) -> bool:
        now = self._clock.now()
        self._seen = {s: until for s, until in self._seen.items() if until >= now}
        if signature in self._seen:
            return False
        self._seen[signature] = int(timestamp) + SIGNATURE_SECONDS
        return True


def slack_router(endpoint: SlackEndpoint, service: TemporalService) -> APIRouter:
    router = APIRouter()
    verifier = SignatureVerifier(endpoint.signing_secret)
    seen = SeenSignatures(verifier.clock)

    @router.post(SLACK_INTERACTIONS_PATH)
    async def interaction(request: Request, background: BackgroundTasks) -> Response:
        body = await request.body()
        signature = request.headers.get("X-Slack-Signature")
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        if not _signed(verifier, body, timestamp, signature):
            return _refused(401, "not signed by Slack with this app's signing secret, or stale")
        assert signature is not None and timestamp is not None
        if not seen.first(signature, timestamp):
            return _refused(409, "this press was already received; a replay is not taken")
        press = read_press(body)
        if press is None:
            return Response(status_code=200)
        try:
            reviewer = endpoint.reviewer(press.slack_user)
        except SlackSettingsError as err:  # the file broke since the start: the log says how
            log.error("Slack press not taken: %s", err)
            background.add_task(reply, press, UNUSABLE_REVIEWERS)
            return Response(status_code=200)
        if reviewer is None:
            log.warning("Slack user %s pressed a button but is not mapped", press.slack_user)
            background.add_task(reply, press, unmapped_message(press.slack_user))
        else:
            background.add_task(decide_and_reply, service, press, reviewer)
        return Response(status_code=200)

    return router


def _signed(
    verifier: SignatureVerifier, body: bytes, timestamp: str | None, signature: str | None
) -> bool:
    try:
        return verifier.is_valid(body, timestamp, signature)
    except ValueError:  # a timestamp that is not a number
        return False


def _refused(status: int, reason: str) -> Response:
    return JSONResponse({"error": reason}, status_code=status)


def unmapped_message(slack_user: str) -> str:
    return (
        f"Nothing was decided: your Slack account ({slack_user}) is not mapped to a reviewer. "
        f"Ask whoever runs the approvals to add it to the {SLACK_REVIEWERS_ENV} file."
    )


async def decide_and_reply(service: TemporalService, press: Press, reviewer: str) -> None:
    try:
        text = await decided_text(service, press, reviewer)
    except Exception:  # the press was answered already: the person still gets a word
        log.exception("Slack decision for %s failed", press.button.workflow_id)
        text = "Something went wrong while sending your decision; it was logged. Check the inbox."
    await reply(press, text)


async def decided_text(service: TemporalService, press: Press, reviewer: str) -> str:
    """What to tell the person who pressed: applied, already applied, or why not."""
    button = press.button
    try:
        applied = await service.decide(
            button.workflow_id,
            reviewer,
            press.approved,
            press.notes,
            request_id=button.request_id,
            stage=button.stage,
        )
    except RefusedError as refused:
        earlier = await counted_before(service, press, reviewer)
        if earlier is None:
            return f"Not applied: {refused}"
        return _applied_text(earlier, button, earlier=True)
    except (NotFoundError, UnavailableError) as err:
        return f"Not applied: {err}"
    return _applied_text(applied.decision, button, earlier=applied.earlier)


async def counted_before(
    service: TemporalService, press: Press, reviewer: str
) -> ApprovalDecision | None:
    """The same vote, counted before the request closed: a second press that arrives once
    the run moved on is a repeat, not a refusal. (A stage's repeats are found by
    ``deliver_to_stage``.)"""
    try:
        status = await service.status(press.button.workflow_id)
    except (NotFoundError, UnavailableError):
        return None
    votes = [*status.votes, *([status.decision] if status.decision else [])]
    for vote in votes:
        if (vote.request_id, vote.reviewer, vote.approved) == (
            press.button.request_id,
            reviewer,
            press.approved,
        ):
            return vote
    return None


def _applied_text(decision: ApprovalDecision, button: ButtonValue, *, earlier: bool) -> str:
    verdict = "approved" if decision.approved else "rejected"
    what = f"request {button.request_id} of {button.workflow_id}"
    if button.stage:
        what = f"stage {button.stage} of {what}"
    if earlier:
        when = decision.decided_at.isoformat(timespec="seconds") if decision.decided_at else "-"
        return f"Already applied: {decision.reviewer} {verdict} {what} at {when}."
    return f"Applied: {decision.reviewer} {verdict} {what}."


async def reply(press: Press, text: str) -> None:
    """A message only the person who pressed sees, under the approval message."""
    if press.response_url is None:
        return
    client = WebhookClient(press.response_url, timeout=REPLY_SECONDS)
    body: dict[str, Any] = {
        "text": slack_text(text, 2000),
        "response_type": "ephemeral",
        "replace_original": False,
        "mrkdwn": False,
    }
    try:
        response = await asyncio.to_thread(client.send_dict, body)
    except OSError as err:
        log.warning("Slack reply not delivered: %s", type(err).__name__)
        return
    if response.status_code >= 300:
        log.warning("Slack reply refused: HTTP %s", response.status_code)
