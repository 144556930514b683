"""The two activities through which the workflow reaches the tools: preview, then execute.

Both run the blocking SQLite work in a thread and heartbeat meanwhile, so that a worker that
dies is noticed within the heartbeat timeout. A call outside a tool's contract, or a key
reused for another call, fails without retries: trying again cannot fix it. A drifted or
infeasible execution is not a failure: it is an outcome the workflow records and acts on.
"""

import asyncio
from collections.abc import Callable
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from tools.database import database_path
from tools.execution import ApprovalMissing, IdempotencyKeyReused, execute_call, preview_call
from tools.models import EffectPreview, ExecuteToolInput, ToolCall, ToolOutcome
from tools.registry import InvalidToolCall

HEARTBEAT_EVERY_SECONDS = 2.0
Result = TypeVar("Result")


@activity.defn
async def preview_tool_call(call: ToolCall) -> EffectPreview:
    """What the call would change, worked out without changing anything."""
    return await _in_thread(lambda: preview_call(database_path(), call))


@activity.defn
async def execute_tool_call(request: ExecuteToolInput) -> ToolOutcome:
    """Execute the approved call once per idempotency key, only if its preview still holds."""
    outcome = await _in_thread(lambda: execute_call(database_path(), request))
    activity.logger.info(
        "Tool %s [idempotency key %s]: %s: %s",
        outcome.tool,
        request.idempotency_key,
        outcome.status,
        outcome.summary,
    )
    return outcome


async def _in_thread(work: Callable[[], Result]) -> Result:
    task = asyncio.ensure_future(asyncio.to_thread(work))
    while not task.done():
        activity.heartbeat()
        await asyncio.wait({task}, timeout=HEARTBEAT_EVERY_SECONDS)
    try:
        return task.result()
    except (InvalidToolCall, IdempotencyKeyReused, ApprovalMissing) as err:
        raise ApplicationError(str(err), type=type(err).__name__, non_retryable=True) from err
