"""The analysis activity against a local OpenAI-compatible server, through the real openai
client: what it returns, and which failures Temporal should retry and which it must not."""

import dataclasses
import json
import uuid
from typing import Any

import openai
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.analysis_prompt import ANALYSIS_INSTRUCTIONS
from activities.llm_settings import LLMSettings, analysis_activities
from activities.proposal_parser import NO_TOOL_CALL, PROPOSAL_SCHEMA, PROPOSAL_SCHEMA_NAME
from activities.propose_action import (
    MAX_MALFORMED_ATTEMPTS,
    AnalysisActivities,
)
from benchmarks.fake_openai import FakeOpenAIServer, Reply, http_error, ok
from constants import LLM_API_ENV, OPENAI_API_KEY_ENV, OPENAI_BASE_URL_ENV, OPENAI_MODEL_ENV
from models.models import AnalysisRequest, Outcome, ProposedAction, WorkflowInput, WorkflowResult
from tests.helpers import TEST_MODEL, TimeSkippingRuns, start_run
from worker_setup import build_worker

TEST_ROWS = {"column": "status", "op": "=", "value": "test"}
PROPOSAL = {
    "action_type": "delete_records",
    "description": "Delete the test rows from the production database",
    "reasoning": "The user asked for the cleanup",
    "risky_action": True,
    "tool_call": {
        "tool": "delete_records",
        "arguments": {"table": "customers", "filters": [TEST_ROWS]},
    },
}
TOOL_LESS = {key: value for key, value in PROPOSAL.items() if key != "tool_call"}
# Only a read-only tool runs without a person (default-deny): the safe proposal reads.
SAFE_PROPOSAL = {
    "action_type": "summarise_report",
    "description": "Summarise the weekly report",
    "reasoning": "read-only",
    "risky_action": False,
    "tool_call": {"tool": "account_balances", "arguments": {}},
}


def _unique_request(label: str) -> str:
    """The LLM server is shared by the session; a unique text keeps this test's script its own."""
    return f"{label} {uuid.uuid4().hex[:8]}"


async def _analyse(
    activities: AnalysisActivities, user_request: str, attempt: int = 1
) -> ProposedAction:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    return await env.run(activities.analyze_request, AnalysisRequest(user_request=user_request))


async def test_valid_answer_becomes_a_proposed_action(
    llm_server: FakeOpenAIServer, analysis_activities: AnalysisActivities
) -> None:
    request = _unique_request("Delete test rows from prod")
    llm_server.on(request, ok(PROPOSAL))

    action = await _analyse(analysis_activities, request)

    assert action == ProposedAction.model_validate(PROPOSAL)
    assert llm_server.calls(request) == 1


async def test_fenced_answer_is_accepted(
    llm_server: FakeOpenAIServer, analysis_activities: AnalysisActivities
) -> None:
    """Models wrap JSON in Markdown fences; that must not cost a retry."""
    request = _unique_request("Fenced answer")
    llm_server.on(request, ok(f"```json\n{json.dumps(PROPOSAL)}\n```"))

    action = await _analyse(analysis_activities, request)

    assert action.action_type == "delete_records"
    assert action.risky_action is True


@pytest.mark.parametrize(
    ("attempt", "non_retryable"),
    [(1, False), (MAX_MALFORMED_ATTEMPTS - 1, False), (MAX_MALFORMED_ATTEMPTS, True)],
)
async def test_prose_answer_is_malformed_and_retried_only_a_few_times(
    llm_server: FakeOpenAIServer,
    analysis_activities: AnalysisActivities,
    attempt: int,
    non_retryable: bool,
) -> None:
    """A model may answer garbage once; one that keeps doing so will not improve on retry 8."""
    request = _unique_request("Prose answer")
    llm_server.on(request, ok("Sure! I'll delete those rows for you right away."))

    with pytest.raises(ApplicationError) as caught:
        await _analyse(analysis_activities, request, attempt=attempt)

    assert caught.value.type == "MalformedLLMOutput"
    assert caught.value.non_retryable is non_retryable
    assert "not JSON" in caught.value.message
    assert llm_server.calls(request) == 1


async def test_answer_missing_fields_is_malformed_and_names_them(
    llm_server: FakeOpenAIServer, analysis_activities: AnalysisActivities
) -> None:
    request = _unique_request("Missing fields")
    llm_server.on(request, ok({"action_type": "delete_records"}))

    with pytest.raises(ApplicationError) as caught:
        await _analyse(analysis_activities, request)

    assert caught.value.type == "MalformedLLMOutput"
    assert caught.value.non_retryable is False
    for field in ("description", "reasoning", "risky_action"):
        assert field in caught.value.message
    assert llm_server.calls(request) == 1


@pytest.mark.parametrize(
    ("chat_completions", "answer"),
    [(False, {**TOOL_LESS, "tool_call": None}), (True, {**TOOL_LESS, "tool_call": None}),
     (False, TOOL_LESS)],
    ids=["responses-null", "chat-null", "schema-ignored-missing"],
)  # fmt: skip
async def test_a_proposal_naming_no_tool_is_malformed_retried_then_analysis_failed(
    llm_server: FakeOpenAIServer,
    runs: TimeSkippingRuns,
    chat_completions: bool,
    answer: dict[str, Any],
) -> None:
    """Only a tool can act: a proposal without one (null under the schema, or missing from
    a server that ignores it) gets the few malformed-output attempts, then the run ends
    ``analysis_failed``, having scheduled nothing but the analysis: no person is asked and
    nothing executes."""
    client = openai.AsyncOpenAI(base_url=llm_server.url, api_key="test-key", max_retries=0)
    request = _unique_request("Delete the test rows")
    llm_server.on(request, *[ok(answer)] * (MAX_MALFORMED_ATTEMPTS + 2))
    analysis = AnalysisActivities(client, TEST_MODEL, chat_completions=chat_completions)
    handle, result = await run_to_the_end(runs, client, analysis, request)

    assert result.outcome == Outcome.ANALYSIS_FAILED
    assert result.message == (
        f"Analysis failed: The LLM's answer was not a valid proposed action: {NO_TOOL_CALL}"
    )
    assert result.proposed_action is None and result.execution is None
    assert llm_server.calls(request) == MAX_MALFORMED_ATTEMPTS
    assert await scheduled_activities(handle) == ["propose_action"]


async def run_to_the_end(
    runs: TimeSkippingRuns,
    client: openai.AsyncOpenAI,
    analysis: AnalysisActivities,
    request: str,
) -> tuple[Any, WorkflowResult]:
    """Run ``request`` on a worker with ``analysis`` until it ends (retry back-offs skipped
    by the time-skipping server), then close ``client``."""
    try:
        async with build_worker(runs.client, runs.task_queue, analysis):
            handle = await start_run(
                runs.client, runs.task_queue, runs.workflow_id, WorkflowInput(user_request=request)
            )
            return handle, await handle.result()
    finally:
        await client.close()


async def scheduled_activities(handle: Any) -> list[str]:
    """The distinct activity types the run scheduled, in order."""
    history = await handle.fetch_history()
    names = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    return list(dict.fromkeys(names))


@pytest.mark.parametrize(
    ("chat_completions", "body"),
    [
        (True, {"id": "chatcmpl_empty", "object": "chat.completion", "choices": []}),
        (False, {"id": "resp_empty", "object": "response", "status": "completed", "output": []}),
        (False, {"id": "resp_bare", "object": "response"}),
    ],
    ids=["chat-no-choices", "responses-empty-output", "responses-no-output"],
)
async def test_answer_without_a_message_is_malformed_not_an_outage(
    llm_server: FakeOpenAIServer, chat_completions: bool, body: dict[str, Any]
) -> None:
    """An answer with nothing in it gets the few malformed-output attempts, not the outage
    retries an IndexError would get."""
    client = openai.AsyncOpenAI(base_url=llm_server.url, api_key="test-key", max_retries=0)
    activities = AnalysisActivities(client, TEST_MODEL, chat_completions=chat_completions)
    request = _unique_request("Empty answer")
    llm_server.on(request, Reply("", body=body))
    try:
        with pytest.raises(ApplicationError) as caught:
            await _analyse(activities, request, attempt=MAX_MALFORMED_ATTEMPTS)
    finally:
        await client.close()

    assert caught.value.type == "MalformedLLMOutput"
    assert caught.value.non_retryable is True
    assert llm_server.calls(request) == 1


async def test_a_request_timeout_is_retried_and_the_retry_succeeds(
    llm_server: FakeOpenAIServer, runs: TimeSkippingRuns
) -> None:
    """The model takes longer than the client waits: the attempt fails with a plain
    timeout error, Temporal's retry policy runs it again, and the second answer is used."""
    client = openai.AsyncOpenAI(
        base_url=llm_server.url, api_key="test-key", max_retries=0, timeout=0.5
    )
    request = _unique_request("Summarise the weekly report")
    llm_server.on(request, ok(SAFE_PROPOSAL, delay_seconds=3), ok(SAFE_PROPOSAL))
    analysis = AnalysisActivities(client, TEST_MODEL)
    handle, result = await run_to_the_end(runs, client, analysis, request)

    assert result.outcome == Outcome.AUTO_APPROVED
    assert result.proposed_action == ProposedAction.model_validate(SAFE_PROPOSAL)
    assert llm_server.calls(request) == 2
    history = await handle.fetch_history()
    retried = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
    ]
    assert 2 in retried


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (429, openai.RateLimitError),
    ],
)
async def test_outages_surface_as_plain_errors_for_temporal_to_retry(
    llm_server: FakeOpenAIServer,
    analysis_activities: AnalysisActivities,
    status: int,
    error_type: type[openai.APIStatusError],
) -> None:
    """A server error or rate limit is transient: no ApplicationError, so the retry policy
    applies; and the client itself does not retry (one call reached the server)."""
    request = _unique_request(f"Outage {status}")
    llm_server.on(request, http_error(status))

    with pytest.raises(error_type) as caught:
        await _analyse(analysis_activities, request)

    assert not isinstance(caught.value, ApplicationError)
    assert caught.value.status_code == status
    assert llm_server.calls(request) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_credentials_are_not_retried_and_name_the_api_key(
    llm_server: FakeOpenAIServer, analysis_activities: AnalysisActivities, status: int
) -> None:
    """Retrying a wrong key only delays the message telling the operator to fix it."""
    request = _unique_request(f"Auth {status}")
    llm_server.on(request, http_error(status, "invalid api key"))

    with pytest.raises(ApplicationError) as caught:
        await _analyse(analysis_activities, request)

    assert caught.value.non_retryable is True
    assert OPENAI_API_KEY_ENV in caught.value.message
    assert str(status) in caught.value.message
    assert llm_server.calls(request) == 1


async def test_a_server_without_the_responses_api_points_to_chat_completions(
    llm_server: FakeOpenAIServer, analysis_activities: AnalysisActivities
) -> None:
    """Many local servers answer 404 to /v1/responses: the fix is one setting away."""
    request = _unique_request("No Responses API")
    llm_server.on(request, http_error(404, "404 page not found"))

    with pytest.raises(ApplicationError) as caught:
        await _analyse(analysis_activities, request)

    assert caught.value.non_retryable is True
    assert f"{LLM_API_ENV}=chat_completions" in caught.value.message
    assert llm_server.calls(request) == 1


@pytest.mark.parametrize("status", [400, 404])
async def test_bad_model_or_url_is_not_retried_and_names_the_model_setting(
    llm_server: FakeOpenAIServer, analysis_activities: AnalysisActivities, status: int
) -> None:
    """An unknown model is configuration, not an outage: fail at once and say what to fix."""
    request = _unique_request(f"Config {status}")
    llm_server.on(request, http_error(status, "model 'test-model' does not exist"))

    with pytest.raises(ApplicationError) as caught:
        await _analyse(analysis_activities, request)

    assert caught.value.non_retryable is True
    assert OPENAI_MODEL_ENV in caught.value.message
    assert TEST_MODEL in caught.value.message
    assert "does not exist" in caught.value.message
    assert llm_server.calls(request) == 1


async def test_request_uses_the_responses_api_with_model_and_instructions(
    llm_server: FakeOpenAIServer,
) -> None:
    """The sample documents the Responses API; check what actually went over the wire."""
    sent: list[tuple[str, str, dict[str, Any]]] = []

    async def record(request: Any) -> None:
        sent.append((request.method, request.url.path, json.loads(request.content)))

    http_client = openai.DefaultAsyncHttpx2Client(event_hooks={"request": [record]})
    client = openai.AsyncOpenAI(
        base_url=llm_server.url, api_key="test-key", max_retries=0, http_client=http_client
    )
    request = _unique_request("Wire check")
    llm_server.on(request, ok(PROPOSAL))
    try:
        await _analyse(AnalysisActivities(client, TEST_MODEL), request)
    finally:
        await client.close()

    assert len(sent) == 1
    method, path, body = sent[0]
    assert (method, path) == ("POST", "/v1/responses")
    assert body["model"] == TEST_MODEL
    assert body["input"] == request
    assert body["instructions"] == ANALYSIS_INSTRUCTIONS
    assert body["text"]["format"] == {
        "type": "json_schema",
        "name": PROPOSAL_SCHEMA_NAME,
        "strict": True,
        "schema": PROPOSAL_SCHEMA,
    }
    assert llm_server.calls(request) == 1


@pytest.mark.parametrize("chat_completions", [False, True], ids=["responses", "chat"])
async def test_the_request_carries_the_strict_schema_and_pairs_become_parameters(
    llm_server: FakeOpenAIServer, chat_completions: bool
) -> None:
    """Structured outputs on both APIs: the server receives the strict schema (the stand-in
    refuses a schema strict mode would not take), and the answer's key/value pairs reach the
    workflow as the parameters dict."""
    client = openai.AsyncOpenAI(base_url=llm_server.url, api_key="test-key", max_retries=0)
    request = _unique_request("Schema check")
    pairs = [{"key": "table", "value": "test_rows"}]
    llm_server.on(request, ok({**PROPOSAL, "parameters": pairs}))
    try:
        activities = AnalysisActivities(client, TEST_MODEL, chat_completions=chat_completions)
        action = await _analyse(activities, request)
    finally:
        await client.close()

    assert llm_server.schemas(request) == [PROPOSAL_SCHEMA]
    assert action.parameters == {"table": "test_rows"}
    assert action.action_type == PROPOSAL["action_type"]


@pytest.mark.parametrize("chat_completions", [False, True], ids=["responses", "chat"])
async def test_the_stand_in_refuses_a_schema_strict_mode_would_not_take(
    llm_server: FakeOpenAIServer, chat_completions: bool
) -> None:
    """The check above is only worth something if the stand-in can say no, as OpenAI does."""
    loose = {"type": "object", "properties": {"a": {"type": "string"}}, "required": []}
    client = openai.AsyncOpenAI(base_url=llm_server.url, api_key="test-key", max_retries=0)
    request = _unique_request("Loose schema")
    try:
        with pytest.raises(openai.BadRequestError, match="additionalProperties"):
            if chat_completions:
                await client.chat.completions.create(
                    model=TEST_MODEL,
                    messages=[{"role": "user", "content": request}],
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": "loose", "strict": True, "schema": loose},
                    },
                )
            else:
                await client.responses.create(
                    model=TEST_MODEL,
                    input=request,
                    text={
                        "format": {
                            "type": "json_schema",
                            "name": "loose",
                            "strict": True,
                            "schema": loose,
                        }
                    },
                )
    finally:
        await client.close()

    assert llm_server.calls(request) == 1


def test_worker_client_leaves_retries_to_temporal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Client retries would multiply Temporal's; the retry policy must be the only one."""
    monkeypatch.setenv(OPENAI_API_KEY_ENV, "test-key")
    monkeypatch.setenv(OPENAI_BASE_URL_ENV, "http://127.0.0.1:9/v1")

    client = analysis_activities(LLMSettings.from_env())._client

    assert client.max_retries == 0
    assert str(client.base_url).startswith("http://127.0.0.1:9/v1")
