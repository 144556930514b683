"""The parser is the gate between the LLM's free text and the workflow: strict, and explicit
about why an answer was refused (the message ends up in logs and the audit trail)."""

import json
import re

import pytest

from activities.proposal_parser import (
    PROPOSAL_SCHEMA,
    MalformedProposalError,
    ProposalAnswer,
    parse_proposed_action,
)
from benchmarks.fake_openai import check_strict

TEST_ROWS = {"column": "status", "op": "=", "value": "test"}
TOOL_CALL = {"tool": "delete_records", "arguments": {"table": "customers", "filters": [TEST_ROWS]}}
VALID = {
    "action_type": "delete_records",
    "description": "Delete the test rows from the production database",
    "reasoning": "The user asked for the cleanup",
    "risky_action": True,
    "tool_call": TOOL_CALL,
}
VALID_JSON = json.dumps(VALID)
# The fields ``ProposalAnswer`` holds: the schema adds the tool call beside them.
ANSWER = {key: value for key, value in VALID.items() if key != "tool_call"}


def _under_the_schema(answer: dict) -> str:
    """``answer`` checked against ``ProposalAnswer``, with the tool call, as JSON."""
    return json.dumps(
        {**ProposalAnswer.model_validate(answer).model_dump(), "tool_call": TOOL_CALL}
    )


def _with(**changes: object) -> str:
    return json.dumps({**VALID, **changes})


def _without(field: str) -> str:
    return json.dumps({key: value for key, value in VALID.items() if key != field})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(VALID_JSON, id="bare"),
        pytest.param(f"```json\n{VALID_JSON}\n```", id="json-fence"),
        pytest.param(f"```\n{VALID_JSON}\n```", id="plain-fence"),
        pytest.param(f"\n\n   {VALID_JSON}  \n\t", id="surrounding-whitespace"),
        pytest.param(f"  ```json\n{VALID_JSON}\n```\n", id="fence-with-whitespace"),
    ],
)
def test_valid_answers_parse_to_the_same_action(text: str) -> None:
    """Models wrap JSON in fences and whitespace even when told not to; that is still valid."""
    action = parse_proposed_action(text)

    assert action.action_type == "delete_records"
    assert action.description == VALID["description"]
    assert action.reasoning == VALID["reasoning"]
    assert action.risky_action is True
    assert action.parameters == {}
    assert action.tool_call is not None and action.tool_call.model_dump() == TOOL_CALL


def test_string_parameters_are_kept() -> None:
    """Parameters are optional, but when given they reach the execute step."""
    action = parse_proposed_action(_with(parameters={"table": "test_data"}))

    assert action.parameters == {"table": "test_data"}


def test_parameters_as_key_value_pairs_become_the_dict() -> None:
    """A strict schema cannot say dict[str, str]; the model answers pairs, the workflow
    still gets its dict."""
    pairs = [{"key": "table", "value": "test_data"}, {"key": "env", "value": "prod"}]

    action = parse_proposed_action(_with(parameters=pairs))

    assert action.parameters == {"table": "test_data", "env": "prod"}


def test_a_pair_said_twice_counts_once() -> None:
    pairs = [{"key": "table", "value": "users"}, {"key": "table", "value": "users"}]

    assert parse_proposed_action(_with(parameters=pairs)).parameters == {"table": "users"}


def test_the_schema_is_one_strict_mode_accepts() -> None:
    """OpenAI refuses a strict schema with an optional or an extra property."""
    check_strict(PROPOSAL_SCHEMA, "schema")
    assert set(PROPOSAL_SCHEMA["required"]) == set(VALID) | {"parameters", "tool_call"}


def test_the_schema_has_no_room_for_a_proposal_without_a_tool() -> None:
    """Only a tool can act: under the schema, ``tool_call`` is one of the tools, never null."""
    branches = PROPOSAL_SCHEMA["properties"]["tool_call"]["anyOf"]

    assert branches and all(branch["type"] == "object" for branch in branches)
    assert all(branch["required"] == ["tool", "arguments"] for branch in branches)


def test_an_answer_under_the_schema_parses() -> None:
    """What the schema allows, the parser accepts: the two never disagree."""
    answer = {**ANSWER, "parameters": [{"key": "table", "value": "test_data"}]}

    action = parse_proposed_action(_under_the_schema(answer))

    assert action.parameters == {"table": "test_data"}
    assert action.description == VALID["description"]


def _longest(field: dict, letter: str) -> str:
    """The longest string of ``letter`` the field's pattern allows."""
    pattern = field["pattern"]
    most = int(re.findall(r",(\d+)\}", pattern)[0]) + pattern.startswith("^[a-z][")
    assert re.fullmatch(pattern, letter * most) and not re.fullmatch(pattern, letter * (most + 1))
    return letter * most


def test_the_largest_answer_the_schema_allows_is_within_the_input_limits() -> None:
    """The schema must never let the model write what the parser then refuses as too long
    (models/limits.py): the answer would be malformed on every attempt."""
    fields = PROPOSAL_SCHEMA["properties"]
    pair = PROPOSAL_SCHEMA["$defs"]["ParameterPair"]["properties"]
    pairs = [
        {"key": f"{index}" + _longest(pair["key"], "k")[1:], "value": _longest(pair["value"], "v")}
        for index in range(fields["parameters"]["maxItems"])
    ]
    answer = {
        "action_type": _longest(fields["action_type"], "a"),
        "description": _longest(fields["description"], "d"),
        "reasoning": _longest(fields["reasoning"], "r"),
        "risky_action": True,
        "parameters": pairs,
    }

    action = parse_proposed_action(_under_the_schema(answer))

    assert len(action.parameters) == len(pairs)


def test_length_limits_guide_the_model_but_do_not_refuse_other_servers() -> None:
    """A server that ignores the schema may write more; today's rules still decide."""
    long = "x" * 500

    pairs = [{"key": "k", "value": long}]

    action = parse_proposed_action(_with(description=long, parameters=pairs))

    assert action.description == long
    assert action.parameters == {"k": long}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Sure! I will delete the records for you.", "not JSON", id="prose"),
        pytest.param(VALID_JSON[:-10], "not JSON", id="truncated"),
        pytest.param(f"[{VALID_JSON}]", "expected a JSON object, got list", id="array"),
        pytest.param('"delete it"', "expected a JSON object, got str", id="json-string"),
        pytest.param(_without("risky_action"), "risky_action: Field required", id="no-risky"),
        pytest.param(_without("description"), "description: Field required", id="no-desc"),
        pytest.param(_with(shell="rm -rf /"), "shell: Extra inputs", id="extra-field"),
        pytest.param(_without("tool_call"), "names no tool", id="no-tool-call"),
        pytest.param(_with(tool_call=None), "names no tool", id="null-tool-call"),
        pytest.param(
            _with(tool_call={"tool": "format_disk", "arguments": {}}), "format_disk", id="unknown"
        ),
        pytest.param(_with(risky_action="true"), "risky_action", id="risky-as-string"),
        pytest.param(_with(risky_action=0), "risky_action", id="risky-as-int"),
        pytest.param(_with(description=42), "description", id="description-as-int"),
        pytest.param(_with(parameters={"n": 3}), "parameters.n", id="non-string-parameter"),
        pytest.param("", "empty", id="empty"),
        pytest.param("   \n ", "empty", id="whitespace-only"),
        pytest.param("```json\n```", "empty", id="empty-fence"),
        pytest.param(_with(action_type=""), "action_type", id="empty-action-type"),
        pytest.param(_with(action_type="   "), "action_type", id="blank-action-type"),
        pytest.param(_with(description=" \t"), "description", id="blank-description"),
        pytest.param(
            _with(parameters=[{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]),
            "'a' is given twice",
            id="repeated-parameter-key",
        ),
        pytest.param(_with(parameters=[{"key": "a"}]), "key, value", id="pair-without-value"),
        pytest.param(_with(parameters=[["a", "1"]]), "key, value", id="pair-as-list"),
        pytest.param(
            _with(parameters=[{"key": "n", "value": 3}]), "key, value", id="non-string-value"
        ),
    ],
)
def test_malformed_answers_are_refused_with_a_useful_message(text: str, expected: str) -> None:
    """Every refusal says what was wrong, so whoever reads the trail can fix the prompt/model."""
    with pytest.raises(MalformedProposalError) as caught:
        parse_proposed_action(text)

    assert expected in str(caught.value)


def test_prose_refusal_quotes_the_start_of_the_answer() -> None:
    """Seeing what the model actually said is the fastest way to understand the failure."""
    with pytest.raises(MalformedProposalError, match="I cannot help with that"):
        parse_proposed_action("I cannot help with that request.")


def test_malformed_proposal_error_is_a_value_error() -> None:
    """Callers that only know ValueError still catch it."""
    assert issubclass(MalformedProposalError, ValueError)
