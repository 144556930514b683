"""The two things measured, behind one interface: the product and the plain baseline.

Each says which worker module serves it, how a run is started, how an approver decides a
waiting run, and which results count as correct (figures from wrong results are worthless,
so the benchmark checks every one). Both decide by the same two paths: an update (what
``send_approval`` sends) and a signal (what the Temporal CLI sends).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle

from benchmarks.baseline_workflow import (
    APPROVED,
    AUTO_APPROVED,
    BASELINE_DECIDE_SIGNAL,
    BASELINE_DECIDE_UPDATE,
    BASELINE_WORKFLOW_TYPE,
)
from client.start import INITIAL_SEARCH_ATTRIBUTES
from constants import APPROVAL_DECISION_SIGNAL, STATUS_QUERY, SUBMIT_DECISION_UPDATE, WORKFLOW_TYPE
from models.models import (
    ApprovalDecision,
    Outcome,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)

# Long enough that no waiting run times out during a benchmark.
APPROVAL_TIMEOUT_SECONDS = 6 * 3600
REVIEWER = "bench-approver"
# A thousand starts at once keep a dev server on a SQLite file (--persisted) busy for longer
# than the client's default deadline; the starts are measured, not abandoned.
START_RPC_TIMEOUT = timedelta(seconds=120)

Decide = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Decisions:
    """The approval of one waiting run, ready to send by either path."""

    by_update: Decide
    by_signal: Decide


@dataclass(frozen=True)
class Subject:
    name: str
    worker_module: str
    start: Callable[[Client, str, str, str], Awaitable[WorkflowHandle[Any, Any]]]
    """(client, task queue, user request, workflow ID) -> handle of the started run."""
    prepare_decision: Callable[[WorkflowHandle[Any, Any]], Awaitable[Decisions]]
    """What an approver looks up before deciding; returns the calls that send the approval."""
    auto_approved: Callable[[Any], bool]
    approved: Callable[[Any], bool]


async def _start_product(
    client: Client, queue: str, user_request: str, workflow_id: str
) -> WorkflowHandle[Any, WorkflowResult]:
    """Started as start_workflow.py starts it, search attribute included."""
    return await client.start_workflow(
        WORKFLOW_TYPE,
        WorkflowInput(user_request=user_request, approval_timeout_seconds=APPROVAL_TIMEOUT_SECONDS),
        id=workflow_id,
        task_queue=queue,
        result_type=WorkflowResult,
        search_attributes=INITIAL_SEARCH_ATTRIBUTES,
        rpc_timeout=START_RPC_TIMEOUT,
    )


async def _prepare_product(handle: WorkflowHandle[Any, Any]) -> Decisions:
    """Like send_approval: read the pending request's ID, then decide with the update (or
    the full-decision signal, as the README's CLI recipe sends it)."""
    status = await handle.query(STATUS_QUERY, result_type=WorkflowStatus)
    if status.state != WorkflowState.AWAITING_APPROVAL or status.approval_request is None:
        raise RuntimeError(f"{handle.id} is not awaiting approval: {status.state}")
    decision = ApprovalDecision(
        request_id=status.approval_request.request_id, approved=True, reviewer=REVIEWER
    )

    def by_update() -> Awaitable[ApprovalDecision]:
        return handle.execute_update(SUBMIT_DECISION_UPDATE, decision, result_type=ApprovalDecision)

    def by_signal() -> Awaitable[None]:
        return handle.signal(APPROVAL_DECISION_SIGNAL, decision)

    return Decisions(by_update, by_signal)


async def _start_baseline(
    client: Client, queue: str, user_request: str, workflow_id: str
) -> WorkflowHandle[Any, str]:
    return await client.start_workflow(
        BASELINE_WORKFLOW_TYPE,
        user_request,
        id=workflow_id,
        task_queue=queue,
        result_type=str,
        search_attributes=INITIAL_SEARCH_ATTRIBUTES,
        rpc_timeout=START_RPC_TIMEOUT,
    )


async def _prepare_baseline(handle: WorkflowHandle[Any, Any]) -> Decisions:
    def by_update() -> Awaitable[bool]:
        return handle.execute_update(BASELINE_DECIDE_UPDATE, True, result_type=bool)

    def by_signal() -> Awaitable[None]:
        return handle.signal(BASELINE_DECIDE_SIGNAL, True)

    return Decisions(by_update, by_signal)


PRODUCT = Subject(
    name="product",
    worker_module="worker",
    start=_start_product,
    prepare_decision=_prepare_product,
    auto_approved=lambda result: result.outcome == Outcome.AUTO_APPROVED,
    approved=lambda result: result.outcome == Outcome.APPROVED,
)
BASELINE = Subject(
    name="baseline",
    worker_module="benchmarks.baseline_worker",
    start=_start_baseline,
    prepare_decision=_prepare_baseline,
    auto_approved=lambda result: result == AUTO_APPROVED,
    approved=lambda result: result == APPROVED,
)
