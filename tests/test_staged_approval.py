"""Staged approval: one ``ApprovalWorkflow`` child per stage, each decided by its members.

Runs in the time-skipping server, so stage timeouts cost nothing. Each stage's child has a
predictable ID, ``<parent id>/stage/<request id>/<position>-<stage>`` (``stage_child_id``),
which the parent's status shows while it waits. Each stage is decided by one of its members
(``STAGE_MEMBERS``) through the decision update, as the inbox and send_approval do.
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError

from activities.send_webhook_notice import WebhookNotifier
from benchmarks.fake_openai import FakeOpenAIServer
from constants import (
    APPROVE_SIGNAL,
    DECISION_REFUSED_ERROR,
    NAMED_APPROVERS_STAGE,
    SHORTHAND_REVIEWER,
    SUBMIT_DECISION_UPDATE,
)
from models.models import (
    ApprovalDecision,
    EscalationPolicy,
    Outcome,
    ProposedAction,
    StageOutcome,
    VotingPolicy,
    WorkflowInput,
    WorkflowStatus,
)
from policy.risk_policy import LARGE_AMOUNT_STAGES, approval_stages, largest_amount
from tests.helpers import (
    STAGE_MEMBERS,
    TimeSkippingRuns,
    decide_stage_as_member,
    is_running,
    member_of,
    script_risky_proposal,
    stage_of,
    status_of,
    wait_until,
)
from tests.record_histories import notices_settled, started_children

CLOSED = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED,
}
WEBHOOK_HOST = "hooks.example.test"


def risky_payment(llm_server: FakeOpenAIServer, text: str) -> str:
    """Script a risky proposal for ``text`` (unique to the test) and return the text."""
    return script_risky_proposal(
        llm_server, text, action_type="pay_vendor", reasoning="money leaves the company"
    )


# The shorthand signal's reviewer made the manager: only for the tests of its payloads.
SHORTHAND_MANAGER = {"manager": [SHORTHAND_REVIEWER]}


def staged(user_request: str, *stages: str, **fields: Any) -> WorkflowInput:
    fields.setdefault("stage_approvers", STAGE_MEMBERS)
    return WorkflowInput(user_request=user_request, approval_stages=list(stages), **fields)


@pytest.fixture
def contract_renewal(llm_server: FakeOpenAIServer, workflow_id: str) -> str:
    """A risky request with no amount in it, so it has exactly the stages a test gives it."""
    return risky_payment(llm_server, f"Renew the contract of {workflow_id}")


async def wait_for_stage(client: Client, handle: WorkflowHandle, stage: str) -> WorkflowStatus:
    """Wait until the parent waits on ``stage`` and that stage's child has started."""
    status = await wait_until(
        lambda: status_of(handle),
        lambda s: s.current_stage is not None and s.current_stage.stage == stage,
    )
    assert status.current_stage is not None
    child = client.get_workflow_handle(status.current_stage.child_workflow_id)
    await wait_until(lambda: is_running(child), bool)
    return status


async def child_id(client: Client, handle: WorkflowHandle, stage: str) -> str:
    """The child workflow ID of ``stage``, once the parent waits on it and it has started."""
    status = await wait_for_stage(client, handle, stage)
    assert status.current_stage is not None
    return status.current_stage.child_workflow_id


async def stages_started(handle: WorkflowHandle) -> int:
    return len(await started_children(handle))


async def decide_stage(client: Client, child_id: str, approved: bool) -> None:
    """Decide the stage as its member (STAGE_MEMBERS), through the decision update."""
    await decide_stage_as_member(client, child_id, approved)


@asynccontextmanager
async def webhook_answering(status: int) -> AsyncIterator[tuple[WebhookNotifier, list[dict]]]:
    """The worker's webhook notifier, answered in-process with ``status``; yields it and the
    bodies it posted."""
    posted: list[dict] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        posted.append(json.loads(request.content))
        return httpx2.Response(status)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(answer)) as http:
        yield WebhookNotifier(f"https://{WEBHOOK_HOST}/stage-notices", None, http), posted


# --- risk policy: which requests are staged -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("Wire $25,000 to ACME", 25_000),
        ("Pay €30k for the licence", 30_000),
        ("Invest £1.5m in bonds", 1_500_000),
        ("Refund $12.50, then $40", 40),
        ("Send the quarterly report", 0),
    ],
)
def test_largest_amount_reads_currency_amounts_with_separators_and_scales(
    text: str, amount: float
) -> None:
    assert largest_amount(text) == amount


def test_large_amounts_are_staged_and_small_ones_are_not() -> None:
    action = ProposedAction(
        action_type="pay", description="pay it", reasoning="asked", risky_action=True
    )
    assert approval_stages("Pay $25,000 to ACME", action) == ["manager", "director", "cfo"]
    assert approval_stages("Pay $500 to ACME", action) == []


# --- staged runs ----------------------------------------------------------------------------


async def test_each_stage_is_decided_in_its_own_child_in_order(
    runs: TimeSkippingRuns, contract_renewal: str, workflow_id: str
) -> None:
    client = runs.client
    async with runs.started(staged(contract_renewal, "manager", "director")) as handle:
        manager = await wait_for_stage(client, handle, "manager")
        assert manager.current_stage is not None
        manager_id = manager.current_stage.child_workflow_id
        assert manager.approval_request is not None
        request_id = manager.approval_request.request_id
        assert manager_id == f"{workflow_id}/stage/{request_id}/1-manager"
        assert (manager.current_stage.position, manager.current_stage.of) == (1, 2)
        assert await stages_started(handle) == 1
        # The manager takes 200 of its 300 s; the director still gets a full 300 s of its own.
        await runs.env.sleep(200)
        await decide_stage(client, manager_id, True)

        director = await wait_for_stage(client, handle, "director")
        assert director.current_stage is not None
        director_id = director.current_stage.child_workflow_id
        assert director_id == f"{workflow_id}/stage/{request_id}/2-director"
        assert director.current_stage.position == 2
        assert manager.approval_request is not None and director.approval_request is not None
        assert director.approval_request.stage == "director"
        assert (
            director.approval_request.deadline - manager.approval_request.deadline
        ).total_seconds() >= 200
        await decide_stage(client, director_id, True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert [(s.stage, s.approved) for s in result.stages] == [
        ("manager", True),
        ("director", True),
    ]
    assert result.execution is not None
    assert "stage director" in result.message
    manager_child = client.get_workflow_handle(manager_id, result_type=StageOutcome)
    assert (await manager_child.result()).approved is True


async def test_a_rejected_stage_rejects_and_later_stages_never_start(
    runs: TimeSkippingRuns, contract_renewal: str, workflow_id: str
) -> None:
    client = runs.client
    async with runs.started(staged(contract_renewal, "manager", "director")) as handle:
        await decide_stage(client, await child_id(client, handle, "manager"), False)
        result = await handle.result()
        assert await stages_started(handle) == 1
    assert result.outcome == Outcome.REJECTED
    assert result.execution is None
    assert [(s.stage, s.approved) for s in result.stages] == [("manager", False)]


async def decide_stage_with_notes(
    client: Client, child_id: str, approved: bool, notes: str
) -> None:
    """Decide the stage as its member with notes, as the inbox's form sends them."""
    request_id, stage = stage_of(child_id)
    decision = ApprovalDecision(
        request_id=request_id,
        approved=approved,
        reviewer=member_of(stage),
        reviewer_notes=notes,
        stage=stage,
    )
    await client.get_workflow_handle(child_id).execute_update(
        SUBMIT_DECISION_UPDATE, decision, result_type=ApprovalDecision
    )


async def test_a_stages_notes_are_kept_in_its_outcome_the_audit_trail_and_the_message(
    runs: TimeSkippingRuns, contract_renewal: str
) -> None:
    """What a stage's approver typed reaches the run: the parent's audit trail, the
    stage's outcome, and (for the deciding stage) the result's message."""
    client = runs.client
    async with runs.started(staged(contract_renewal, "manager", "director")) as handle:
        manager_id = await child_id(client, handle, "manager")
        await decide_stage_with_notes(client, manager_id, True, "budget checked")
        director_id = await child_id(client, handle, "director")
        await decide_stage_with_notes(client, director_id, False, "not this quarter")
        result = await handle.result()

    assert [(s.stage, s.notes) for s in result.stages] == [
        ("manager", "budget checked"),
        ("director", "not this quarter"),
    ]
    decided = [e.detail for e in result.audit_trail if e.event.startswith("stage_")]
    assert any(d.endswith(": budget checked") for d in decided), decided
    assert any(d.endswith(": not this quarter") for d in decided), decided
    assert "not this quarter" in result.message


@pytest.mark.parametrize("lax_payload", ["yes", 1, "maybe"])
async def test_a_stage_is_decided_only_by_true_or_false(
    runs: TimeSkippingRuns, contract_renewal: str, workflow_id: str, lax_payload: object
) -> None:
    """ "yes" or 1 could read as approval; the stage ignores them and waits for a real one.
    The shorthand's reviewer, temporal-cli, is made the manager here: this is about the
    shorthand's payloads, which a stage it may not decide would refuse anyway."""
    client = runs.client
    run_input = staged(contract_renewal, "manager", stage_approvers=SHORTHAND_MANAGER)
    async with runs.started(run_input) as handle:
        child = client.get_workflow_handle(await child_id(client, handle, "manager"))
        await child.signal(APPROVE_SIGNAL, lax_payload)
        await child.signal(APPROVE_SIGNAL, False)  # signals apply in order
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert [(s.stage, s.approved) for s in result.stages] == [("manager", False)]


@pytest.mark.parametrize("count", [0, 2])
async def test_a_stage_refuses_a_signal_without_exactly_one_payload_and_still_decides(
    runs: TimeSkippingRuns,
    contract_renewal: str,
    workflow_id: str,
    count: int,
) -> None:
    """`--name approve` without --input sends no payload: a one-parameter handler would raise
    TypeError on it and fail every workflow task of the stage. Two are refused as well, and
    the refusal reaches the parent's audit trail. temporal-cli (the shorthand's reviewer) is
    made the manager, so the well-formed signal decides the stage."""
    client = runs.client
    run_input = staged(contract_renewal, "manager", stage_approvers=SHORTHAND_MANAGER)
    async with runs.started(run_input) as handle:
        child = client.get_workflow_handle(await child_id(client, handle, "manager"))
        await child.signal(APPROVE_SIGNAL, args=[True] * count)
        await child.signal(APPROVE_SIGNAL, False)  # signals apply in order
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    (manager,) = result.stages
    assert (manager.stage, manager.approved) == ("manager", False)
    refusal = f"expected one payload, got {count}"
    assert manager.refusals == [refusal]
    trail = [(e.event, e.detail) for e in result.audit_trail]
    assert ("decision_refused", f"stage manager: {refusal}") in trail


async def test_each_stage_notice_also_goes_to_the_webhook(
    runs: TimeSkippingRuns, contract_renewal: str, workflow_id: str
) -> None:
    client = runs.client
    async with (
        webhook_answering(200) as (notifier, posted),
        runs.started(staged(contract_renewal, "manager", "director"), notifier=notifier) as handle,
    ):
        for stage in ("manager", "director"):
            await decide_stage(client, await child_id(client, handle, stage), True)
        result = await handle.result()
        children = await started_children(handle)
    assert result.outcome == Outcome.APPROVED
    assert [
        (body["approval_request"]["stage"], body["approval_request"]["workflow_id"])
        for body in posted
    ] == [("manager", children[0]), ("director", children[1])]
    assert "stage 'manager'" in posted[0]["text"]
    assert not [e for e in result.audit_trail if e.event == "notification_failed"]


async def test_a_failed_stage_notice_is_recorded_by_the_parent_and_the_stage_still_decides(
    runs: TimeSkippingRuns, contract_renewal: str, workflow_id: str
) -> None:
    client = runs.client
    async with (
        webhook_answering(404) as (notifier, posted),  # a 404 is not retried
        runs.started(staged(contract_renewal, "manager"), notifier=notifier) as handle,
    ):
        manager_id = await child_id(client, handle, "manager")
        # Notices go out alongside the wait: a decision before the 404 came back would
        # cancel the notice instead of recording its failure.
        await wait_until(lambda: notices_settled(client.get_workflow_handle(manager_id)), bool)
        await decide_stage(client, manager_id, True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert len(posted) == 1
    (manager,) = result.stages
    assert manager.notice_failures == [f"webhook: webhook at {WEBHOOK_HOST} answered HTTP 404"]
    trail = [(e.event, e.detail) for e in result.audit_trail]
    failed = ("notification_failed", f"stage manager: {manager.notice_failures[0]}")
    approved = ("stage_approved", f"manager (1/1) by {STAGE_MEMBERS['manager'][0]}")
    assert trail.index(failed) == trail.index(approved) - 1


async def test_a_stage_nobody_decides_times_the_request_out(
    runs: TimeSkippingRuns, contract_renewal: str, workflow_id: str
) -> None:
    async with runs.started(
        staged(contract_renewal, "manager", "director", approval_timeout_seconds=120)
    ) as handle:
        result = await handle.result()
        assert await stages_started(handle) == 1
    assert result.outcome == Outcome.TIMED_OUT
    assert result.execution is None
    assert [(s.stage, s.approved) for s in result.stages] == [("manager", None)]
    assert [e.event for e in result.audit_trail if e.event.startswith("stage_")] == [
        "stage_started",
        "stage_timed_out",
    ]


async def test_cancelling_the_parent_ends_the_waiting_stage(
    runs: TimeSkippingRuns, contract_renewal: str, workflow_id: str
) -> None:
    """A stage must never outlive its request: nobody could act on its approval."""
    client = runs.client
    async with runs.started(staged(contract_renewal, "manager")) as handle:
        manager_id = await child_id(client, handle, "manager")
        await handle.cancel()
        result = await handle.result()
        assert result.outcome == Outcome.CANCELLED
        assert result.execution is None and result.audit_trail[-1].event == "cancelled"
        child = client.get_workflow_handle(manager_id)
        description = await wait_until(child.describe, lambda d: d.status in CLOSED)
    assert description.status in CLOSED


async def test_a_decision_sent_to_a_staged_parent_is_refused_with_the_child_to_signal(
    runs: TimeSkippingRuns, contract_renewal: str, workflow_id: str
) -> None:
    client = runs.client
    async with runs.started(staged(contract_renewal, "manager")) as handle:
        status = await wait_for_stage(client, handle, "manager")
        assert status.approval_request is not None and status.current_stage is not None
        manager_id = status.current_stage.child_workflow_id
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                SUBMIT_DECISION_UPDATE,
                ApprovalDecision(
                    request_id=status.approval_request.request_id, approved=True, reviewer="bob"
                ),
            )
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == DECISION_REFUSED_ERROR
        assert manager_id in cause.message
        after = await status_of(handle)
        assert after.votes == [] and after.decision is None
        # Rejected by the validator: counted in the status, never in history or the trail.
        assert after.refused_updates == 1
        assert "decision_refused" not in [e.event for e in after.audit_trail]
        await decide_stage(client, manager_id, False)
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED  # the child decided, not the refused update


async def test_the_risk_policy_stages_a_large_payment_through_three_approvers(
    runs: TimeSkippingRuns, llm_server: FakeOpenAIServer, workflow_id: str
) -> None:
    client = runs.client
    payment = risky_payment(llm_server, f"Pay $25,000 to the vendor of {workflow_id}")
    run_input = WorkflowInput(user_request=payment, stage_approvers=STAGE_MEMBERS)
    async with runs.started(run_input) as handle:
        for position, stage in enumerate(LARGE_AMOUNT_STAGES, start=1):
            status = await wait_for_stage(client, handle, stage)
            assert status.current_stage is not None
            assert (status.current_stage.position, status.current_stage.of) == (position, 3)
            await decide_stage(client, status.current_stage.child_workflow_id, True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert [(s.stage, s.reviewer) for s in result.stages] == [
        (stage, STAGE_MEMBERS[stage][0]) for stage in LARGE_AMOUNT_STAGES
    ]
    assert all(s.approved for s in result.stages)
    assert result.message.startswith(f"Approved by {STAGE_MEMBERS['cfo'][0]} (stage cfo)")


async def test_a_policy_staged_request_keeps_its_named_approvers_first_and_drops_escalation(
    runs: TimeSkippingRuns, llm_server: FakeOpenAIServer, workflow_id: str
) -> None:
    """Staging only adds requirements: the approvers the request named decide first, as the
    stage ``approvers`` with their quorum, before the policy's stages. Escalation does not
    apply to stages, and the run says so rather than silently dropping it."""
    client = runs.client
    payment = risky_payment(llm_server, f"Pay $40,000 to the vendor of {workflow_id}")
    run_input = WorkflowInput(
        user_request=payment,
        approvers=["alice", "bob"],
        voting=VotingPolicy(required_approvals=2),
        escalation=EscalationPolicy(after_seconds=60, approvers=["dave"]),
        stage_approvers=STAGE_MEMBERS,
    )
    async with runs.started(run_input) as handle:
        status = await wait_for_stage(client, handle, NAMED_APPROVERS_STAGE)
        assert status.current_stage is not None and status.current_stage.of == 4
        named = status.current_stage.child_workflow_id
        await runs.env.sleep(61)  # past the escalation time: no escalation
        await decide_stage_as_member(client, named, reviewer="alice")
        still = await status_of(handle)  # a quorum of two: alice alone does not decide it
        assert still.current_stage is not None
        assert still.current_stage.stage == NAMED_APPROVERS_STAGE
        await decide_stage_as_member(client, named, reviewer="bob")
        for stage in LARGE_AMOUNT_STAGES:
            waiting = await wait_for_stage(client, handle, stage)
            assert waiting.current_stage is not None
            await decide_stage(client, waiting.current_stage.child_workflow_id, True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert [s.stage for s in result.stages] == [NAMED_APPROVERS_STAGE, *LARGE_AMOUNT_STAGES]
    assert result.stages[0].reviewer == "bob"  # the vote that reached the quorum
    events = [e.event for e in result.audit_trail]
    assert "escalated" not in events and result.votes == []
    override = next(e for e in result.audit_trail if e.event == "stages_override")
    assert override.detail == "the request is decided in stages: escalation does not apply"
    assert events.index("stages_override") < events.index("approval_requested")


async def test_every_approver_of_a_quorum_stage_is_barred_from_later_stages(
    runs: TimeSkippingRuns, llm_server: FakeOpenAIServer, workflow_id: str
) -> None:
    """One person approves at most one stage: alice's vote counted for the named approvers'
    stage (a quorum of two, bob's vote settling it), so she may not approve the manager's."""
    client = runs.client
    payment = risky_payment(llm_server, f"Pay $30,000 to the vendor of {workflow_id}")
    run_input = WorkflowInput(
        user_request=payment,
        approvers=["alice", "bob"],
        voting=VotingPolicy(required_approvals=2),
        stage_approvers={**STAGE_MEMBERS, "manager": ["alice", "mia"]},
    )
    async with runs.started(run_input) as handle:
        status = await wait_for_stage(client, handle, NAMED_APPROVERS_STAGE)
        assert status.current_stage is not None
        named = status.current_stage.child_workflow_id
        await decide_stage_as_member(client, named, reviewer="alice")
        await decide_stage_as_member(client, named, reviewer="bob")
        manager = await wait_for_stage(client, handle, "manager")
        assert manager.current_stage is not None
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await decide_stage_as_member(
                client, manager.current_stage.child_workflow_id, reviewer="alice"
            )
        assert "cannot approve" in str(refused.value.cause)
        await decide_stage_as_member(
            client, manager.current_stage.child_workflow_id, approved=False, reviewer="mia"
        )
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    assert result.stages[0].approvers == ["alice", "bob"]
