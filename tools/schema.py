"""The JSON schema of a tool call, in the form OpenAI's strict structured outputs accept.

Strict mode wants every object closed (``additionalProperties: false``) with every property
required, and no ``$ref`` to definitions outside the schema it is embedded in; it does not
honour every validation keyword. So the pydantic schemas of the argument models are
inlined and closed, and the keywords strict mode may not accept (lengths, patterns, bounds)
are dropped: the schema shapes the answer, and the argument model inside the analysis
activity still validates every value. Each tool is one branch of an ``anyOf`` whose
``tool`` is an enum of that one name, so a model cannot pair one tool with another's
arguments.
"""

from typing import Any

from tools.registry import TOOLS

# Keywords strict mode may refuse; the argument models enforce them after parsing.
_DROPPED = {"title", "default", "minLength", "maxLength", "pattern", "format", "minimum",
            "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems"}  # fmt: skip


def tool_call_schema() -> dict[str, Any]:
    """``{"tool": <name>, "arguments": {...}}`` for each registered tool, as an ``anyOf``."""
    return {"anyOf": [_branch(name) for name in TOOLS]}


def tool_names() -> list[str]:
    return list(TOOLS)


def with_tool_call(proposal_schema: dict[str, Any]) -> dict[str, Any]:
    """A proposal's strict schema with a required ``tool_call``: one of the tools, or null
    for a proposal that needs none (default-deny then asks a person)."""
    schema = {**proposal_schema, "properties": {**proposal_schema["properties"]}}
    schema["properties"]["tool_call"] = {
        "description": "the tool that carries the action out, or null if none fits",
        "anyOf": [*tool_call_schema()["anyOf"], {"type": "null"}],
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
    return result
