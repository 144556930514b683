"""Model settings: any OpenAI-compatible server, the Chat Completions setting, offline mode,
and the actionable message when the model cannot work."""

import pytest
from temporalio.testing import ActivityEnvironment

from activities.llm_settings import (
    LLMApi,
    LLMSettings,
    LLMSettingsError,
    analysis_activities,
    llm_problem,
)
from activities.offline_analysis import OFFLINE_LABEL
from activities.propose_action import OfflineAnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer, fallback_tool_call, ok
from dev_server import free_port
from models.models import AnalysisRequest

PROPOSAL = {
    "action_type": "rotate_keys",
    "description": "Rotate the staging API keys",
    "reasoning": "asked for",
    "risky_action": True,
    "tool_call": fallback_tool_call("Rotate the staging API keys"),
}


def settings(**overrides: object) -> LLMSettings:
    values: dict[str, object] = {
        "api_key": "test-key",
        "base_url": None,
        "model": "test-model",
        "api": LLMApi.RESPONSES,
    }
    return LLMSettings(**{**values, **overrides})


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("OPENAI_MODEL", "llama3.1")
    monkeypatch.setenv("HITL_LLM_API", "chat_completions")
    loaded = LLMSettings.from_env()
    assert loaded.model == "llama3.1" and loaded.api == LLMApi.CHAT_COMPLETIONS
    assert loaded.describe() == "llama3.1 at http://127.0.0.1:11434/v1 (chat_completions API)"


def test_defaults_to_openai_and_the_responses_api(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_BASE_URL", "OPENAI_MODEL", "HITL_LLM_API"):
        monkeypatch.delenv(name, raising=False)
    loaded = LLMSettings.from_env()
    assert loaded.model == "gpt-4o-mini" and loaded.api == LLMApi.RESPONSES


def test_an_unknown_api_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HITL_LLM_API", "completions")
    with pytest.raises(LLMSettingsError, match="HITL_LLM_API='completions'"):
        LLMSettings.from_env()


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://localhost:abc/v1", "no valid port"),
        ("http://localhost:99999/v1", "no valid port"),
        ("http://localhost:0/v1", "no valid port"),
        ("localhost:11434/v1", "needs http:// or https://"),
        ("ftp://localhost/v1", "needs http:// or https://"),
        ("http:///v1", "needs http:// or https:// and a host"),
    ],
)
def test_an_unusable_base_url_is_named(
    monkeypatch: pytest.MonkeyPatch, base_url: str, problem: str
) -> None:
    """Caught before any connection: no ValueError from deep in urllib, and no 'Cannot
    reach the model server at None:80' for a URL without its scheme."""
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    with pytest.raises(LLMSettingsError) as caught:
        LLMSettings.from_env()
    assert f"OPENAI_BASE_URL={base_url!r}" in str(caught.value)
    assert problem in str(caught.value)


def test_credentials_in_the_base_url_never_reach_logs_or_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Some servers take their key in the URL; the worker logs describe() at start-up."""
    monkeypatch.setenv("OPENAI_BASE_URL", "https://bob:s3cret@llm.example.com/v1?api-key=s3cret")
    assert "s3cret" not in LLMSettings.from_env().describe()
    monkeypatch.setenv("OPENAI_BASE_URL", "https://bob:s3cret@llm.example.com:abc/v1")
    with pytest.raises(LLMSettingsError) as refused:
        LLMSettings.from_env()
    assert "s3cret" not in str(refused.value)
    assert "llm.example.com:abc" in str(refused.value)


def test_no_key_and_no_server_lists_every_option() -> None:
    problem = llm_problem(settings(api_key=None))
    assert problem is not None
    for option in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "HITL_LLM_API=chat_completions",
        "--offline",
    ):
        assert option in problem


def test_an_unreachable_server_is_named() -> None:
    port = free_port()
    problem = llm_problem(settings(base_url=f"http://127.0.0.1:{port}/v1"))
    assert problem is not None and f"127.0.0.1:{port}" in problem


def test_a_local_server_needs_no_key(llm_server: FakeOpenAIServer) -> None:
    assert llm_problem(settings(api_key=None, base_url=llm_server.url)) is None


@pytest.mark.parametrize(
    ("api", "path"),
    [(LLMApi.RESPONSES, "/v1/responses"), (LLMApi.CHAT_COMPLETIONS, "/v1/chat/completions")],
)
async def test_each_api_setting_reaches_its_endpoint(
    llm_server: FakeOpenAIServer, api: LLMApi, path: str
) -> None:
    request = f"Rotate the staging keys via {api.value}"
    llm_server.on(request, ok(PROPOSAL))
    activities = analysis_activities(settings(base_url=llm_server.url, api=api))
    proposal = await ActivityEnvironment().run(
        activities.analyze_request, AnalysisRequest(user_request=request)
    )
    assert proposal.action_type == "rotate_keys"
    assert llm_server.paths(request) == [path]


async def test_offline_mode_never_calls_a_model_and_says_so(llm_server: FakeOpenAIServer) -> None:
    activities = analysis_activities(settings(base_url=llm_server.url), offline=True)
    assert isinstance(activities, OfflineAnalysisActivities)
    request = "Delete all test data from the production database"
    proposal = await ActivityEnvironment().run(
        activities.analyze_request, AnalysisRequest(user_request=request)
    )
    assert proposal.risky_action is True
    assert OFFLINE_LABEL in proposal.reasoning
    assert llm_server.calls(request) == 0
