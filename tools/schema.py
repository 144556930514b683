"""The JSON schema of a tool call, in the form OpenAI's strict structured outputs accept.

Strict mode wants every object closed (``additionalProperties: false``) with every property
required, and no ``$ref`` to definitions outside the schema it is embedded in; it does not
honour every validation keyword. So the pydantic schemas of the argument models are
inlined and closed, and the keywords strict mode may not accept (lengths, patterns, bounds)
are dropped: the schema shapes the answer, and the argument model inside the analysis
activity still validates every value.

Every string and every list stays bounded, though: a small model at temperature 0 can
repeat a phrase until ``max_tokens`` cuts its JSON in half, and under a grammar (llama.cpp)
each extra token costs. So free text becomes a one-line pattern of at most
``MAX_SCHEMA_TEXT`` characters (strict schemas take ``pattern``, not ``maxLength``), and
lists hold at most ``MAX_SCHEMA_ITEMS``. The schema may ask for less than a tool takes,
never for more. Each tool is one branch of an ``anyOf`` whose
``tool`` is an enum of that one name, so a model cannot pair one tool with another's
arguments.
"""

import copy
import re
from typing import Any

from tools.database import TABLES
from tools.registry import TOOLS

# Keywords strict mode may refuse; the argument models enforce them after parsing.
_DROPPED = {"title", "default", "minLength", "maxLength", "pattern", "format", "minimum",
            "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems"}  # fmt: skip
# What a model may write into one argument under the schema: enough for a filter value, a
# subject or a short statement; the argument models accept longer from other clients.
MAX_SCHEMA_TEXT = 120
MAX_SCHEMA_ITEMS = 3
# A whole-string pattern of one repeated class with an upper bound, e.g. ^[a-z0-9_.-]{1,64}$.
_BOUNDED_PATTERN = re.compile(r"\^.*\{\d+,(\d+)\}\$")


def tool_call_schema() -> dict[str, Any]:
    """``{"tool": <name>, "arguments": {...}}`` for each registered tool, as an ``anyOf``;
    a tool that takes a table has one branch per table, naming only that table's columns."""
    return {
        "anyOf": [
            branch
            for name in TOOLS
            for choice in _per_choice(_branch(name), TOOLS[name].arguments.exactly_one_of)
            for branch in _per_table(choice)
        ]
    }


def tool_names() -> list[str]:
    return list(TOOLS)


def with_tool_call(proposal_schema: dict[str, Any]) -> dict[str, Any]:
    """A proposal's strict schema with a required ``tool_call``: one of the tools, never
    null. Only a registered tool can act, so a proposal without one is malformed output
    (the parser refuses it too, for servers that ignore the schema)."""
    schema = {**proposal_schema, "properties": {**proposal_schema["properties"]}}
    schema["properties"]["tool_call"] = {
        "description": "the tool that carries the action out; only a tool can act",
        "anyOf": tool_call_schema()["anyOf"],
    }
    schema["required"] = [*proposal_schema["required"], "tool_call"]
    return schema


def tools_for_the_prompt() -> str:
    """One line per tool, for models and servers that do not take the schema."""
    return "\n".join(
        f"  {tool.name}: {tool.description}"
        f" Arguments: {', '.join(tool.arguments.model_fields) or 'none'}."
        for tool in TOOLS.values()
    )


def _per_choice(branch: dict[str, Any], exactly_one_of: tuple[str, ...]) -> list[dict[str, Any]]:
    """One branch per field of an "exactly one of" group: that field without its null
    option, the others null only. SmolLM2 gave ``send_email`` both an address and a list
    under the one branch, which the argument model refuses on every retry."""
    if not exactly_one_of:
        return [branch]
    branches = []
    for chosen in exactly_one_of:
        narrowed = copy.deepcopy(branch)
        properties = narrowed["properties"]["arguments"]["properties"]
        for name in exactly_one_of:
            options = properties[name]["anyOf"]
            kept = [o for o in options if (o.get("type") == "null") != (name == chosen)]
            properties[name] = {**properties[name], "anyOf": kept}
        branches.append(narrowed)
    return branches


def _per_table(branch: dict[str, Any]) -> list[dict[str, Any]]:
    """One branch per table the tool may name, each with that table's columns as the enum
    of every ``column`` (and ``group_by``): a small model cannot pair a table with another
    table's column, which its argument model would refuse as malformed on every retry."""
    arguments = branch["properties"]["arguments"]
    tables = arguments["properties"].get("table", {}).get("enum")
    if not tables:
        return [branch]
    branches = []
    for table in tables:
        narrowed = copy.deepcopy(branch)
        narrowed_arguments = narrowed["properties"]["arguments"]
        narrowed_arguments["properties"]["table"] = {"type": "string", "enum": [table]}
        _name_columns(narrowed_arguments, sorted(TABLES[table].columns))
        branches.append(narrowed)
    return branches


def _name_columns(schema: Any, columns: list[str]) -> None:
    if isinstance(schema, list):
        for item in schema:
            _name_columns(item, columns)
        return
    if not isinstance(schema, dict):
        return
    for key, value in schema.get("properties", {}).items():
        if key == "column":
            value["enum"] = columns
        elif key == "group_by":
            value["anyOf"] = [{"type": "string", "enum": columns}, {"type": "null"}]
    for value in schema.values():
        _name_columns(value, columns)


def _branch(name: str) -> dict[str, Any]:
    tool = TOOLS[name]
    arguments = tool.arguments.model_json_schema()
    return {
        "type": "object",
        "description": tool.description,
        "properties": {
            "tool": {"type": "string", "enum": [name]},
            "arguments": strict(arguments, arguments.get("$defs", {})),
        },
        "required": ["tool", "arguments"],
        "additionalProperties": False,
    }


def strict(schema: Any, definitions: dict[str, Any]) -> Any:
    """``schema`` with references inlined, objects closed and every property required."""
    if isinstance(schema, list):
        return [strict(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return strict(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
    result = {
        key: strict(value, definitions)
        for key, value in schema.items()
        if key not in _DROPPED and key != "$defs"
    }
    if result.get("type") == "object":
        properties = result.setdefault("properties", {})
        result["required"] = list(properties)
        result["additionalProperties"] = False
    if result.get("type") == "string" and "enum" not in result:
        result["pattern"] = bounded_text(schema)
    if result.get("type") == "array":
        result["maxItems"] = min(schema.get("maxItems", MAX_SCHEMA_ITEMS), MAX_SCHEMA_ITEMS)
        if schema.get("minItems"):
            result["minItems"] = schema["minItems"]
    return result


def bounded_text(schema: dict[str, Any]) -> str:
    """The field's own pattern if it is already bounded (a username, a vendor name), else
    one line of at most ``MAX_SCHEMA_TEXT`` characters (and at most the field's own
    ``maxLength``). Quotes and backslashes are left out because llama.cpp's pattern grammar
    writes pattern characters unescaped, which would break the JSON."""
    own = schema.get("pattern", "")
    if _BOUNDED_PATTERN.fullmatch(own) and not any(c in own for c in '+*"\\'):
        return own
    longest = min(schema.get("maxLength", MAX_SCHEMA_TEXT), MAX_SCHEMA_TEXT)
    shortest = min(schema.get("minLength", 1), longest)
    return rf'^[^"\\\n]{{{shortest},{longest}}}$'
