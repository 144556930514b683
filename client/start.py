"""Starting a run of the agent, and waiting for its result while saying why none comes.

A run waits in Temporal for a worker; a starter with no worker polling its task queue
would wait in silence, so ``no_worker_polling`` says so (the run still starts).
"""

import asyncio
import sys
import uuid
from typing import Any

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from client.status import not_progressing
from constants import (
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    TASK_QUEUE_ENV,
    WORKFLOW_ID_PREFIX,
    WORKFLOW_TYPE,
    task_queue,
)
from models.models import ApprovalStatus, Outcome, WorkflowInput, WorkflowResult

FAILED_OUTCOMES = {Outcome.ANALYSIS_FAILED, Outcome.INPUT_REFUSED}
# While waiting for the result, how often to ask the server whether the run still moves.
PROGRESS_CHECK_SECONDS = 10
INITIAL_SEARCH_ATTRIBUTES = TypedSearchAttributes(
    [
        SearchAttributePair(
            SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE),
            ApprovalStatus.ANALYSING.value,
        )
    ]
)


class ResultUnavailableError(Exception):
    """The run started, but waiting for its result failed; the run itself goes on."""


def new_workflow_id() -> str:
    return f"{WORKFLOW_ID_PREFIX}-{uuid.uuid4().hex[:12]}"


async def start_run(
    client: Client,
    run_input: WorkflowInput,
    workflow_id: str | None = None,
    *,
    queue: str | None = None,
) -> WorkflowHandle[Any, WorkflowResult]:
    """Start the run on ``queue`` (default: the configured task queue), tagged for
    `temporal workflow list` when ApprovalStatus is registered."""
    workflow_id = workflow_id or new_workflow_id()
    queue = queue or task_queue()
    options = {"id": workflow_id, "task_queue": queue, "result_type": WorkflowResult}
    try:
        return await client.start_workflow(
            WORKFLOW_TYPE, run_input, search_attributes=INITIAL_SEARCH_ATTRIBUTES, **options
        )
    except RPCError as err:
        if err.status != RPCStatusCode.INVALID_ARGUMENT or "search attribute" not in err.message:
            raise
    print(
        f"Note: the {APPROVAL_STATUS_SEARCH_ATTRIBUTE} search attribute is not registered, so "
        "this run will not show in pending-approval lists (see the README).",
        file=sys.stderr,
    )
    return await client.start_workflow(WORKFLOW_TYPE, run_input, **options)


async def no_worker_polling(client: Client, queue: str) -> str | None:
    """One line saying that no worker polls ``queue`` for workflow tasks, or None.

    Read from the server's record of recent pollers, so it needs no worker; a run started
    meanwhile waits in Temporal and proceeds once one polls.
    """
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    described = await client.workflow_service.describe_task_queue(request)
    if described.pollers:
        return None
    return (
        f"No worker is polling task queue {queue!r}; the run waits until one does "
        f"(`uv run python -m worker`, with the same {TASK_QUEUE_ENV})."
    )


async def result_unless_stuck(
    client: Client, handle: WorkflowHandle[Any, WorkflowResult]
) -> WorkflowResult:
    """The run's result; or, once the server says the run is not progressing, why."""
    result = asyncio.ensure_future(handle.result())
    try:
        while True:
            done, _ = await asyncio.wait({result}, timeout=PROGRESS_CHECK_SECONDS)
            if done:
                return result.result()
            if stuck := await not_progressing(client, handle.id):
                raise ResultUnavailableError(f"{stuck} Stopped waiting for its result.")
    finally:
        result.cancel()  # no-op once done
