"""A run that waits days for its approver, with no worker running for most of that time.

The wait is a timer in the server's history, not a coroutine in a worker: the worker that
opened the request can stop, and the one that is running days later rebuilds the run from
history, deadline included. On the time-skipping server three days take under a second.
"""

from datetime import timedelta

from temporalio.worker import Worker

from constants import APPROVAL_DECISION_SIGNAL
from models.models import ApprovalRequest, Outcome, WorkflowInput
from tests.helpers import Run, TimeSkippingRuns, script_risky_proposal, started, wait_until
from tests.record_histories import decision_for, pending_request, status_of

THREE_DAYS = int(timedelta(days=3).total_seconds())


async def parked(handle: Run) -> ApprovalRequest:
    """The pending request, once the run has nothing left in flight (its notices sent):
    from here on it is only a timer and a message handler, and no worker is needed."""
    request = await pending_request(handle)

    async def activities_in_flight() -> int:
        return len((await handle.describe()).raw_description.pending_activities)

    await wait_until(activities_in_flight, lambda count: count == 0)
    return request


def first_worker(runs: TimeSkippingRuns) -> Worker:
    """The worker that opens the request and then goes away. Without a cache, so that the
    test server, which does not hear of a worker's shutdown, never holds the run's next task
    for that worker's (sticky) queue; on a real server a stopped worker's tasks move on."""
    return runs.worker(max_cached_workflows=0)


def waits_three_days(runs: TimeSkippingRuns, tag: str) -> WorkflowInput:
    text = script_risky_proposal(runs.llm_server, f"Delete the old audit logs [{tag}]")
    return WorkflowInput(user_request=text, approval_timeout_seconds=THREE_DAYS)


async def test_an_approval_two_days_later_reaches_a_worker_that_never_saw_the_run(
    runs: TimeSkippingRuns,
) -> None:
    run_input = waits_three_days(runs, runs.workflow_id)
    async with started(runs.client, runs.task_queue, runs.workflow_id, run_input) as handle:
        async with first_worker(runs):
            request = await parked(handle)
        # No worker at all for two days.
        await runs.env.sleep(timedelta(days=2))
        async with runs.worker():
            status = await status_of(handle)
            assert status.approval_request is not None
            assert status.approval_request.deadline == request.deadline
            await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))
            result = await handle.result()

    assert result.outcome == Outcome.APPROVED
    assert result.execution is not None
    decided = next(e.at for e in result.audit_trail if e.event == "decision_approved")
    assert decided - request.requested_at >= timedelta(days=2)


async def test_the_deadline_days_later_is_kept_by_a_worker_that_never_saw_the_run(
    runs: TimeSkippingRuns,
) -> None:
    """The timer set on day 0 fires on day 3 for whichever worker runs then. (The test
    server pauses time while a task waits for a worker, so the worker comes back just
    before the deadline; tests/test_fault_tolerance.py lets a deadline pass while the
    server itself is down.)"""
    run_input = waits_three_days(runs, runs.workflow_id)
    async with started(runs.client, runs.task_queue, runs.workflow_id, run_input) as handle:
        async with first_worker(runs):
            request = await parked(handle)
        await runs.env.sleep(timedelta(days=2, hours=23))
        async with runs.worker():
            result = await handle.result()

    assert result.outcome == Outcome.TIMED_OUT
    assert result.execution is None
    timed_out = next(e.at for e in result.audit_trail if e.event == "timed_out")
    assert request.deadline <= timed_out < request.deadline + timedelta(minutes=1)
