"""``python -m worker``, unchanged, except that two executions hold until the process is
killed, and that the runs it holds in memory move to other workers sooner once it is dead.

The real tools act in milliseconds, far too fast to kill a worker in the middle; the
fault-tolerance tests start this worker, wait for what it logs, and kill it there:

- ``send_email``'s execute activity says it started, then holds before acting, with no
  heartbeat (a dead worker sends none);
- any other tool's execution applies its effect in its open transaction, says so, and hangs
  before recording the key (the activity keeps heartbeating from its event loop, as a live
  worker would).

A worker that goes on serving a run keeps it in its cache and asks the server for that run's
next tasks on its own (sticky) queue. A killed worker never says goodbye: the server moves
each such task to the shared queue only when nobody took it within the worker's sticky
schedule-to-start timeout, 10 s by default, as for ``python -m worker``. Given
``STICKY_SECONDS_ENV``, this worker asks for that instead, so that a test about another
worker rebuilding the run from history need not wait for that timer.

Test-only: run as ``python -m tests.crash_worker_holding``.
"""

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from datetime import timedelta
from functools import partial

from temporalio import activity
from temporalio.common import RawValue
from temporalio.worker import Worker

import tools.execution as execution
import worker
import worker_setup
from activities.execute_tool import execute_tool
from console_exit import exit_process
from models.tools import ExecuteToolInput, ToolOutcome

HELD_TOOL = "send_email"
HELD_BEFORE_ACTING = f"{HELD_TOOL} held until this worker is killed"
HELD_IN_TRANSACTION = "tool effect applied, key not recorded: holding until this worker is killed"
STICKY_SECONDS_ENV = "CRASH_WORKER_STICKY_SECONDS"


@activity.defn(dynamic=True)
async def execute_holding(args: Sequence[RawValue]) -> ToolOutcome:
    """The execute activity, except that ``send_email`` starts and never acts."""
    if activity.info().activity_type != HELD_TOOL:
        return await execute_tool(args)
    request = activity.payload_converter().from_payload(args[0].payload, ExecuteToolInput)
    activity.logger.info("%s (key %s)", HELD_BEFORE_ACTING, request.idempotency_key)
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def record_never(*_: object) -> None:
    """Stands in for recording the key: the effect is applied in the open transaction."""
    logging.getLogger(__name__).warning(HELD_IN_TRANSACTION)
    time.sleep(3600)


if __name__ == "__main__":
    worker_setup.execute_tool = execute_holding
    execution._record = record_never
    if sticky := os.environ.get(STICKY_SECONDS_ENV):
        sticky_timeout = timedelta(seconds=float(sticky))
        worker_setup.Worker = partial(Worker, sticky_queue_schedule_to_start_timeout=sticky_timeout)
    exit_process(worker.main())
