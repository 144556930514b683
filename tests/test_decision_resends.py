"""Every sending of a decision is an update of its own (issue scenario 9).

Temporal answers an update ID it has seen with that update's first outcome. When the ID was
derived from what was decided, a person deciding again in the same words got an outcome
from the past instead of a judgement of the present: after another approver's amendment
reset the votes, the re-vote was answered "already applied" and not counted; an approver
added by escalation, refused before it, kept getting the refusal. Now each sending (a run
of ``send_approval``, an inbox POST, a demo decision) has a fresh ID, reused only by its
own retries, and the workflow itself recognises a repeat of a counted vote.

Each scenario goes through the real client code of each sender (``send_approval.send``,
the inbox's ``TemporalService.decide``, the demo's ``send_verdict``) with the real worker,
on the time-skipping server and on the dev server (the real server's update registry).
"""

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

import demo
import send_approval
from benchmarks.fake_openai import FakeOpenAIServer
from client.decide import DecisionNotAppliedError, DecisionRefusedError
from inbox.service import RefusedError, TemporalService
from models.models import (
    EscalationPolicy,
    Outcome,
    VotingPolicy,
    WorkflowInput,
    WorkflowState,
    WorkflowStatus,
)
from tests.helpers import (
    TimeSkippingRuns,
    script_risky_proposal,
    status_of,
    wait_for_state,
    wait_until,
)

SENDERS = ("send_approval", "inbox", "demo")
SERVERS = ("time-skipping", "dev")
# Send(reviewer, approve?, notes): False if refused, True if answered as applied.
Send = Callable[[str, bool, str], Awaitable[bool]]


@pytest.fixture(params=SERVERS)
async def server_runs(
    request: pytest.FixtureRequest, runs: TimeSkippingRuns, dev_server: WorkflowEnvironment
) -> TimeSkippingRuns:
    """The test's runs on the time-skipping server (``runs``), or the same on the dev server."""
    if request.param == "time-skipping":
        return runs
    return dataclasses.replace(runs, env=dev_server)


@pytest.fixture
def risky_request(llm_server: FakeOpenAIServer, workflow_id: str) -> str:
    return script_risky_proposal(
        llm_server,
        f"Close the vendor accounts listed in ticket {workflow_id}",
        action_type="close_accounts",
        reasoning="closing accounts cannot be undone",
    )


def cli_sender(client: Client, handle: WorkflowHandle, monkeypatch: pytest.MonkeyPatch) -> Send:
    """``send_approval <workflow-id> approve|reject "notes" --reviewer NAME``, one run each."""

    async def connect() -> Client:
        return client

    monkeypatch.setattr(send_approval, "connect", connect)

    async def send(reviewer: str, approved: bool, notes: str) -> bool:
        verdict = "approve" if approved else "reject"
        args = send_approval.parse_args([handle.id, verdict, notes, "--reviewer", reviewer])
        try:
            await send_approval.send(args)
        except DecisionRefusedError:
            return False
        return True

    return send


def inbox_sender(client: Client, handle: WorkflowHandle) -> Send:
    """The signed-in reviewer's POST: the inbox's service, one call each."""

    async def connect() -> Client:
        return client

    service = TemporalService(connect=connect)

    async def send(reviewer: str, approved: bool, notes: str) -> bool:
        try:
            await service.decide(handle.id, reviewer, approved, notes)
        except RefusedError:
            return False
        return True

    return send


def demo_sender(client: Client, handle: WorkflowHandle, monkeypatch: pytest.MonkeyPatch) -> Send:
    """The demo's terminal answering the request it shows, as the OS user ``reviewer``."""

    async def send(reviewer: str, approved: bool, notes: str) -> bool:
        monkeypatch.setattr(demo, "os_user", lambda: reviewer)
        said: list[str] = []
        monkeypatch.setattr(demo, "say", said.append)
        await demo.send_verdict(client, handle, await status_of(handle), approved, notes)
        if said:  # the demo says something only of a decision not applied
            assert len(said) == 1 and said[0].startswith("Refused:"), said
            return False
        return True

    return send


def sender(
    name: str, runs: TimeSkippingRuns, handle: WorkflowHandle, monkeypatch: pytest.MonkeyPatch
) -> Send:
    if name == "send_approval":
        return cli_sender(runs.client, handle, monkeypatch)
    if name == "inbox":
        return inbox_sender(runs.client, handle)
    return demo_sender(runs.client, handle, monkeypatch)


def decider(
    name: str, runs: TimeSkippingRuns, handle: WorkflowHandle, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, bool, str], Awaitable[bool]]:
    """Decide through sender ``name``: True if the vote was counted now, False if refused.
    An answer of "applied" with no vote counted (the stale answer of an earlier update)
    fails the test."""
    send = sender(name, runs, handle, monkeypatch)

    async def decide(reviewer: str, approved: bool, notes: str) -> bool:
        before = await status_of(handle)
        if not await send(reviewer, approved, notes):
            return False
        after = await status_of(handle)
        counted = [v for v in after.votes if v.reviewer == reviewer and v not in before.votes]
        assert counted, f"{name} answered {reviewer}'s decision as applied; it was not counted"
        return True

    return decide


async def amend(
    runs: TimeSkippingRuns, handle: WorkflowHandle, reviewer: str, subject: str
) -> None:
    """``send_approval <workflow-id> approve --edit-arguments JSON --reviewer NAME``: the
    e-mail's call with another subject."""
    request = (await status_of(handle)).approval_request
    assert request is not None and request.proposed_action.tool_call is not None
    edited = {**request.proposed_action.tool_call.arguments, "subject": subject}

    async def connect() -> Client:
        return runs.client

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(send_approval, "connect", connect)
        args = send_approval.parse_args(
            [handle.id, "approve", "--edit-arguments", json.dumps(edited), "--reviewer", reviewer]
        )
        await send_approval.send(args)


@pytest.mark.parametrize("name", SENDERS)
async def test_a_re_vote_after_an_amendment_reset_the_votes_is_counted(
    name: str, server_runs: TimeSkippingRuns, risky_request: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice approves; bob approves an edited call, which voids alice's vote (it was for the
    earlier call); alice approves again in the same words, and it counts: with bob's it
    makes the quorum of two, so the edited call is asked about again (bob, who edited it,
    may not approve it then)."""
    runs = server_runs
    run_input = WorkflowInput(
        user_request=risky_request,
        approvers=["alice", "bob", "carol"],
        voting=VotingPolicy(required_approvals=2),
    )
    async with runs.started(run_input) as handle:
        await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        decide = decider(name, runs, handle, monkeypatch)
        assert await decide("alice", True, "checked the ticket")
        await amend(runs, handle, "bob", "Close only the dormant accounts")
        reset = await status_of(handle)
        assert [vote.reviewer for vote in reset.votes] == ["bob"], "alice's vote was not reset"
        assert reset.approval_request is not None
        # Counted, or the quorum would not be reached and nothing asked again: the run may
        # move on to the edited call before a status could show the vote.
        assert await sender(name, runs, handle, monkeypatch)("alice", True, "checked the ticket")
        await wait_until(
            lambda: status_of(handle),
            lambda s: (
                s.state == WorkflowState.AWAITING_APPROVAL
                and s.approval_request is not None
                and s.approval_request.request_id != reset.approval_request.request_id
            ),
        )
        assert await decide("alice", True, "checked the edited call")
        assert await decide("carol", True, "checked the edited call")
        result = await handle.result()

    assert result.outcome == Outcome.APPROVED, result.message
    assert [vote.reviewer for vote in result.votes] == ["alice", "carol"]
    approvals = [e.detail for e in result.audit_trail if e.event == "decision_approved"]
    assert approvals[:3] == [
        "by alice: checked the ticket",
        "by bob: -",
        "by alice: checked the ticket",
    ]


@pytest.mark.parametrize("name", SENDERS)
async def test_an_escalation_approver_refused_before_the_escalation_is_accepted_after_it(
    name: str, server_runs: TimeSkippingRuns, risky_request: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """boss may decide only once the request escalates to them: refused before, the same
    decision in the same words is judged again after, and approves."""
    runs = server_runs
    after = 60 if runs.env.supports_time_skipping else 3  # the dev server's clock is real
    run_input = WorkflowInput(
        user_request=risky_request,
        approvers=["alice"],
        escalation=EscalationPolicy(after_seconds=after, approvers=["boss"]),
        approval_timeout_seconds=300,
    )
    async with runs.started(run_input) as handle:
        await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        decide = decider(name, runs, handle, monkeypatch)
        assert not await decide("boss", True, "go ahead"), "boss may not decide yet"
        if runs.env.supports_time_skipping:
            await runs.env.sleep(timedelta(seconds=after + 1))  # else the clock stands still
        await wait_until_escalated(handle)  # on the dev server, as soon as the timer fires
        assert await decide("boss", True, "go ahead")
        result = await handle.result()

    assert result.outcome == Outcome.APPROVED, result.message
    assert result.decision is not None and result.decision.reviewer == "boss"
    assert [vote.reviewer for vote in result.votes] == ["boss"]


async def wait_until_escalated(handle: WorkflowHandle) -> WorkflowStatus:
    return await wait_until(
        lambda: status_of(handle),
        lambda s: s.approval_request is not None and s.approval_request.escalated,
    )


CLOSED_RUN_ROUTES = ("send_approval", "send_approval by request ID", "inbox")


async def send_by(route: str, client: Client, handle: WorkflowHandle, approved: bool) -> object:
    """alice's decision through ``route``; what the route answers (the vote as recorded)."""
    verdict = "approve" if approved else "reject"
    if route == "inbox":

        async def connect() -> Client:
            return client

        service = TemporalService(connect=connect)
        return (await service.decide(handle.id, "alice", approved, "ok")).decision
    request_id = (await status_of(handle)).approval_request
    assert request_id is not None
    words = [verdict, "ok", "--reviewer", "alice"]
    if route == "send_approval by request ID":
        words = [request_id.request_id, *words]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(send_approval, "connect", lambda: asyncio.sleep(0, client))
        return (await send_approval.send(send_approval.parse_args([handle.id, *words]))).decision


@pytest.mark.parametrize("route", CLOSED_RUN_ROUTES)
async def test_a_decision_re_sent_after_the_run_closed_is_already_applied(
    route: str, runs: TimeSkippingRuns, risky_request: str
) -> None:
    """alice approves and the run closes; her same decision sent again, by any route, is
    "already applied" with her vote as counted (the run's result shows it), never a "not
    running" error; a different decision is not applied."""
    async with runs.started(WorkflowInput(user_request=risky_request)) as handle:
        await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        first = await send_by(route, runs.client, handle, approved=True)
        result = await handle.result()
        again = await send_by(route, runs.client, handle, approved=True)
        with pytest.raises((DecisionNotAppliedError, RefusedError, RPCError)):
            await send_by(route, runs.client, handle, approved=False)

    assert result.outcome == Outcome.APPROVED, result.message
    assert first == again == result.decision
