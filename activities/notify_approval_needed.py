"""The notify activity: tell a human that a decision is needed, and exactly how to give it.

Here the notice is printed in the worker's terminal, the one place this sample prints
instead of logging: it is a message for a person. ``send_webhook_notice.py`` sends the same
notice to a chat or ticketing webhook.

Everything in the notice that a requester or the model wrote goes through ``terminal_safe``:
a proposal whose description carries escape sequences or a forged "Approve or reject:" line
prints as one harmless line.
"""

import json
import os
import shlex

from temporalio import activity

from console_format import format_preview, inbox_link, terminal_safe
from constants import (
    APPROVAL_DECISION_SIGNAL,
    CODEC_TOKEN_ENV,
    ENCRYPTION_KEY_FILE_ENV,
    ENCRYPTION_KEYS_ENV,
    STAGE_ID_MARKER,
)
from models.models import ApprovalRequest

REVIEWER_MARK = "@reviewer@"  # where the pasting shell puts its user into the decision's JSON
# $USER, or the OS user where a container or service shell leaves it unset (an empty
# reviewer would be refused).
PASTING_USER = "${USER:-$(id -un)}"
ENCRYPTION_ENVS = (ENCRYPTION_KEYS_ENV, ENCRYPTION_KEY_FILE_ENV)
# With encryption on, the worker refuses a decision it cannot open: the CLI must encrypt it.
CODEC_HINT = (
    "    (encryption is on: add --codec-endpoint <codec-server-url> "
    f'--codec-auth "Bearer ${CODEC_TOKEN_ENV}", or the run refuses it)'
)


def _decision_commands(request: ApprovalRequest) -> list[str]:
    """Commands an approver can paste as they are: the Temporal CLI lives in the project's
    virtualenv, hence ``uv run``, and every ID is shell-quoted (IDs are user-chosen)."""
    workflow_id, request_id = shlex.quote(request.workflow_id), shlex.quote(request.request_id)
    if request.stage is not None:
        # A stage is decided by one of its members, named: never by the CLI's shorthand
        # signal, whose reviewer (temporal-cli) is nobody's member. The decision goes to the
        # run (the stage child's ID begins with it), bound to this stage.
        run_id = shlex.quote(request.workflow_id.partition(STAGE_ID_MARKER)[0])
        stage = shlex.quote(request.stage)
        decide = f"uv run python -m send_approval {run_id} {request_id}"
        member = "--stage " + stage + " --reviewer MEMBER"
        return [
            f"Approve or reject stage {request.stage!r}, as one of its members:",
            f'  {decide} approve "notes" {member}',
            f'  {decide} reject "notes" {member}',
        ]
    # The reviewer is whoever pastes it: the shell fills in their user name, as
    # send_approval's --reviewer defaults to it (unquoted for that one word only).
    before, after = json.dumps(
        {
            "request_id": request.request_id,
            "approved": True,
            "reviewer": REVIEWER_MARK,
            "reviewer_notes": "Looks good",
        }
    ).split(REVIEWER_MARK)
    approve_json = f'{shlex.quote(before)}"{PASTING_USER}"{shlex.quote(after)}'
    return [
        "Approve or reject:",
        f'  uv run python -m send_approval {workflow_id} {request_id} approve "notes"',
        f'  uv run python -m send_approval {workflow_id} {request_id} reject "notes"',
        "Or with the Temporal CLI:",
        f"  uv run temporal workflow signal --workflow-id {workflow_id} \\",
        f"    --name {APPROVAL_DECISION_SIGNAL} --input {approve_json}",
        *([CODEC_HINT] if _encrypting() else []),
    ]


def _encrypting() -> bool:
    """Keys are set (the worker checked them at start): a signal sent in clear is refused."""
    return any(os.environ.get(name, "").strip() for name in ENCRYPTION_ENVS)


def format_approval_notice(request: ApprovalRequest) -> str:
    action = request.proposed_action
    safe = terminal_safe
    title = "ESCALATED: APPROVAL STILL REQUIRED" if request.escalated else "APPROVAL REQUIRED"
    lines = [
        f"================ {title} ================",
        f"Workflow ID: {safe(request.workflow_id)}",
        f"Request ID: {safe(request.request_id)}",
        f"Request:     {safe(request.user_request)}",
        f"Action:      {safe(action.action_type)}: {safe(action.description)}",
        f"Reasoning:   {safe(action.reasoning)}",
        *(format_preview(request.preview, width=13) if request.preview is not None else []),
        "Why a human must decide:",
        *(f"    - {safe(reason)}" for reason in request.risk_reasons),
    ]
    if request.approvers:
        lines.append(f"Who may decide: {safe(', '.join(request.approvers))}")
    lines.append(f"Decide before {request.deadline.isoformat(timespec='seconds')}.")
    if (link := inbox_link(request.workflow_id)) is not None:
        lines.append(f"Decide in the browser: {safe(link)}")
    lines += ["", *(safe(line) for line in _decision_commands(request)), "=" * 50]
    return "\n" + "\n".join(lines) + "\n"


@activity.defn
async def notify_approval_needed(request: ApprovalRequest) -> None:
    """Print the approval notice for the person watching the worker."""
    print(format_approval_notice(request), flush=True)
    activity.logger.info("Approval requested: %s", request.request_id)
