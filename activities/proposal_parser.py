"""Turns the LLM's text into a validated ``ProposedAction``, or says precisely why not.

This runs inside the analysis activity, never in the workflow: a malformed answer must be
an activity failure that Temporal retries, not a workflow-task failure that would replay
the same bad output forever.
"""

import json
import re

from pydantic import ValidationError

from models.limits import MAX_MODEL_ANSWER_CHARS, action_problem, too_long
from models.models import ProposedAction
from models.validation import summarise
from tools.registry import InvalidToolCall, validated_arguments

_CODE_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(?P<body>.*?)\n?```$", re.DOTALL)


class MalformedProposalError(ValueError):
    """The LLM's answer is not a usable proposed action."""


def strip_code_fence(text: str) -> str:
    """Models often wrap JSON in a Markdown fence even when told not to."""
    stripped = text.strip()
    match = _CODE_FENCE.match(stripped)
    return match.group("body").strip() if match else stripped


def parse_proposed_action(text: str) -> ProposedAction:
    """Parse strictly: wrong types are not coerced, unknown fields are refused, and an
    answer over the input limits (models/limits.py) is malformed, as the workflow would
    otherwise copy it into payloads Temporal refuses."""
    if problem := too_long("the answer", text, MAX_MODEL_ANSWER_CHARS):
        raise MalformedProposalError(problem)
    body = strip_code_fence(text)
    if not body:
        raise MalformedProposalError("the LLM returned an empty answer")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as err:
        raise MalformedProposalError(f"the answer is not JSON ({err.msg}): {body[:80]!r}") from err
    if not isinstance(data, dict):
        raise MalformedProposalError(f"expected a JSON object, got {type(data).__name__}")
    try:
        action = ProposedAction.model_validate(data, strict=True)
    except ValidationError as err:
        problems = summarise(err)
        raise MalformedProposalError(f"the JSON is not a proposed action ({problems})") from err
    if problem := action_problem(action):
        raise MalformedProposalError(f"the proposed action is over a limit: {problem}")
    return _with_valid_tool_call(action)


def _with_valid_tool_call(action: ProposedAction) -> ProposedAction:
    """A tool call must name a known tool with arguments its model accepts; they are stored
    as that model dumps them, so the workflow only ever carries validated arguments."""
    if action.tool_call is None:
        return action
    try:
        _, arguments = validated_arguments(action.tool_call)
    except InvalidToolCall as err:
        raise MalformedProposalError(f"the tool call is not valid: {err}") from err
    call = action.tool_call.model_copy(update={"arguments": arguments.model_dump(mode="json")})
    return action.model_copy(update={"tool_call": call})
