"""The workflow's steps for a tool call: preview the effect before asking, execute it once
approved. Workflow code (it runs in the sandbox): it only schedules activities.

Kept out of the workflow module so the story there stays "analyse, assess, ask, act", and
so the timeouts a tool call runs under are read in one place.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.tool_activities import execute_tool_call, preview_tool_call
    from models.models import ExecutionResult
    from tools.models import EffectPreview, ExecuteToolInput, ToolCall, ToolOutcome, ToolStatus

PREVIEW_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=5)
# How often a run asks again after the data changed under an approved preview, before it
# ends without acting: data that keeps changing needs a person to look, not a loop.
MAX_PREVIEWS = 3


async def preview_effect(call: ToolCall) -> EffectPreview:
    """What the call would change; computed by the tool, changing nothing."""
    return await workflow.execute_activity(
        preview_tool_call,
        call,
        start_to_close_timeout=timedelta(seconds=60),
        heartbeat_timeout=timedelta(seconds=10),
        retry_policy=PREVIEW_RETRY,
        summary=f"preview {call.tool}",
    )


async def execute_tool(
    idempotency_key: str,
    call: ToolCall,
    approved: EffectPreview | None,
    *,
    retry_policy: RetryPolicy,
    schedule_to_close_timeout: timedelta,
) -> ToolOutcome:
    """Run the call once per key, only if the data still matches the approved preview.

    ``approved`` is None only for a read-only tool that ran without asking. Cancelling the
    run while the tool commits waits for it (WAIT_CANCELLATION_COMPLETED), so "cancelled"
    is never reported for a committed effect.
    """
    return await workflow.execute_activity(
        execute_tool_call,
        ExecuteToolInput(
            idempotency_key=idempotency_key,
            call=call,
            approved_fingerprint=approved.fingerprint if approved is not None else None,
        ),
        start_to_close_timeout=timedelta(seconds=120),
        schedule_to_close_timeout=schedule_to_close_timeout,
        heartbeat_timeout=timedelta(seconds=10),
        retry_policy=retry_policy,
        cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        summary=f"execute {call.tool}",
    )


def execution_result(outcome: ToolOutcome) -> ExecutionResult:
    """The run's ``ExecutionResult``, in the format results always had, with the outcome."""
    return ExecutionResult(
        idempotency_key=outcome.idempotency_key,
        summary=outcome.summary,
        simulated=False,
        tool_outcome=outcome,
    )


def acted(outcome: ToolOutcome) -> bool:
    return outcome.status is ToolStatus.EXECUTED
