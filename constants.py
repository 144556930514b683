"""Every name this sample exposes to the outside world, in one place.

Workers, starters, approval scripts, the Temporal CLI recipes in the README and the tests
all agree on these strings; changing one here changes it everywhere.
"""

import os

# Environment variables read by this project (Temporal's own TEMPORAL_ADDRESS,
# TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_PROFILE... are read by temporalio.envconfig).
TASK_QUEUE_ENV = "HITL_TASK_QUEUE"
OPENAI_API_KEY_ENV = "OPENAI_API_KEY"
OPENAI_BASE_URL_ENV = "OPENAI_BASE_URL"
OPENAI_MODEL_ENV = "OPENAI_MODEL"
LLM_API_ENV = "HITL_LLM_API"  # responses (default) or chat_completions
WEBHOOK_URL_ENV = "HITL_WEBHOOK_URL"  # optional: also POST approval notices here
WEBHOOK_TOKEN_ENV = "HITL_WEBHOOK_TOKEN"  # optional bearer token for the webhook
STATE_DIR_ENV = "HITL_STATE_DIR"  # where the ledger of executed idempotency keys lives

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_TASK_QUEUE = "human-in-the-loop-task-queue"

WORKFLOW_TYPE = "HumanInTheLoopWorkflow"
STAGE_APPROVAL_WORKFLOW_TYPE = "ApprovalWorkflow"  # one child workflow per approval stage
WORKFLOW_ID_PREFIX = "hitl"

# Message names: the workflow's public surface.
APPROVAL_DECISION_SIGNAL = "approval_decision"  # full ApprovalDecision JSON
APPROVE_SIGNAL = "approve"  # shorthand: true or false decides the pending request
SUBMIT_DECISION_UPDATE = "submit_decision"  # like the signal, but answers accepted/refused
STATUS_QUERY = "get_status"

# Custom search attribute (Keyword) for listing runs that await a decision. Register it:
#   temporal server start-dev --search-attribute ApprovalStatus=Keyword
APPROVAL_STATUS_SEARCH_ATTRIBUTE = "ApprovalStatus"
# The reviewer recorded for the shorthand signal, which carries no identity.
SHORTHAND_REVIEWER = "temporal-cli"


def task_queue() -> str:
    """The task queue to use; overridable so tests and benchmarks never share one."""
    return os.environ.get(TASK_QUEUE_ENV, DEFAULT_TASK_QUEUE)


# A stage's child workflow ID is "<workflow-id>/stage/<n>-<stage>/<run-id>"; workflow IDs
# containing this marker are refused at start, so no user-chosen ID can take a stage's ID.
STAGE_ID_MARKER = "/stage/"
# The update ID of a decision is derived from its request and reviewer, so a re-sent
# decision is the same update and gets the first answer back (see decision_update_id).
DECISION_UPDATE_ID_PREFIX = "decision"
