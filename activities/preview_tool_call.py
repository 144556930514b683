"""The preview activity: what a tool call would change, worked out on a private copy of the
data without changing anything (the effect people are asked about)."""

from temporalio import activity

from activities.tool_thread import in_thread
from models.tools import EffectPreview, ToolCall
from tools.database import database_path
from tools.execution import preview_call


@activity.defn
async def preview_tool_call(call: ToolCall) -> EffectPreview:
    """What the call would change, worked out without changing anything."""
    return await in_thread(lambda guard: preview_call(database_path(), call, guard))
