"""The execute activity. The action is simulated: it is logged, and nothing is changed.

A real implementation would call the tool the LLM chose and pass ``idempotency_key`` to it
(as an Idempotency-Key header, a unique constraint, a dedup table...). The key is derived
from the workflow and request IDs, so every retry of one approved action carries the same
key and the downstream system can refuse to act twice.
"""

from temporalio import activity

from models.models import ExecuteActionInput, ExecutionResult


@activity.defn
async def execute_action(request: ExecuteActionInput) -> ExecutionResult:
    """Carry out the approved action (simulated) and say what was done."""
    action = request.action
    activity.logger.info(
        "Executing action %s [idempotency key %s]: %s",
        action.action_type,
        request.idempotency_key,
        action.description,
    )
    return ExecutionResult(
        idempotency_key=request.idempotency_key,
        summary=f"Simulated {action.action_type}: {action.description}",
    )
