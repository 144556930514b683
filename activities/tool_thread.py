"""How the tool activities run their blocking SQLite work: in a thread, heartbeating meanwhile,
so that a worker that dies is noticed within the heartbeat timeout. The thread works under a
``CallGuard``: when the activity is cancelled (or times out, which the worker learns as a
cancellation) the guard interrupts the SQL, and the activity ends only once the thread has
stopped, so no abandoned statement goes on holding a core or the database. A call outside a
tool's contract, a key reused for another call, or a call stopped by its budget fails without
retries: trying again cannot fix it.
"""

import asyncio
from collections.abc import Callable
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from tools.budget import CallGuard, ToolCallStopped
from tools.execution import ApprovalMissing, IdempotencyKeyReused
from tools.registry import InvalidToolCall

HEARTBEAT_EVERY_SECONDS = 2.0
Result = TypeVar("Result")


async def in_thread(work: Callable[[CallGuard], Result]) -> Result:
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
