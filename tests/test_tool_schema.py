"""The tool-call schema is one OpenAI's strict mode accepts, and it describes every tool."""

import re
from typing import Any

import pytest

from tests.test_tools import WRITE_CALLS, call
from tools.database import TABLES
from tools.registry import TOOLS, validated_arguments
from tools.schema import MAX_SCHEMA_ITEMS, MAX_SCHEMA_TEXT, tool_call_schema

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
    for keyword in ("$ref", "$defs", "'maxLength'", "'minLength'", "'default'", "'minimum'"):
        assert keyword not in text


def strings_and_lists(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, list):
        return [found for item in schema for found in strings_and_lists(item)]
    if not isinstance(schema, dict):
        return []
    own = [schema] if schema.get("type") in ("string", "array") else []
    return own + [found for value in schema.values() for found in strings_and_lists(value)]


def test_every_string_and_list_is_bounded() -> None:
    """An unbounded string lets a small model repeat itself until max_tokens cuts the JSON
    (the real model then never finishes an answer): every free string is a one-line pattern
    with an upper bound, every list has maxItems."""
    found = strings_and_lists(tool_call_schema())
    assert found
    for schema in found:
        if schema["type"] == "array":
            assert 1 <= schema["maxItems"] <= MAX_SCHEMA_ITEMS
        elif "enum" not in schema:
            bound = re.search(r"\{\d+,(\d+)\}\$$", schema["pattern"])
            assert bound is not None and int(bound[1]) <= MAX_SCHEMA_TEXT, schema
            assert "+" not in schema["pattern"] and "*" not in schema["pattern"]


def test_a_field_keeps_its_own_bounded_pattern_and_free_text_gets_one_line() -> None:
    branches = {b["properties"]["tool"]["enum"][0]: b for b in tool_call_schema()["anyOf"]}
    users = next(
        b["properties"]["arguments"]["properties"]
        for b in tool_call_schema()["anyOf"]
        if b["properties"]["tool"]["enum"] == ["delete_records"]
        and b["properties"]["arguments"]["properties"]["table"]["enum"] == ["users"]
    )
    grant = branches["grant_role"]["properties"]["arguments"]["properties"]
    sql = branches["run_sql"]["properties"]["arguments"]["properties"]
    assert grant["username"]["pattern"] == "^[a-z0-9_.-]{1,64}$"
    column = users["filters"]["items"]["properties"]["column"]
    assert column["enum"] == ["active", "email", "id", "username"] and "pattern" not in column
    assert re.fullmatch(sql["statement"]["pattern"], "SELECT 1")
    assert not re.fullmatch(sql["statement"]["pattern"], "SELECT 1;\nDROP TABLE users")
    assert not re.fullmatch(sql["statement"]["pattern"], "x" * (MAX_SCHEMA_TEXT + 1))


def test_each_branch_names_one_tool_and_a_table_tool_one_table_with_its_own_columns() -> None:
    """A model cannot pair one tool with another's arguments, nor a table with a column it
    does not have (its argument model would refuse that on every retry)."""
    branches = tool_call_schema()["anyOf"]
    names = [b["properties"]["tool"]["enum"] for b in branches]
    assert all(len(name) == 1 for name in names)
    assert list(dict.fromkeys(name[0] for name in names)) == list(TOOLS)
    for branch in branches:
        arguments = branch["properties"]["arguments"]["properties"]
        if "table" not in arguments:
            continue
        (table,) = arguments["table"]["enum"]
        filter_columns = arguments["filters"]["items"]["properties"]["column"]["enum"]
        assert filter_columns == sorted(TABLES[table].columns)


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


@pytest.mark.parametrize("chat_completions", [False, True], ids=["responses", "chat"])
async def test_the_model_is_asked_for_a_tool_call_by_name_and_it_reaches_the_action(
    llm_server: Any, chat_completions: bool
) -> None:
    """Both APIs carry the strict schema with the tool names as enums; the stand-in answers
    with the offline analyser's tool call, validated against the tool's model."""
    import uuid

    import openai

    from activities.propose_action import AnalysisActivities
    from tests.helpers import TEST_MODEL
    from tests.test_analysis_activity import _analyse

    client = openai.AsyncOpenAI(base_url=llm_server.url, api_key="test-key", max_retries=0)
    request = f"Show me five customers in Germany {uuid.uuid4().hex[:8]}"
    try:
        activities = AnalysisActivities(client, TEST_MODEL, chat_completions=chat_completions)
        action = await _analyse(activities, request)
    finally:
        await client.close()

    (schema,) = llm_server.schemas(request)
    branches = schema["properties"]["tool_call"]["anyOf"]
    names = [b["properties"]["tool"]["enum"][0] for b in branches if b.get("type") == "object"]
    assert list(dict.fromkeys(names)) == list(TOOLS)
    assert all(b.get("type") == "object" for b in branches)  # never null: only tools act
    assert "tool_call" in schema["required"]
    assert action.tool_call is not None and action.tool_call.tool == "find_records"
    assert action.tool_call.arguments["limit"] == 5


def test_the_schema_asks_for_an_address_the_tool_takes() -> None:
    """A grammar-constrained model can only write a plain address, which the tool accepts;
    SmolLM2 wrote free text into ``to`` under the generic one-line pattern."""
    (to,) = [branch["to"] for branch in email_branches() if branch["to"] != [{"type": "null"}]]
    (string,) = to
    pattern = string["pattern"]
    assert re.fullmatch(pattern, "ops@example.com")
    assert not re.fullmatch(pattern, "all subscribers") and "\\" not in pattern
    arguments = {"to": "ops@example.com", "mailing_list": None, "subject": "s", "body": "b"}
    validated_arguments(call("send_email", **arguments))


def test_an_e_mail_branch_names_exactly_one_audience() -> None:
    """One branch per choice: a model cannot give both an address and a list (SmolLM2
    did, under one branch), which the argument model refuses on every retry."""
    audiences = [
        {name for name in ("to", "mailing_list") if branch[name] != [{"type": "null"}]}
        for branch in email_branches()
    ]
    assert audiences == [{"to"}, {"mailing_list"}]


def email_branches() -> list[dict[str, Any]]:
    """The options of ``to`` and ``mailing_list`` in each ``send_email`` branch."""
    return [
        {
            name: branch["properties"]["arguments"]["properties"][name]["anyOf"]
            for name in ("to", "mailing_list")
        }
        for branch in tool_call_schema()["anyOf"]
        if branch["properties"]["tool"]["enum"] == ["send_email"]
    ]
