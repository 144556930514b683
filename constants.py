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
# The web inbox (python -m inbox) and the notices that link to it.
INBOX_URL_ENV = "HITL_INBOX_URL"  # where approvers open the inbox; notices link there
INBOX_HOST_ENV = "HITL_INBOX_HOST"  # the inbox's listening address (default 127.0.0.1)
INBOX_PORT_ENV = "HITL_INBOX_PORT"  # its port (default 8000)
INBOX_USERS_ENV = "HITL_INBOX_USERS"  # the accounts file (password and token hashes)
INBOX_TRUSTED_PROXIES_ENV = "HITL_INBOX_TRUSTED_PROXIES"  # proxies whose user header counts
INBOX_SECRET_ENV = "HITL_INBOX_SECRET"  # signs session cookies (default: random per start)
# The trusted proxy proves itself with this secret, in PROXY_SECRET_HEADER, on every request.
INBOX_PROXY_SECRET_ENV = "HITL_INBOX_PROXY_SECRET"
# The one header the proxy names the user in (default DEFAULT_PROXY_USER_HEADER).
INBOX_PROXY_USER_HEADER_ENV = "HITL_INBOX_PROXY_USER_HEADER"
PROXY_SECRET_HEADER = "X-Inbox-Proxy-Secret"
DEFAULT_PROXY_USER_HEADER = "X-Forwarded-User"  # oauth2-proxy's --pass-user-headers
SMTP_HOST_ENV = "HITL_SMTP_HOST"  # optional: also e-mail approval notices through this server
SMTP_PORT_ENV = "HITL_SMTP_PORT"  # default 587 (STARTTLS), 465 with HITL_SMTP_TLS=implicit
SMTP_TLS_ENV = "HITL_SMTP_TLS"  # starttls (default), implicit, or none (loopback only)
SMTP_USER_ENV = "HITL_SMTP_USER"
SMTP_PASSWORD_ENV = "HITL_SMTP_PASSWORD"
SMTP_FROM_ENV = "HITL_SMTP_FROM"
SMTP_TO_ENV = "HITL_SMTP_TO"  # comma-separated recipients
# Payload encryption (opt-in): `key-id:base64-key` pairs, the first one encrypting; or a file.
ENCRYPTION_KEYS_ENV = "HITL_ENCRYPTION_KEYS"
ENCRYPTION_KEY_FILE_ENV = "HITL_ENCRYPTION_KEY_FILE"
CODEC_TOKEN_ENV = "HITL_CODEC_TOKEN"  # bearer token the codec server requires
CODEC_CORS_ORIGIN_ENV = "HITL_CODEC_CORS_ORIGIN"  # the Web UI origin allowed to call it
METRICS_ADDRESS_ENV = "HITL_METRICS_ADDRESS"  # host:port where the worker serves /metrics
# Slack (optional): the worker posts approval messages with Approve / Reject buttons, and the
# inbox's /slack/interactions route takes the presses (docs/slack.md).
SLACK_BOT_TOKEN_ENV = "HITL_SLACK_BOT_TOKEN"  # xoxb-...: the worker posts and updates messages
SLACK_CHANNEL_ENV = "HITL_SLACK_CHANNEL"  # the channel ID approval messages go to
SLACK_SIGNING_SECRET_ENV = "HITL_SLACK_SIGNING_SECRET"  # the inbox checks each press with it
SLACK_REVIEWERS_ENV = "HITL_SLACK_REVIEWERS"  # JSON file {"U012AB3CD": "alice"}: who is who
SLACK_INTERACTIONS_PATH = "/slack/interactions"  # the app manifest's interactivity URL path
# Who may approve each stage: a JSON file {"manager": ["alice"], "cfo": ["dana"]}, read by
# whatever starts a run (start_workflow, the inbox, the demo) into the run's input.
STAGE_APPROVERS_ENV = "HITL_STAGE_APPROVERS"

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_TASK_QUEUE = "human-in-the-loop-task-queue"
DEFAULT_CODEC_CORS_ORIGIN = "http://localhost:8233"  # the dev server's Web UI

WORKFLOW_TYPE = "HumanInTheLoopWorkflow"
STAGE_APPROVAL_WORKFLOW_TYPE = "ApprovalWorkflow"  # one child workflow per approval stage
WORKFLOW_ID_PREFIX = "hitl"

# Message names: the workflow's public surface.
APPROVAL_DECISION_SIGNAL = "approval_decision"  # full ApprovalDecision JSON
APPROVE_SIGNAL = "approve"  # shorthand: true or false decides the pending request
SUBMIT_DECISION_UPDATE = "submit_decision"  # like the signal, but answers accepted/refused
STATUS_QUERY = "get_status"

# What a running workflow does is versioned (workflows/versions.py, the rule in its
# docstring). 1.0 is the baseline; changes to a running workflow's commands since then are
# listed here, newest first, each until its old runs have drained (at most two).
WORKFLOW_BASELINE = "1.0"
# An approval's edit must change the call, and every edited call is asked about again
# (1.0 runs keep 1.0's rule: workflows/legacy_1_0.py).
EDITS_CHANGE_THE_CALL = "hitl-2026-12-07-edits-change-the-call"
LIVE_VERSIONS: tuple[str, ...] = (EDITS_CHANGE_THE_CALL,)

# Error types a refused ``submit_decision`` update carries: refused (the reason is the
# message), or a repeat of a decision already counted (the counted one is its detail).
DECISION_REFUSED_ERROR = "DecisionRefused"
ALREADY_APPLIED_ERROR = "AlreadyApplied"

# Custom search attribute (Keyword) for listing runs that await a decision. Register it:
#   temporal server start-dev --search-attribute ApprovalStatus=Keyword
APPROVAL_STATUS_SEARCH_ATTRIBUTE = "ApprovalStatus"
# When a request that names its approvers is staged, they decide first, as this stage.
NAMED_APPROVERS_STAGE = "approvers"
# The reviewer recorded for the shorthand signal, which carries no identity.
SHORTHAND_REVIEWER = "temporal-cli"
# How a staged run refuses a decision sent to itself (then it names the waiting stage, its
# members and its child); send_approval finds the words in the refusal and goes there.
STAGED_PARENT_REFUSAL = "decided stage by stage"


def task_queue() -> str:
    """The task queue to use; overridable so tests and benchmarks never share one."""
    return os.environ.get(TASK_QUEUE_ENV, DEFAULT_TASK_QUEUE)


def demo_task_queue() -> str:
    """The demo's own queue: a worker on the shared one never answers the demo's run (and
    the demo never credits its model with another worker's answer)."""
    return f"{task_queue()}-demo"


# A stage's child workflow ID is "<workflow-id>/stage/<request-id>/<n>-<stage>"; workflow IDs
# containing this marker are refused at start, so no user-chosen ID can take a stage's ID.
STAGE_ID_MARKER = "/stage/"
