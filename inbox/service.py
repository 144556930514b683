"""Every Temporal call the inbox makes: list the runs, read one run, submit a decision.

Routes (pages and the JSON API) call these and nothing else, and the decision itself goes
through ``send_approval.submit``, the same update the CLI sends: the rules are written once.
Errors come out as one of three exceptions the routes turn into HTTP answers.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.service import RPCError, RPCStatusCode

from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE
from inbox.status_cache import StatusCache
from models.models import (
    ApprovalDecision,
    ApprovalStatus,
    ProposedAction,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from send_approval import DecisionNotAppliedError, DecisionRefusedError, NoWorkerError, submit
from temporal_client import (
    StatusUnavailableError,
    TemporalUnavailableError,
    connect,
    means_no_such_workflow,
    query_status,
)

PENDING_QUERY = (
    f'{APPROVAL_STATUS_SEARCH_ATTRIBUTE} = "{ApprovalStatus.PENDING.value}" '
    'AND ExecutionStatus = "Running"'
)
DECIDED_STATUSES = [
    s.value for s in ApprovalStatus if s not in (ApprovalStatus.PENDING, ApprovalStatus.ANALYSING)
]
DECIDED_QUERY = (
    f"{APPROVAL_STATUS_SEARCH_ATTRIBUTE} IN ({', '.join(repr(s) for s in DECIDED_STATUSES)}) "
    'AND ExecutionStatus != "Running"'
)
# The pending list shows up to LIST_LIMIT runs, the decided list the DECIDED_LIMIT latest.
LIST_LIMIT = 1000
DECIDED_LIMIT = 50
CONCURRENT_QUERIES = 32
LIST_QUERY_SECONDS = 3


class NotFoundError(Exception):
    """No such workflow (or not a run of the agent)."""


class UnavailableError(Exception):
    """Temporal, or a worker to answer, is not there right now; the message says which."""


class RefusedError(Exception):
    """The decision was not applied; the message is the workflow's (or the inbox's) reason."""


class StageOf(Exception):
    """The ID is a stage's child workflow: its request lives on ``parent_id``'s page."""

    def __init__(self, parent_id: str) -> None:
        super().__init__(parent_id)
        self.parent_id = parent_id


@dataclass(frozen=True)
class Pending:
    workflow_id: str
    started: datetime
    status: WorkflowStatus | None  # None: no worker answered the status query in time


@dataclass(frozen=True)
class Decided:
    workflow_id: str
    closed: datetime | None
    result: WorkflowResult
    user_request: str


class TemporalService:
    """Holds one client, connected on first use; a failed connection is retried next call,
    so the inbox recovers by itself when the server comes back."""

    def __init__(self, connect: Callable[[], Awaitable[Client]] = connect) -> None:
        self._connect = connect
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._statuses: StatusCache | None = None

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await self._connect()
                except TemporalUnavailableError as err:
                    raise UnavailableError(str(err)) from None
            return self._client

    async def pending(self) -> list[Pending]:
        """Runs waiting for a decision, newest first, each with its (recent) status."""
        client = await self.client()
        executions = await self._list(client, PENDING_QUERY, LIST_LIMIT)
        if self._statuses is None:
            self._statuses = StatusCache(lambda wid: self._status_or_none(client, wid))
        statuses = await self._statuses.statuses([e.id for e in executions])
        found = [Pending(e.id, e.start_time, statuses.get(e.id)) for e in executions]
        return [p for p in found if p.status is None or _still_waiting(p.status)]

    async def decided(self) -> list[Decided]:
        """Recent outcomes, newest first, read from history: closed runs need no worker."""
        client = await self.client()
        executions = await self._list(client, DECIDED_QUERY, DECIDED_LIMIT)
        gate = asyncio.Semaphore(CONCURRENT_QUERIES)

        async def outcome(execution: WorkflowExecution) -> Decided | None:
            async with gate:
                found = await self._from_history(client, execution.id, execution.run_id)
            if found is None:
                return None
            run_input, result = found
            return Decided(execution.id, execution.close_time, result, run_input.user_request)

        found = await asyncio.gather(*(outcome(e) for e in executions))
        return [d for d in found if d is not None]

    async def status(self, workflow_id: str) -> WorkflowStatus:
        """The status query's answer; for a closed run no worker answers, the same facts
        rebuilt from its result."""
        client = await self.client()
        try:
            return await query_status(client, workflow_id)
        except StatusUnavailableError as err:
            closed = await self._closed_status(client, workflow_id)
            if closed is not None:
                return closed
            raise UnavailableError(str(err)) from None
        except RPCError as err:
            raise _translated(err, workflow_id) from None

    async def _closed_status(self, client: Client, workflow_id: str) -> WorkflowStatus | None:
        """A stage's ID (StageOf) or a closed run's status from history; None if running."""
        try:
            description = await client.get_workflow_handle(workflow_id).describe()
        except RPCError:
            return None
        if description.parent_id is not None:
            raise StageOf(description.parent_id)
        if description.status == WorkflowExecutionStatus.RUNNING:
            return None
        found = await self._from_history(client, workflow_id, description.run_id)
        if found is None:
            return None
        _, result = found
        return WorkflowStatus(
            state=WorkflowState.COMPLETED,
            decision=result.decision,
            votes=result.votes,
            result=result,
            audit_trail=result.audit_trail,
        )

    async def _from_history(
        self, client: Client, workflow_id: str, run_id: str | None
    ) -> tuple[WorkflowInput, WorkflowResult] | None:
        """The run's input (first event) and result (last); None if it did not complete."""
        handle = client.get_workflow_handle(workflow_id, run_id=run_id, result_type=WorkflowResult)
        try:
            result = await handle.result(follow_runs=False)
            async for event in handle.fetch_history_events(page_size=1):
                payloads = event.workflow_execution_started_event_attributes.input.payloads
                [run_input] = await client.data_converter.decode(payloads, [WorkflowInput])
                return run_input, result
        except (WorkflowFailureError, RPCError, ValueError):
            pass  # failed or terminated: not an outcome of the agent
        return None

    async def decide(
        self,
        workflow_id: str,
        reviewer: str,
        approved: bool,
        notes: str,
        request_id: str | None = None,
        edits: dict[str, Any] | None = None,
    ) -> ApprovalDecision:
        """Submit the signed-in reviewer's decision for the request waiting now (or, with
        ``request_id``, only for that one); for a staged run, to the waiting stage.
        ``edits`` (fields of the proposed action) approve an amended action."""
        status = await self.status(workflow_id)
        request = status.approval_request
        if status.state != WorkflowState.AWAITING_APPROVAL or request is None:
            raise RefusedError(f"this run is not waiting for a decision ({status.state.value})")
        if request_id is not None and request_id != request.request_id:
            raise RefusedError(
                f"request {request_id} is no longer the one waiting ({request.request_id})"
            )
        stage = status.current_stage
        target = stage.child_workflow_id if stage is not None else workflow_id
        if stage is not None and edits is not None:
            raise RefusedError("a stage approves or rejects the action; it cannot amend it")
        amended = (
            ProposedAction.model_validate({**request.proposed_action.model_dump(), **edits})
            if edits is not None
            else None
        )
        decision = ApprovalDecision(
            request_id=request.request_id,
            approved=approved,
            reviewer=reviewer,
            reviewer_notes=notes,
            decided_at=None,  # the workflow records when it received it
            amended_action=amended,
        )
        client = await self.client()
        if self._statuses is not None:
            self._statuses.forget(workflow_id)
        try:
            return await submit(client, target, decision)
        except DecisionRefusedError as err:
            raise RefusedError(err.reason) from None
        except NoWorkerError as err:
            raise UnavailableError(str(err)) from None
        except DecisionNotAppliedError as err:
            raise RefusedError(str(err)) from None
        except RPCError as err:
            raise _translated(err, target) from None

    async def _list(self, client: Client, query: str, limit: int) -> list[WorkflowExecution]:
        try:
            executions = [e async for e in client.list_workflows(query, limit=limit)]
        except RPCError as err:
            raise _translated(err, "") from None
        return sorted(executions, key=lambda e: e.start_time, reverse=True)

    async def _status_or_none(self, client: Client, workflow_id: str) -> WorkflowStatus | None:
        """For a list: a run no worker answers for is shown as such after a few seconds,
        instead of holding the whole page for the scripts' full wait."""
        try:
            return await asyncio.wait_for(query_status(client, workflow_id), LIST_QUERY_SECONDS)
        except (StatusUnavailableError, RPCError, TimeoutError):
            return None


def _still_waiting(status: WorkflowStatus) -> bool:
    return status.state == WorkflowState.AWAITING_APPROVAL


def _translated(err: RPCError, workflow_id: str) -> Exception:
    if means_no_such_workflow(err):
        return NotFoundError(f"No workflow with ID {workflow_id!r}.")
    if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return UnavailableError("Temporal is unreachable right now.")
    return UnavailableError(f"Temporal refused the request: {err.message}")
