"""The execute activity: one dynamic activity that takes the name of each tool, so the
history and the Web UI show ``pay_invoice``, not a generic step, and each tool's timeouts come
from its registry entry. Adding a tool still touches only ``tools/registry.py``. A drifted or
infeasible execution is not a failure: it is an outcome the workflow records and acts on."""

from collections.abc import Sequence

from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from activities.tool_thread import in_thread
from models.tools import ExecuteToolInput, ToolOutcome
from tools.database import database_path
from tools.execution import execute_call


@activity.defn(dynamic=True)
async def execute_tool(args: Sequence[RawValue]) -> ToolOutcome:
    """The execute activity, named after the tool whose call it runs."""
    return await execute_tool_call(_execute_input(args))


async def execute_tool_call(request: ExecuteToolInput) -> ToolOutcome:
    """Execute the approved call once per idempotency key, only if its preview still holds."""
    outcome = await in_thread(lambda guard: execute_call(database_path(), request, guard))
    activity.logger.info(
        "Tool %s [idempotency key %s]: %s: %s",
        outcome.tool,
        request.idempotency_key,
        outcome.status,
        outcome.summary,
    )
    return outcome


def _execute_input(args: Sequence[RawValue]) -> ExecuteToolInput:
    """The one argument, an ``ExecuteToolInput`` for the tool this activity is named after."""
    name = activity.info().activity_type
    if len(args) != 1:
        raise ApplicationError(f"{name}: expected one argument", non_retryable=True)
    request = activity.payload_converter().from_payload(args[0].payload, ExecuteToolInput)
    if request.call.tool != name:
        raise ApplicationError(
            f"activity {name} was given a call of {request.call.tool}", non_retryable=True
        )
    return request
