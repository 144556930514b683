"""The sample's own metrics, recorded from workflow code.

``workflow.metric_meter()`` is replay safe: nothing is recorded while a worker replays a
history to rebuild a run, so a run evicted and rebuilt ten times is still counted once. The
worker serves them with the SDK's own metrics (``HITL_METRICS_ADDRESS``); without that
address they go nowhere. Plain functions, so the workflow only calls them at its outcome
points.
"""

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.models import ApprovalRequest, WorkflowResult

APPROVALS_REQUESTED = "hitl_approvals_requested"
RUNS_FINISHED = "hitl_runs_finished"
TIME_TO_DECISION = "hitl_time_to_decision"


def record_approval_requested() -> None:
    """A run now waits for a person (counted once per run, whatever its stages)."""
    workflow.metric_meter().create_counter(
        APPROVALS_REQUESTED, "Runs that asked a person to decide"
    ).add(1)


def record_outcome(result: WorkflowResult, request: ApprovalRequest | None) -> None:
    """The run's outcome, and how long the deciding person took, when one decided."""
    meter = workflow.metric_meter()
    outcome = {"outcome": result.outcome.value}
    meter.create_counter(
        RUNS_FINISHED,
        "Finished runs by outcome: approved, rejected, timed_out, auto_approved, analysis_failed",
    ).add(1, outcome)
    decision = result.decision
    if request is None or decision is None or decision.decided_at is None:
        return
    waited = max(decision.decided_at - request.requested_at, timedelta(0))
    meter.create_histogram_timedelta(
        TIME_TO_DECISION, "From the approval request to the deciding vote", unit="duration"
    ).record(waited, outcome)
