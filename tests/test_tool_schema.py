"""The tool-call schema is one OpenAI's strict mode accepts, and it describes every tool."""

from typing import Any

import pytest

from tests.test_tools import WRITE_CALLS, call
from tools.registry import TOOLS, validated_arguments
from tools.schema import tool_call_schema

READ_CALLS = [
    call("find_records", table="customers", filters=[], limit=5),
    call("summarize_records", table="invoices", filters=[], group_by=None),
    call("account_balances"),
]


def objects(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, list):
        return [found for item in schema for found in objects(item)]
    if not isinstance(schema, dict):
        return []
    own = [schema] if schema.get("type") == "object" else []
    return own + [found for value in schema.values() for found in objects(value)]


def test_every_object_is_closed_with_every_property_required() -> None:
    found = objects(tool_call_schema())
    assert len(found) > len(TOOLS)  # the branches, their arguments, filters, changes
    for schema in found:
        assert schema["additionalProperties"] is False
        assert schema["required"] == list(schema["properties"])


def test_no_reference_or_keyword_strict_mode_may_refuse() -> None:
    text = str(tool_call_schema())
    for keyword in ("$ref", "$defs", "'pattern'", "'minLength'", "'default'", "'minimum'"):
        assert keyword not in text


def test_each_tool_is_one_branch_naming_only_itself() -> None:
    branches = tool_call_schema()["anyOf"]
    assert [b["properties"]["tool"]["enum"] for b in branches] == [[name] for name in TOOLS]


@pytest.mark.parametrize("tool_call", [*WRITE_CALLS.values(), *READ_CALLS], ids=str)
def test_the_calls_the_tests_use_have_every_property_the_schema_requires(tool_call: Any) -> None:
    """A strict answer carries every property (nullable ones as null); the argument models
    accept exactly that shape."""
    branch = next(
        b
        for b in tool_call_schema()["anyOf"]
        if b["properties"]["tool"]["enum"] == [tool_call.tool]
    )
    assert set(tool_call.arguments) == set(branch["properties"]["arguments"]["required"])
    validated_arguments(tool_call)
