"""Decisions received at or after the deadline: applied only if they reached Temporal in time.

Inside one workflow activation, signals are handled before timers fire, and
``workflow.now()`` is the activation's time. So when no worker ran across the deadline, a
decision sent before it and one sent after it reach the handler together, both looking
late. A handler therefore applies a decision at once only while ``workflow.now()`` is
before the deadline; otherwise it holds it here, and the workflow asks the server (an
activity reading the run's history, recorded like any activity) when each held signal was
stored. Held signals are matched to history by order: every decision signal the run ever
received is counted, and the n-th one handled is the n-th one in history.

An update is not stored by Temporal until a worker accepts it, so it has no such stamp:
an update is on time if a worker receives it before the deadline.

Replay gives a handler the time it had live, with one exception in the SDK (temporalio
1.35, core's "v1" task chunking): a workflow task that issued no commands, followed at once
by an empty one, is replayed as one activation with the later task's time. Temporal's
server writes no such empty task for this workflow while a request waits (no local
activity then, no update validator; an update's task carries its accepted event, which
core aligns on; queries are not tasks in history). The time-skipping test server does write
one for a query that arrives while a task runs, which is why a refusal's audit time can
read a few ms later after a replay there (tests/test_workflow.py shows it).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.signal_arrivals import signal_arrivals
    from models.models import SignalArrivalsInput

Held = TypeVar("Held")

# Reading history needs only the Temporal server, which is up (it delivered the task).
ARRIVALS_TIMEOUT = timedelta(seconds=60)
ARRIVALS_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10))


@dataclass
class Sorted(Generic[Held]):
    on_time: list[tuple[Held, datetime]]  # with when it reached Temporal
    late: list[tuple[Held, str]]  # with the refusal reason


@dataclass
class LateSignals(Generic[Held]):
    """Counts a run's decision signals and holds those received at or after the deadline."""

    signal_names: list[str]
    received: int = 0
    held: list[tuple[int, Held]] = field(default_factory=list)

    def count(self) -> int:
        """Count one decision signal (call for every one, valid or not); its history index."""
        self.received += 1
        return self.received - 1

    def hold(self, index: int, item: Held) -> None:
        self.held.append((index, item))

    async def sort_out(self, deadline: datetime) -> Sorted[Held]:
        """Split the held signals by when they reached Temporal: before ``deadline`` or not."""
        if not self.held:
            return Sorted(on_time=[], late=[])
        info = workflow.info()
        arrivals = await workflow.execute_activity(
            signal_arrivals,
            SignalArrivalsInput(
                workflow_id=info.workflow_id, run_id=info.run_id, signal_names=self.signal_names
            ),
            start_to_close_timeout=ARRIVALS_TIMEOUT,
            retry_policy=ARRIVALS_RETRY,
        )
        # Read after the activity: signals held while it ran are sorted too (as late).
        held, self.held = self.held, []
        result: Sorted[Held] = Sorted(on_time=[], late=[])
        for index, item in held:
            at = arrivals.times[index] if index < len(arrivals.times) else None
            if at is not None and at < deadline:
                result.on_time.append((item, at))
            else:
                when = f" at {at.isoformat()}" if at is not None else ""
                result.late.append((item, f"arrived after the deadline{when}"))
        return result


def late_update_reason(deadline: datetime) -> str:
    """Why an update received at or after the deadline is refused."""
    return (
        f"arrived after the deadline ({deadline.isoformat()}): a worker received it at "
        f"{workflow.now().isoformat()}"
    )
