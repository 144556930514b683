"""Where a parked run's time and history go, read back from the histories of decided runs.

A run is parked from the moment its last workflow task before the decision completed; what
came before is what every waiting run pays. For each sampled run this counts the events,
workflow tasks, activities, upserts and markers of that part and splits its time between
queueing (a task scheduled, no worker on it yet) and running (a worker on it), for workflow
tasks and activities apart. Runs parked together queue behind one another's tasks, so when
queueing dominates, what limits parking is the CPU the tasks need, not the tasks' own work.
The figures are medians over the sample.
"""

import statistics
from collections.abc import Sequence
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle

# The events that bring a decision in. An update rides in a workflow task that comes just
# before its acceptance, so that task is not part of the parked run either.
UPDATE_ACCEPTED = "workflow_execution_update_accepted_event_attributes"
SIGNALED = "workflow_execution_signaled_event_attributes"
WORKFLOW_TASK_SCHEDULED = "workflow_task_scheduled_event_attributes"
WORKFLOW_TASK_STARTED = "workflow_task_started_event_attributes"
WORKFLOW_TASK_COMPLETED = "workflow_task_completed_event_attributes"
COUNTED = {
    "events": None,
    "workflow_tasks": WORKFLOW_TASK_COMPLETED,
    "activities": "activity_task_scheduled_event_attributes",
    "upserts": "upsert_workflow_search_attributes_event_attributes",
    "markers": "marker_recorded_event_attributes",
    "timers": "timer_started_event_attributes",
}


def _kind(event: HistoryEvent) -> str:
    return event.WhichOneof("attributes") or ""


def _ms(event: HistoryEvent) -> float:
    return event.event_time.ToMilliseconds()


def parked_part(events: Sequence[HistoryEvent]) -> list[HistoryEvent]:
    """The events before the decision came in, without the workflow task that brought it."""
    kinds = [_kind(event) for event in events]
    end = next((i for i, kind in enumerate(kinds) if kind in (UPDATE_ACCEPTED, SIGNALED)), None)
    if end is None:
        return list(events)
    if kinds[end] == UPDATE_ACCEPTED:
        for task_event in (WORKFLOW_TASK_COMPLETED, WORKFLOW_TASK_STARTED, WORKFLOW_TASK_SCHEDULED):
            if end > 0 and kinds[end - 1] == task_event:
                end -= 1
    return list(events[:end])


def profile(events: Sequence[HistoryEvent]) -> dict[str, float]:
    """One parked run: its counts, its time from start to parked, and how that time split."""
    by_id = {event.event_id: event for event in events}
    figures = {
        name: float(sum(1 for e in events if kind is None or _kind(e) == kind))
        for name, kind in COUNTED.items()
    }
    figures |= dict.fromkeys(
        ("workflow_task_queue_ms", "workflow_task_run_ms", "activity_queue_ms", "activity_run_ms"),
        0.0,
    )
    # The running workflow task's start: one at a time, and the test server leaves the
    # completion's started_event_id out.
    started: HistoryEvent | None = None
    for event in events:
        kind = _kind(event)
        if kind == WORKFLOW_TASK_STARTED:
            scheduled = by_id[event.workflow_task_started_event_attributes.scheduled_event_id]
            figures["workflow_task_queue_ms"] += _ms(event) - _ms(scheduled)
            started = event
        elif kind == WORKFLOW_TASK_COMPLETED and started is not None:
            figures["workflow_task_run_ms"] += _ms(event) - _ms(started)
        elif kind == "activity_task_completed_event_attributes":
            closed = event.activity_task_completed_event_attributes
            scheduled, ran = by_id[closed.scheduled_event_id], by_id[closed.started_event_id]
            figures["activity_queue_ms"] += _ms(ran) - _ms(scheduled)
            figures["activity_run_ms"] += _ms(event) - _ms(ran)
    figures["start_to_parked_ms"] = _ms(events[-1]) - _ms(events[0]) if events else 0.0
    return figures


async def parking_profile(handles: Sequence[WorkflowHandle[Any, Any]]) -> dict[str, float]:
    """Medians over ``handles`` (decided runs), as ``parked_<figure>``."""
    profiles = [profile(parked_part((await handle.fetch_history()).events)) for handle in handles]
    return {f"parked_{name}": statistics.median(p[name] for p in profiles) for name in profiles[0]}
