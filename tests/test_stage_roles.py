"""Stages are roles with members: the most dangerous requests get the strongest authority.

A $48,000 payment is staged by the risk policy (manager -> director -> cfo). Each stage is
approved only by its members (``stage_approvers``, from ``HITL_STAGE_APPROVERS``), one
person approves at most one stage, the approvers the request named decide first, and a
stage nobody may approve ends the run, never "anyone".
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError

from benchmarks.fake_openai import fallback_tool_call, ok
from constants import (
    APPROVE_SIGNAL,
    NAMED_APPROVERS_STAGE,
    STAGED_PARENT_REFUSAL,
    SUBMIT_DECISION_UPDATE,
)
from inbox.service import Pending, waits_for
from models.limits import decision_problem, run_input_problem
from models.models import ApprovalDecision, Outcome, StageOutcome, WorkflowInput
from start_workflow import parse_args
from tests.helpers import TimeSkippingRuns, is_running, status_of, wait_until
from tests.record_histories import Run, recorded

PAYMENT = "Pay $48,000 to Northwind Traders"
ROLES = {"manager": ["bob", "mia"], "director": ["bob", "carol"], "cfo": ["dana"]}


@pytest.fixture
async def runs(runs: TimeSkippingRuns) -> AsyncIterator[TimeSkippingRuns]:
    async with runs.worker():
        yield runs


def proposal(text: str) -> dict[str, Any]:
    return {
        "action_type": "send_email",
        "description": text,
        "reasoning": "requested",
        "risky_action": True,
        "tool_call": fallback_tool_call(text),
    }


async def waiting_stage(runs: TimeSkippingRuns, handle: Run, stage: str) -> Any:
    status = await wait_until(
        lambda: status_of(handle),
        lambda s: s.current_stage is not None and s.current_stage.stage == stage,
    )
    assert status.current_stage is not None and status.approval_request is not None
    child = runs.client.get_workflow_handle(status.current_stage.child_workflow_id)
    await wait_until(lambda: is_running(child), bool)  # the status names it a moment before
    return child, status.approval_request.request_id


async def decide(child: Any, request_id: str, reviewer: str, approved: bool = True) -> Any:
    decision = ApprovalDecision(request_id=request_id, approved=approved, reviewer=reviewer)
    return await child.execute_update(SUBMIT_DECISION_UPDATE, decision)


async def refused(child: Any, request_id: str, reviewer: str, **fields: Any) -> str:
    decision = ApprovalDecision(request_id=request_id, approved=True, reviewer=reviewer, **fields)
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await child.execute_update(SUBMIT_DECISION_UPDATE, decision)
    return str(failure.value.cause)


async def test_each_stage_is_approved_only_by_its_members_one_stage_each(
    runs: TimeSkippingRuns,
) -> None:
    handle = await runs.start(
        PAYMENT, ok(proposal(PAYMENT)), approvers=["alice"], stage_approvers=ROLES
    )
    named, request_id = await waiting_stage(runs, handle, NAMED_APPROVERS_STAGE)
    assert "not an approver" in await refused(named, request_id, "mallory")
    await decide(named, request_id, "alice")

    manager, request_id = await waiting_stage(runs, handle, "manager")
    assert "not an approver" in await refused(manager, request_id, "alice")
    assert "not an approver" in await refused(manager, request_id, "mallory")
    await manager.signal(APPROVE_SIGNAL, True)  # the CLI's shorthand names nobody: refused
    await decide(manager, request_id, "bob")

    director, request_id = await waiting_stage(runs, handle, "director")
    status = await status_of(handle)  # bob approved the manager stage: not this one's to decide
    assert status.current_stage is not None and status.current_stage.members == ["carol"]
    row = Pending(workflow_id=handle.id, started=datetime.now(UTC), status=status)
    assert [waits_for(row, name) for name in ("bob", "carol")] == [False, True]
    assert "cannot approve" in await refused(director, request_id, "bob")  # one stage each
    assert "stage 'manager'" in await refused(director, request_id, "carol", stage="manager")
    await decide(director, request_id, "carol")

    cfo, request_id = await waiting_stage(runs, handle, "cfo")
    await decide(cfo, request_id, "dana")
    result = await handle.result()
    assert result.outcome == Outcome.APPROVED, result.message
    assert [(s.stage, s.reviewer) for s in result.stages] == [
        (NAMED_APPROVERS_STAGE, "alice"),
        ("manager", "bob"),
        ("director", "carol"),
        ("cfo", "dana"),
    ]
    manager_outcome: StageOutcome = result.stages[1]
    assert any("temporal-cli" in refusal for refusal in manager_outcome.refusals)


async def test_a_staged_run_names_who_may_decide_the_stage_waiting_now(
    runs: TimeSkippingRuns,
) -> None:
    """Its status names the waiting stage's members, so the inbox lists the run as waiting
    for them only; a decision sent to the run itself is refused naming that stage and its
    members (in the words send_approval looks for, to take it there)."""
    text = PAYMENT + " by Friday"
    handle = await runs.start(text, ok(proposal(text)), stage_approvers=ROLES)
    manager, request_id = await waiting_stage(runs, handle, "manager")
    status = await status_of(handle)
    assert status.current_stage is not None and status.current_stage.members == ["bob", "mia"]
    row = Pending(workflow_id=handle.id, started=datetime.now(UTC), status=status)
    assert [waits_for(row, name) for name in ("bob", "mia", "dana")] == [True, True, False]
    unnamed = status.current_stage.model_copy(update={"members": []})  # an older worker's
    older = Pending(handle.id, row.started, status.model_copy(update={"current_stage": unnamed}))
    assert waits_for(older, "dana")  # kept, as a run whose status is unknown is

    decision = ApprovalDecision(request_id=request_id, approved=True, reviewer="bob")
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)
    assert getattr(failure.value.cause, "message", None) == (
        f"this request is {STAGED_PARENT_REFUSAL}: stage manager (1/3) waits, and only its "
        f"members (bob, mia) may decide it, in its workflow {manager.id}"
    )
    await handle.cancel()
    assert (await handle.result()).outcome == Outcome.CANCELLED


async def test_a_stage_nobody_may_approve_ends_the_run_and_nothing_runs(
    runs: TimeSkippingRuns,
) -> None:
    handle = await runs.start(PAYMENT + " today", ok(proposal(PAYMENT + " today")))
    result = await handle.result()
    assert result.outcome == Outcome.STAGE_FAILED, result.message
    assert "no approvers" in result.message
    assert result.execution is None
    assert recorded(await status_of(handle), "stage_failed") == 1


def test_an_explicit_stage_without_members_is_refused_at_start(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["Rotate the keys", "--stage", "security"])
    assert exit_.value.code == 2
    assert "no approvers for stage security" in capsys.readouterr().err


def test_stage_members_and_a_decisions_stage_are_bounded() -> None:
    """Both are copied into requests, refusals and the audit trail: bounded like any name."""
    crowd = WorkflowInput(
        user_request="Pay", stage_approvers={"manager": [f"m{n}" for n in range(11)]}
    )
    assert "approvers" in (run_input_problem(crowd) or "")
    long_name = WorkflowInput(user_request="Pay", stage_approvers={"manager": ["x" * 101]})
    assert "approver 1" in (run_input_problem(long_name) or "")
    decision = ApprovalDecision(request_id="r", approved=True, reviewer="bob", stage="s" * 101)
    assert "the stage" in (decision_problem(decision) or "")
