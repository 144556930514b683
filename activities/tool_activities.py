"""The activities through which the workflow reaches the tools: preview, then execute.

Execution is one dynamic activity that takes the name of each tool: the history and the
Web UI show ``pay_invoice``, not a generic step, and each tool's timeouts come from its
registry entry. Adding a tool still touches only ``tools/registry.py``.

Both run the blocking SQLite work in a thread and heartbeat meanwhile, so that a worker that
dies is noticed within the heartbeat timeout. The thread works under a ``CallGuard``: when
the activity is cancelled (or times out, which the worker learns as a cancellation) the
guard interrupts the SQL, and the activity ends only once the thread has stopped, so no
abandoned statement goes on holding a core or the database. A call outside a tool's
contract, a key reused for another call, or a call stopped by its budget fails without
retries: trying again cannot fix it. A drifted or infeasible execution is not a failure:
it is an outcome the workflow records and acts on.
"""

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from models.tools import EffectPreview, ExecuteToolInput, ToolCall, ToolOutcome
from tools.budget import CallGuard, ToolCallStopped
from tools.database import database_path
from tools.execution import ApprovalMissing, IdempotencyKeyReused, execute_call, preview_call
from tools.registry import InvalidToolCall

HEARTBEAT_EVERY_SECONDS = 2.0
Result = TypeVar("Result")


@activity.defn
async def preview_tool_call(call: ToolCall) -> EffectPreview:
    """What the call would change, worked out without changing anything."""
    return await _in_thread(lambda guard: preview_call(database_path(), call, guard))


@activity.defn(dynamic=True)
async def execute_tool(args: Sequence[RawValue]) -> ToolOutcome:
    """The execute activity, named after the tool whose call it runs."""
    return await execute_tool_call(_execute_input(args))


async def execute_tool_call(request: ExecuteToolInput) -> ToolOutcome:
    """Execute the approved call once per idempotency key, only if its preview still holds."""
    outcome = await _in_thread(lambda guard: execute_call(database_path(), request, guard))
    activity.logger.info(
        "Tool %s [idempotency key %s]: %s: %s",
        outcome.tool,
        request.idempotency_key,
        outcome.status,
        outcome.summary,
    )
    return outcome


def _execute_input(args: Sequence[RawValue]) -> ExecuteToolInput:
    """The one argument, an ``ExecuteToolInput`` for the tool this activity is named after."""
    name = activity.info().activity_type
    if len(args) != 1:
        raise ApplicationError(f"{name}: expected one argument", non_retryable=True)
    request = activity.payload_converter().from_payload(args[0].payload, ExecuteToolInput)
    if request.call.tool != name:
        raise ApplicationError(
            f"activity {name} was given a call of {request.call.tool}", non_retryable=True
        )
    return request


async def _in_thread(work: Callable[[CallGuard], Result]) -> Result:
    guard = CallGuard()
    task = asyncio.ensure_future(asyncio.to_thread(work, guard))
    try:
        while not task.done():
            activity.heartbeat()
            await asyncio.wait({task}, timeout=HEARTBEAT_EVERY_SECONDS)
    except asyncio.CancelledError as cancelled:
        return await _stopped(task, guard, cancelled)
    return _result(task)


async def _stopped(
    task: "asyncio.Future[Result]", guard: CallGuard, cancelled: asyncio.CancelledError
) -> Result:
    """Interrupt the thread and wait for it. If it finished first (committed, say), that
    is what happened, and its result is returned rather than a "cancelled" that is false."""
    guard.cancel()
    activity.logger.info("Cancelled: interrupting the tool call and waiting for it to stop")
    await asyncio.wait({task})
    if task.exception() is not None and guard.reason is not None:
        raise cancelled
    return _result(task)


def _result(task: "asyncio.Future[Result]") -> Result:
    try:
        return task.result()
    except (InvalidToolCall, IdempotencyKeyReused, ApprovalMissing, ToolCallStopped) as err:
        raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
