"""The workflow's steps for a tool call: preview the effect before asking, execute it once
approved. Workflow code (it runs in the sandbox): it only schedules activities and keeps
what the run knows about its call (``ToolCallState``).

Kept out of the workflow module so the story there stays "analyse, assess, ask, act", and
so the timeouts a tool call runs under are read in one place.
"""

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.preview_tool_call import preview_tool_call
    from models.models import ExecutionResult
    from models.tools import EffectPreview, ExecuteToolInput, ToolCall, ToolOutcome, ToolStatus
    from tools.registry import get_tool

# Execute rides out an outage of the target system: retries back off to one a minute and
# go on for as long as the tool's persistence (``Tool.execute_persistence``, 30 minutes by
# default); then the run ends as ``execution_failed``.
EXECUTE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=60), maximum_attempts=0)
PREVIEW_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=5)
# How often a run asks again after the data changed under an approved preview, before it
# ends without acting: data that keeps changing needs a person to look, not a loop.
MAX_PREVIEWS = 3


@dataclass
class ToolCallState:
    """What a run knows about its tool call.

    ``preview`` is the effect people are asked about; an amended call gets a fresh one.
    ``previews`` counts them, so data that keeps changing under an approval ends the run
    instead of asking forever.
    """

    preview: EffectPreview | None = None
    previews: int = 0

    async def preview_effect(self, call: ToolCall) -> tuple[str, str]:
        """Work the call's effect out and return the audit entry. Raises ActivityError when
        the tool cannot work it out (its arguments do not fit it, say); the old effect is
        dropped."""
        self.preview = None
        self.preview = await preview_effect(call)
        self.previews += 1
        return "effect_previewed", self.preview.summary

    def proposed(self, preview: EffectPreview | None) -> tuple[str, str]:
        """The analysis worked the effect out with the proposal; the audit entry."""
        self.preview = preview
        self.previews += preview is not None
        return "effect_previewed", preview.summary if preview else "no tool call"

    def may_ask_again(self) -> bool:
        return self.previews < MAX_PREVIEWS

    def drifted(self, outcome: ToolOutcome) -> None:
        """The tool found another effect at execution: that one is what people see next."""
        self.preview = outcome.preview
        self.previews += 1


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
) -> ToolOutcome:
    """Run the call once per key, only if the data still matches the approved preview.

    ``approved`` is None only for a read-only tool that ran without asking. The caller
    shields it from the run's cancellation: once started, it finishes and is recorded.
    """
    tool = get_tool(call.tool)
    return await workflow.execute_activity(
        call.tool,  # the dynamic execute activity, under the tool's own name
        ExecuteToolInput(
            idempotency_key=idempotency_key,
            call=call,
            approved_fingerprint=approved.fingerprint if approved is not None else None,
        ),
        result_type=ToolOutcome,
        start_to_close_timeout=tool.execute_timeout,
        schedule_to_close_timeout=tool.execute_persistence,
        heartbeat_timeout=timedelta(seconds=10),  # a crashed worker is noticed in seconds
        retry_policy=EXECUTE_RETRY,
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
