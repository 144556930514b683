"""When did each decision signal reach Temporal? Asked of the server, answered from history.

A worker that was down across a deadline receives, in one activation, the decisions sent
before the deadline, those sent after it, and the deadline's timer; the workflow sees one
time for all of them. The server stamped each signal when it stored it: this activity
reads those stamps, so the workflow can apply exactly the decisions that were on time.
"""

from datetime import UTC

from temporalio import activity

from models.models import SignalArrivals, SignalArrivalsInput


@activity.defn
async def signal_arrivals(request: SignalArrivalsInput) -> SignalArrivals:
    """The event times of the run's signals named ``signal_names``, in history order."""
    handle = activity.client().get_workflow_handle(request.workflow_id, run_id=request.run_id)
    names = set(request.signal_names)
    times = [
        event.event_time.ToDatetime(tzinfo=UTC)
        async for event in handle.fetch_history_events()
        if event.HasField("workflow_execution_signaled_event_attributes")
        and event.workflow_execution_signaled_event_attributes.signal_name in names
    ]
    return SignalArrivals(times=times)
