"""Every Temporal call the inbox makes: list the runs, read one run, submit a decision.

Routes (pages and the JSON API) call these and nothing else, and the decision itself goes
through ``client.decide``, as the CLI's and the demo's do: the rules are written once.
Errors come out as one of three exceptions the routes turn into HTTP answers.
"""

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from client.connection import TemporalUnavailableError, connect, means_no_such_workflow
from client.decide import (
    Applied,
    DecisionNotAppliedError,
    DecisionRefusedError,
    NoWorkerError,
    Verdict,
    decide,
)
from client.listing import DECIDED_RUNS_QUERY, PENDING_RUNS_QUERY
from client.status import StatusUnavailableError, closed_status, query_status
from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE
from encryption.codec import UndecryptablePayloadError
from models.models import (
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

APPROVAL_STATUS = SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)
# A list is read one page at a time, newest first (visibility's own order): one visibility
# call of PAGE_SIZE runs, then per run its history length and, if it grew, its status query
# (_current_status). A thousand waiting runs cost a page what twenty-five do.
PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
# "Waiting for me" reads further pages until it has a page of matches, up to this many runs.
FILTER_SCAN_RUNS = 100
# Status queries (answered by a worker) and history reads in flight at once, for the whole
# inbox however many people load pages: the workers see a bounded stream.
CONCURRENT_READS = 16
LIST_QUERY_SECONDS = 3
# How long a closed run's page waits for a worker's status before reading the run's history.
CLOSED_QUERY_SECONDS = 2
# Statuses remembered for the lists, each with the history length it was read at.
KNOWN_STATUSES = 2000


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
    status: WorkflowStatus | None  # None: no worker answered in time, or unreadable
    unreadable: str | None = None  # why its status cannot be read here (a key it lacks)


@dataclass(frozen=True)
class Decided:
    workflow_id: str
    closed: datetime | None
    approval_status: str  # the search attribute: readable even when the payloads are not
    result: WorkflowResult | None  # None: encrypted with a key this inbox does not hold
    user_request: str | None
    unreadable: str | None = None  # why the result cannot be read here


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: bytes | None  # Temporal's, opaque; None: this was the last page


class UnreadableError(Exception):
    """The run's payloads are encrypted with a key this inbox does not hold."""


class SealedError(Exception):
    """A run this inbox cannot decrypt: not transient, so no page should retry it. For a
    closed run the message names the outcome, which the search attribute keeps readable."""


# A payload this inbox cannot open: a key it lacks (the codec's error), or no codec at all
# for an encrypted payload (the converter's unknown encoding).
UNREADABLE_ERRORS = (UndecryptablePayloadError, KeyError)


def unreadable_reason(err: Exception) -> str:
    """The codec's message names the key ID and where to add it; a KeyError's is quoted."""
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


class TemporalService:
    """Holds one client, connected on first use; a failed connection is retried next call,
    so the inbox recovers by itself when the server comes back."""

    def __init__(self, connect: Callable[[], Awaitable[Client]] = connect) -> None:
        self._connect = connect
        self._client: Client | None = None
        self._lock = asyncio.Lock()
        self._reads = asyncio.Semaphore(CONCURRENT_READS)
        # workflow ID -> (run ID, history length, status): see _current_status.
        self._known: dict[str, tuple[str | None, int, WorkflowStatus]] = {}

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await self._connect()
                except TemporalUnavailableError as err:
                    raise UnavailableError(str(err)) from None
            return self._client

    async def pending(
        self,
        page_token: bytes | None = None,
        page_size: int = PAGE_SIZE,
        for_user: str | None = None,
    ) -> Page[Pending]:
        """One page of the runs waiting for a decision, newest first, each with its status
        asked now. ``for_user``: only those that user may decide and has not voted on."""
        client = await self.client()
        token, scanned = page_token, 0
        found: list[Pending] = []
        while True:
            executions, token = await self._page(client, PENDING_RUNS_QUERY, page_size, token)
            rows = await asyncio.gather(*(self._pending_row(client, e) for e in executions))
            for row in rows:
                if _still_waiting(row) and (for_user is None or waits_for(row, for_user)):
                    found.append(row)
            scanned += len(executions)
            if for_user is None or len(found) >= page_size or scanned >= FILTER_SCAN_RUNS:
                return Page(found, token)
            if token is None:
                return Page(found, None)

    async def decided(
        self, page_token: bytes | None = None, page_size: int = PAGE_SIZE
    ) -> Page[Decided]:
        """One page of outcomes, most recently closed first, read from history: closed runs
        need no worker."""
        client = await self.client()
        executions, token = await self._page(client, DECIDED_RUNS_QUERY, page_size, page_token)

        async def outcome(execution: WorkflowExecution) -> Decided | None:
            status = execution.typed_search_attributes.get(APPROVAL_STATUS) or ""
            try:
                found = await self._from_history(client, execution.id, execution.run_id)
            except UnreadableError as err:
                return Decided(execution.id, execution.close_time, status, None, None, str(err))
            if found is None:
                return None
            run_input, result = found
            return Decided(
                execution.id, execution.close_time, status, result, run_input.user_request
            )

        found = await asyncio.gather(*(outcome(e) for e in executions))
        return Page([d for d in found if d is not None], token)

    async def status(self, workflow_id: str) -> WorkflowStatus:
        """The status query's answer; for a closed run no worker answers, the same facts
        rebuilt from its result. A closed run's worker gets ``CLOSED_QUERY_SECONDS`` to
        answer, not the scripts' full wait: runs outlive the workers that ran them, and
        the page should not wait that long for what the run's history holds."""
        client = await self.client()
        try:
            handle = client.get_workflow_handle(workflow_id)
            closed = (await handle.describe()).status != WorkflowExecutionStatus.RUNNING
            wait = CLOSED_QUERY_SECONDS if closed else None
            return await asyncio.wait_for(query_status(client, workflow_id), wait)
        except (StatusUnavailableError, TimeoutError) as err:
            found = await self._closed_status(client, workflow_id)
            if found is not None:
                return found
            raise UnavailableError(
                str(err)
                or f"Workflow {workflow_id} has closed without a result of the agent, and no "
                f"worker answered for it within {CLOSED_QUERY_SECONDS}s."
            ) from None
        except RPCError as err:
            raise _translated(err, workflow_id) from None
        except UNREADABLE_ERRORS as err:
            raise SealedError(
                f"The run's status is encrypted with a key this inbox does not hold, so it "
                f"cannot show it. {unreadable_reason(err)}"
            ) from None

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
        try:
            found = await self._from_history(client, workflow_id, description.run_id)
        except UnreadableError:
            outcome = outcome_name(description.typed_search_attributes.get(APPROVAL_STATUS) or "")
            raise SealedError(
                f"The run's request and result are encrypted with a key this inbox does not"
                f" hold, so it cannot show them; its outcome is {outcome!r}. Give the inbox"
                f" that key to read it."
            ) from None
        if found is None:
            return None
        _, result = found
        return closed_status(result)

    async def _from_history(
        self, client: Client, workflow_id: str, run_id: str | None
    ) -> tuple[WorkflowInput, WorkflowResult] | None:
        """The run's input (first event) and result (last); None if it did not complete.
        UnreadableError: encrypted with keys this inbox does not hold (or an unknown
        encoding); the list shows such a run as such instead of failing or hiding it."""
        handle = client.get_workflow_handle(workflow_id, run_id=run_id, result_type=WorkflowResult)
        try:
            async with self._reads:
                result = await handle.result(follow_runs=False)
                async for event in handle.fetch_history_events(page_size=1):
                    payloads = event.workflow_execution_started_event_attributes.input.payloads
                    [run_input] = await client.data_converter.decode(payloads, [WorkflowInput])
                    return run_input, result
        except (WorkflowFailureError, RPCError, ValueError):
            pass  # failed or terminated: not an outcome of the agent
        except UNREADABLE_ERRORS as err:
            logger.warning("Run %s cannot be read here: %s", workflow_id, err)
            raise UnreadableError(unreadable_reason(err)) from None
        return None

    async def decide(
        self,
        workflow_id: str,
        reviewer: str,
        approved: bool,
        notes: str,
        request_id: str | None = None,
        arguments: dict[str, Any] | None = None,
        stage: str | None = None,
    ) -> Applied:
        """Submit the signed-in reviewer's decision (``client.decide``): for the request
        waiting now, or with ``request_id`` only for that one; for a staged run, to the
        stage ``stage`` (the one waiting now when None) and never another. ``arguments``
        approve the tool call with these arguments instead: the edited call is previewed
        and asked about again."""
        status = await self.status(workflow_id)
        client = await self.client()
        verdict = Verdict(approved, reviewer, notes, request_id, stage, arguments)
        # One update per POST, with a fresh ID: a repeat of a vote already counted (a
        # double click, a second tab) is answered with that vote, as recorded then.
        return await _sent(workflow_id, decide(client, workflow_id, verdict, status=status))

    async def _page(
        self, client: Client, query: str, page_size: int, token: bytes | None
    ) -> tuple[list[WorkflowExecution], bytes | None]:
        """One visibility call: a page of runs (in visibility's order, newest first) and the
        token of the next page, None after the last."""
        executions = client.list_workflows(query, page_size=page_size, next_page_token=token)
        try:
            await executions.fetch_next_page()
        except RPCError as err:
            raise _translated(err, "") from None
        return list(executions.current_page or []), executions.next_page_token

    async def _pending_row(self, client: Client, execution: WorkflowExecution) -> Pending:
        """A listed run with its status; one this inbox cannot decrypt is listed as such,
        with why, instead of taking the whole page down."""
        try:
            status = await self._current_status(client, execution)
        except UNREADABLE_ERRORS as err:
            return Pending(execution.id, execution.start_time, None, unreadable_reason(err))
        return Pending(execution.id, execution.start_time, status)

    async def _current_status(
        self, client: Client, execution: WorkflowExecution
    ) -> WorkflowStatus | None:
        """A listed run's status as it is now, without asking a worker when nothing moved.

        A run's status is a function of its history: the workflow changes state only in a
        workflow task, whose completion adds events. So a status read at history length N is
        still the status while the history has N events, and asking the server for that
        length (describe: the server's own record, no worker involved) tells whether to ask
        the run again. Every load checks every row; nothing shown is older than that check.
        """
        try:
            async with self._reads:
                handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
                length = (await handle.describe()).history_length
        except RPCError:
            return await self._status_or_none(client, execution.id)
        known = self._known.get(execution.id)
        if known is not None and known[:2] == (execution.run_id, length):
            return known[2]
        status = await self._status_or_none(client, execution.id)
        if status is not None:
            self._known.pop(execution.id, None)
            self._known[execution.id] = (execution.run_id, length, status)
            while len(self._known) > KNOWN_STATUSES:  # the longest unchanged go first
                del self._known[next(iter(self._known))]
        return status

    async def _status_or_none(self, client: Client, workflow_id: str) -> WorkflowStatus | None:
        """For a list: a run no worker answers for is shown as such after a few seconds,
        instead of holding the whole page for the scripts' full wait."""
        try:
            async with self._reads:
                return await asyncio.wait_for(query_status(client, workflow_id), LIST_QUERY_SECONDS)
        except (StatusUnavailableError, RPCError, TimeoutError):
            return None


async def _sent(workflow_id: str, sending: Awaitable[T]) -> T:
    """The workflow's answer to a decision being sent, or one of this module's errors."""
    try:
        return await sending
    except DecisionRefusedError as err:
        raise RefusedError(err.reason) from None
    except NoWorkerError as err:
        raise UnavailableError(str(err)) from None
    except DecisionNotAppliedError as err:
        raise RefusedError(str(err)) from None
    except RPCError as err:
        raise _translated(err, workflow_id) from None


def _still_waiting(row: Pending) -> bool:
    """Visibility lags a decision by a moment; the status query does not. A run no worker
    answered for stays listed (as such)."""
    return row.status is None or row.status.state == WorkflowState.AWAITING_APPROVAL


def waits_for(row: Pending, user: str) -> bool:
    """Waiting for me: I may decide (anyone may, or I am named, or I am a member of the
    stage waiting now) and have not voted yet. A run whose status is unknown (no worker
    answered, or one that does not name a stage's members) is kept: it may be."""
    if row.status is None:
        return True
    if (stage := row.status.current_stage) is not None:
        return not stage.members or user in stage.members
    request = row.status.approval_request
    approvers = request.approvers if request is not None else []
    voted = {vote.reviewer for vote in row.status.votes}
    return (not approvers or user in approvers) and user not in voted


def outcome_name(approval_status: str) -> str:
    """``TimedOut`` -> ``timed_out``: the search attribute's value, in the outcomes' style."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", approval_status).lower()


def _translated(err: RPCError, workflow_id: str) -> Exception:
    if means_no_such_workflow(err):
        return NotFoundError(f"No workflow with ID {workflow_id!r}.")
    if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return UnavailableError("Temporal is unreachable right now.")
    return UnavailableError(f"Temporal refused the request: {err.message}")
