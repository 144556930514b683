"""Child workflow IDs for approval stages: unique per run, and never a user's ID.

``<workflow-id>/stage/<position>-<stage>/<run-id>``: the run ID makes it unique even when a
workflow ID is reused, the position even if a stage name repeats (possible in runs started
before names were checked), and ``STAGE_ID_MARKER`` is refused in workflow IDs at start,
so a user cannot take it first. Temporal refuses IDs over 1000 characters (its default
limit): a long workflow ID is shortened, and a stage name that still does not fit is a
recorded outcome instead of a workflow task that fails for ever.
"""

from constants import STAGE_ID_MARKER

MAX_WORKFLOW_ID_LENGTH = 1000
# Room kept for the workflow ID's part: the rest is the marker, position, stage and run ID.
WORKFLOW_ID_PART = 600


def stage_child_id(workflow_id: str, run_id: str, position: int, stage: str) -> str | None:
    """The stage's child workflow ID, or None when the stage name cannot fit in one."""
    child_id = f"{workflow_id[:WORKFLOW_ID_PART]}{STAGE_ID_MARKER}{position}-{stage}/{run_id}"
    return child_id if len(child_id) <= MAX_WORKFLOW_ID_LENGTH else None


def reserved_for_stages(workflow_id: str) -> bool:
    """Whether a user-chosen workflow ID has the form kept for stage children."""
    return STAGE_ID_MARKER in workflow_id
