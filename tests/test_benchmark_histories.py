"""The benchmark's reading of a parked run's history, on a committed one."""

from benchmarks.histories import parked_part, profile
from constants import WORKFLOW_VERSION_PATCH
from tests.record_histories import VERSIONS_DIR
from tests.test_replay import committed_history


def test_a_parked_run_is_its_history_before_the_decision_and_its_workflow_task() -> None:
    history = committed_history(VERSIONS_DIR / WORKFLOW_VERSION_PATCH / "tool_approved.json")
    parked = parked_part(history.events)
    last = parked[-1]
    assert last.HasField("workflow_task_completed_event_attributes")
    after = history.events[len(parked) : len(parked) + 4]
    assert after[-1].HasField("workflow_execution_update_accepted_event_attributes")
    figures = profile(parked)
    assert figures["events"] == len(parked)
    assert figures["activities"] == 4  # analysis, assessment, preview, notices
    assert figures["timers"] == 1 and figures["markers"] == 1
    assert figures["start_to_parked_ms"] >= 0
    assert (
        figures["activity_queue_ms"] + figures["activity_run_ms"]
        <= figures["start_to_parked_ms"] * figures["activities"]
    )


def test_a_run_decided_by_signal_is_parked_until_the_signal() -> None:
    history = committed_history(VERSIONS_DIR / WORKFLOW_VERSION_PATCH / "shorthand_approve.json")
    parked = parked_part(history.events)
    assert history.events[len(parked)].HasField("workflow_execution_signaled_event_attributes")
