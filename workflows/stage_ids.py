"""Child workflow IDs for approval stages: unique per round, stable across replay and reset.

``<workflow-id>/stage/<request-id>/<position>-<stage>``: the request ID is a fresh
``workflow.uuid4()`` per round of asking, made before the round's first stage starts, so a
later round (after an amendment or a drift) never reuses an earlier round's IDs, and a reset
(which keeps the events before its point, this ID's included) rebuilds the same ID.
``STAGE_ID_MARKER`` is refused in workflow IDs at start, so a user cannot take it first.
Temporal refuses IDs over 1000 characters (its default limit): a long workflow ID is
shortened to leave room for the rest.
"""

from constants import STAGE_ID_MARKER

MAX_WORKFLOW_ID_LENGTH = 1000
# Room kept for the workflow ID's part: the rest is the marker, request ID, position, stage.
WORKFLOW_ID_PART = 600


def stage_child_id(workflow_id: str, request_id: str, position: int, stage: str) -> str:
    """The stage's child workflow ID (stage names are at most 40 characters, request IDs
    at most 100, so it always fits)."""
    return f"{workflow_id[:WORKFLOW_ID_PART]}{STAGE_ID_MARKER}{request_id}/{position}-{stage}"


def reserved_for_stages(workflow_id: str) -> bool:
    """Whether a user-chosen workflow ID has the form kept for stage children."""
    return STAGE_ID_MARKER in workflow_id
