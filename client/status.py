"""Where a run stands: its status query, and whether the server says it cannot move.

A query is answered by a worker; when none answers, or the run's workflow task keeps
failing, the scripts and the inbox say so in one line instead of waiting.
"""

import asyncio
import shlex

from pydantic import ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from client import connection
from client.connection import (
    means_no_such_workflow,
    means_no_worker,
    no_worker_message,
    reraise_if_cancelled,
)
from constants import STAGE_ID_MARKER, STATUS_QUERY
from encryption.codec import UndecryptablePayloadError
from models.models import StageOutcome, WorkflowResult, WorkflowState, WorkflowStatus

# How much of a workflow task's failure message a script shows (one line, printable).
FAILURE_SHOWN_CHARS = 300
# Events read back from the end of a history to find the last workflow task failure.
HISTORY_PAGE_SIZE = 100


class StatusUnavailableError(Exception):
    """The status query got no usable answer; the message says why and what to do."""


async def not_progressing(client: Client, workflow_id: str) -> str | None:
    """Why the run cannot move, in one line, or None when nothing says it is stuck.

    Read from what the server reports, so it needs no worker: the run's pending workflow
    task has failed and is being retried (attempt 2 or more), and its history's last
    workflow task event is a failure, whose message says why. Such a run answers no query
    and takes no decision until a worker runs code that gets past the failure.
    """
    description = await client.get_workflow_handle(workflow_id).describe()
    raw = description.raw_description
    if not raw.HasField("pending_workflow_task") or raw.pending_workflow_task.attempt < 2:
        return None
    failure = await _last_workflow_task_failure(client, workflow_id, description.run_id)
    if failure is None:  # timed out, not failed: a worker went away (the query says so)
        return None
    failures = raw.pending_workflow_task.attempt - 1
    times = "once" if failures == 1 else f"{failures} times in a row"
    return (
        f"Workflow {workflow_id} is not progressing: its workflow task has failed "
        f"{times}, with: {failure}. A worker "
        "running code that fixes this resumes it; `uv run temporal workflow terminate "
        f"--workflow-id {shlex.quote(workflow_id)}` ends it."
    )


async def _last_workflow_task_failure(client: Client, workflow_id: str, run_id: str) -> str | None:
    """The failure message of the last workflow task, if that task failed; newest first."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        maximum_page_size=HISTORY_PAGE_SIZE,
    )
    while True:
        page = await client.workflow_service.get_workflow_execution_history_reverse(request)
        for event in page.history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                return None
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failure = event.workflow_task_failed_event_attributes.failure
                return _one_printable_line(await _failure_message(client, failure))
        if not page.next_page_token:
            return None
        request.next_page_token = page.next_page_token


async def _failure_message(client: Client, failure: Failure) -> str:
    """The failure's message, decrypted when payload encryption moved it into an encoded
    attribute; without the key, the line that names the key needed.

    A wrapped error is followed by its root cause: the SDK's "Failed decoding arguments"
    alone does not say that a worker lacks the key the run's input needs.
    """
    try:
        error = await client.data_converter.decode_failure(failure)
    except UndecryptablePayloadError as err:
        return f"a failure this process cannot read ({err})"
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    if root is error:
        return _message_of(error)
    return f"{_message_of(error)}: {_message_of(root)}"


def _message_of(error: BaseException) -> str:
    return getattr(error, "message", None) or str(error)


def _one_printable_line(text: str) -> str:
    """A message from the server (it may quote anything the run held), safe to print."""
    line = "".join(c if c.isprintable() else " " for c in text.strip().split("\n")[0])
    return line if len(line) <= FAILURE_SHOWN_CHARS else line[: FAILURE_SHOWN_CHARS - 3] + "..."


async def query_status(client: Client, workflow_id: str) -> WorkflowStatus:
    """The run's status, within ``WORKER_WAIT_SECONDS``; or why there is none, in one line.

    A run that is not progressing is said to be so first (``not_progressing``): its query
    would only time out. A stage's ``ApprovalWorkflow`` answers the same query with None or
    a ``StageOutcome``; it is told apart here, since it is decided by a signal.
    """
    if stuck := await not_progressing(client, workflow_id):
        raise StatusUnavailableError(stuck)
    handle = client.get_workflow_handle(workflow_id)
    try:
        async with asyncio.timeout(connection.WORKER_WAIT_SECONDS):
            answer = await handle.query(
                STATUS_QUERY, result_type=WorkflowStatus | StageOutcome | None
            )
    except TimeoutError:
        raise StatusUnavailableError(no_worker_message()) from None
    except RPCError as err:
        reraise_if_cancelled()
        if not means_no_worker(err):
            raise
        raise StatusUnavailableError(no_worker_message()) from None
    except WorkflowQueryFailedError as err:
        raise StatusUnavailableError(
            f"Workflow {workflow_id} cannot say where it stands ({err.message}); "
            "is it a run of this agent?"
        ) from None
    except ValidationError:
        raise StatusUnavailableError(
            f"Workflow {workflow_id} is not a run of this agent: "
            f"its {STATUS_QUERY} answer is not a status."
        ) from None
    if isinstance(answer, WorkflowStatus):
        return answer
    raise StatusUnavailableError(_stage_workflow_message(workflow_id, answer))


def _stage_workflow_message(workflow_id: str, outcome: StageOutcome | None) -> str:
    if outcome is not None:  # decided: nothing is left to do here
        verdict = {True: "approved", False: "rejected", None: "timed out"}[outcome.approved]
        return (
            f"Workflow {workflow_id} is the approval workflow of stage {outcome.stage!r}, "
            f"not a run of the agent, and it is already {verdict}."
        )
    run_id = shlex.quote(workflow_id.partition(STAGE_ID_MARKER)[0])
    return (
        f"Workflow {workflow_id} is a stage's approval workflow, not a run of the agent: a "
        f"stage is decided by one of its members, through its run: `uv run python -m "
        f"send_approval {run_id} approve|reject --reviewer MEMBER`."
    )


async def closed_result(client: Client, workflow_id: str) -> WorkflowResult | None:
    """The result of run ``workflow_id`` once it has completed; None while it runs, or if it
    ended without one (failed, terminated, not a run of the agent)."""
    handle = client.get_workflow_handle(workflow_id, result_type=WorkflowResult)
    try:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            return None
        return await handle.result(follow_runs=False)
    except (WorkflowFailureError, ValidationError):
        return None
    except RPCError as err:
        if means_no_such_workflow(err):
            return None
        raise


def closed_status(result: WorkflowResult) -> WorkflowStatus:
    """What the status query of a completed run answers, rebuilt from its result."""
    return WorkflowStatus(
        state=WorkflowState.COMPLETED,
        decision=result.decision,
        votes=result.votes,
        result=result,
        audit_trail=result.audit_trail,
    )
