"""The benchmark's reading of a parked run's history, on a committed one."""

from benchmarks.histories import parked_part, profile
from tests.record_histories import HISTORIES_DIR
from tests.test_replay import committed_history


def test_a_parked_run_is_its_history_before_the_decision_and_its_workflow_task() -> None:
    history = committed_history(HISTORIES_DIR / "tool_approved.json")
    parked = parked_part(history.events)
    # It ends with the last workflow task before the decision and that task's commands
    # (the deadline's timer, the opening notice's marker) ...
    last_task = max(
        index
        for index, event in enumerate(parked)
        if event.HasField("workflow_task_completed_event_attributes")
    )
    assert [event.WhichOneof("attributes") for event in parked[last_task + 1 :]] == [
        "timer_started_event_attributes",
        "marker_recorded_event_attributes",
    ]
    # ... and leaves out the workflow task that brought the decision in.
    after = history.events[len(parked) : len(parked) + 4]
    assert after[0].HasField("workflow_task_scheduled_event_attributes")
    assert after[-1].HasField("workflow_execution_update_accepted_event_attributes")
    figures = profile(parked)
    assert figures["events"] == len(parked)
    # The analysis (with the preview); the opening notice is a local activity's marker, and
    # the run's version (workflows/versions.py) a patch marker.
    assert figures["activities"] == 1
    assert figures["timers"] == 1 and figures["markers"] == 2
    assert figures["start_to_parked_ms"] >= 0
    assert (
        figures["activity_queue_ms"] + figures["activity_run_ms"]
        <= figures["start_to_parked_ms"] * figures["activities"]
    )


def test_a_run_decided_by_signal_is_parked_until_the_signal() -> None:
    history = committed_history(HISTORIES_DIR / "shorthand_approve.json")
    parked = parked_part(history.events)
    assert history.events[len(parked)].HasField("workflow_execution_signaled_event_attributes")
