"""Turns the LLM's text into a validated ``ProposedAction``, or says precisely why not.

This runs inside the analysis activity, never in the workflow: a malformed answer must be
an activity failure that Temporal retries, not a workflow-task failure that would replay
the same bad output forever.

The model is asked to answer under ``PROPOSAL_SCHEMA`` (structured outputs: OpenAI's
``strict`` json_schema, llama.cpp's grammar-constrained ``response_format``). A strict schema
cannot express ``dict[str, str]``, so on the wire ``parameters`` is a list of key/value
pairs; the parser turns it back into the dict the workflow uses. Servers that ignore the
schema still work: the answer is parsed by the same rules either way.
"""

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.limits import MAX_MODEL_ANSWER_CHARS, action_problem, too_long, tool_call_problem
from models.models import ProposedAction
from models.validation import summarise
from tools.registry import InvalidToolCall, validated_arguments
from tools.schema import with_tool_call

_CODE_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(?P<body>.*?)\n?```$", re.DOTALL)


def _text(max_chars: int) -> str:
    """One line of at most ``max_chars`` characters, as a JSON-schema pattern.

    Bounded strings are what make a small model's answer finish: at temperature 0 it can
    repeat a phrase until ``max_tokens`` cuts the JSON in half. Strict schemas take
    ``pattern`` but not ``maxLength``. Double quotes and backslashes are left out because
    llama.cpp's pattern grammar writes pattern characters unescaped, which breaks the JSON.
    """
    return rf'^[^"\\\n]{{1,{max_chars}}}$'


# The docstrings and descriptions below are sent to the model as part of the schema.
class ParameterPair(BaseModel):
    """One detail the action needs, e.g. which table, recipient or amount."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=_text(30), description="e.g. table, recipient, amount")
    value: str = Field(pattern=_text(40))


# A ``ProposedAction`` in the shape a strict schema allows.
class ProposalAnswer(BaseModel):
    """Exactly one action that fulfils the user's request."""

    model_config = ConfigDict(extra="forbid", title="proposed_action")

    action_type: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,39}$", description="short snake_case name of the action"
    )
    description: str = Field(pattern=_text(140), description="what will be done, to what")
    reasoning: str = Field(pattern=_text(100), description="why this fulfils the request")
    risky_action: bool
    parameters: list[ParameterPair] = Field(max_length=3)


PROPOSAL_SCHEMA_NAME = "proposed_action"
# The tool call is added to the schema, not to ``ProposalAnswer``: each tool's own argument
# model validates it in ``parse_proposed_action``.
PROPOSAL_SCHEMA: dict = with_tool_call(ProposalAnswer.model_json_schema())


class MalformedProposalError(ValueError):
    """The LLM's answer is not a usable proposed action."""


NO_TOOL_CALL = "the proposal names no tool (tool_call is missing or null); only a tool can act"


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
    if isinstance(data.get("parameters"), list):
        data["parameters"] = parameters_from_pairs(data["parameters"])
    try:
        action = ProposedAction.model_validate(data, strict=True)
    except ValidationError as err:
        problems = summarise(err)
        raise MalformedProposalError(f"the JSON is not a proposed action ({problems})") from err
    if problem := action_problem(action) or tool_call_problem(action):
        raise MalformedProposalError(f"the proposed action is over a limit: {problem}")
    return _with_valid_tool_call(action)


def _with_valid_tool_call(action: ProposedAction) -> ProposedAction:
    """A proposal must name a known tool with arguments its model accepts; they are stored
    as that model dumps them, so the workflow only ever carries validated arguments. Only a
    tool can act, so a proposal with none (missing or null) is malformed, like an unknown
    tool: retried, then ``analysis_failed``, never sent to a person to approve."""
    if action.tool_call is None:
        raise MalformedProposalError(NO_TOOL_CALL)
    try:
        _, arguments = validated_arguments(action.tool_call)
    except InvalidToolCall as err:
        raise MalformedProposalError(f"the tool call is not valid: {err}") from err
    call = action.tool_call.model_copy(update={"arguments": arguments.model_dump(mode="json")})
    return action.model_copy(update={"tool_call": call})


def parameters_from_pairs(pairs: list) -> dict[str, str]:
    """The schema's ``[{"key": k, "value": v}, ...]`` as ``{k: v}``.

    Only the shape is checked: the schema's length limits guide the model, they are no
    reason to refuse an answer from a server that ignores the schema. A key repeated with
    another value is ambiguous (which one would the approver see?), so it is malformed, not
    overwritten; repeated with the same value, it is only said twice.
    """
    parameters: dict[str, str] = {}
    for pair in pairs:
        if not (
            isinstance(pair, dict)
            and set(pair) == {"key", "value"}
            and all(isinstance(pair[name], str) for name in ("key", "value"))
        ):
            raise MalformedProposalError(
                f"each parameter must be a {{key, value}} pair of strings, got {pair!r:.80}"
            )
        if parameters.get(pair["key"], pair["value"]) != pair["value"]:
            raise MalformedProposalError(f"the parameter {pair['key']!r} is given twice")
        parameters[pair["key"]] = pair["value"]
    return parameters
