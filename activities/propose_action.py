"""The analysis activity: ask an LLM, through the OpenAI Responses API, to propose an action.

The answer is requested under a strict JSON schema (structured outputs), so a model that
honours it cannot answer prose; the parser still checks every answer.

The OpenAI client is created once per worker and handed in, and its own retries are off:
Temporal's retry policy is the single place that decides how often a call is retried.
Servers that only speak Chat Completions (many local ones) are reached the same way with
``chat_completions=True``; ``OfflineAnalysisActivities`` replaces the LLM with rules.
"""

import asyncio
from collections.abc import Awaitable

import openai
from openai import AsyncOpenAI
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.analysis_prompt import ANALYSIS_INSTRUCTIONS
from activities.model_metrics import measured_model_call
from activities.offline_analysis import NoToolFits, propose_offline
from activities.preview_tool_call import preview_tool_call
from activities.proposal_parser import (
    PROPOSAL_SCHEMA,
    PROPOSAL_SCHEMA_NAME,
    MalformedProposalError,
    parse_proposed_action,
)
from constants import (
    LLM_API_ENV,
    OPENAI_API_KEY_ENV,
    OPENAI_BASE_URL_ENV,
    OPENAI_MODEL_ENV,
)
from models.models import AnalysisRequest, Proposal, ProposedAction

# While the model thinks, the activity heartbeats; the workflow's heartbeat timeout then
# notices a crashed worker within seconds instead of after the whole start-to-close timeout.
HEARTBEAT_INTERVAL_SECONDS = 2.0
# A model that keeps answering garbage will not start making sense on the tenth try; an
# outage (5xx, 429, timeouts) gets the full retry policy instead.
MAX_MALFORMED_ATTEMPTS = 3

# Structured outputs: the server constrains the answer to the schema. Chat Completions nests
# it under ``json_schema`` (the form llama.cpp's server also honours); the Responses API
# takes it flat under ``text.format``. A server that ignores either still gets the prompt.
CHAT_RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": PROPOSAL_SCHEMA_NAME, "strict": True, "schema": PROPOSAL_SCHEMA},
}
RESPONSES_TEXT_FORMAT = {
    "format": {
        "type": "json_schema",
        "name": PROPOSAL_SCHEMA_NAME,
        "strict": True,
        "schema": PROPOSAL_SCHEMA,
    }
}


class AnalysisActivities:
    """Holds the worker's single OpenAI client for every analysis."""

    def __init__(self, client: AsyncOpenAI, model: str, *, chat_completions: bool = False) -> None:
        self._client = client
        self._model = model
        self._chat_completions = chat_completions

    @activity.defn
    async def analyze_request(self, request: AnalysisRequest) -> ProposedAction:
        """Propose one action for the user's request, validated before it leaves.

        An answer with no usable text is malformed output (a few attempts), not an outage.
        """
        try:
            text = await _with_heartbeats(self._ask_llm(request.user_request))
            return parse_proposed_action(text)
        except MalformedProposalError as err:
            attempt = activity.info().attempt
            activity.logger.warning("Malformed LLM answer on attempt %d: %s", attempt, err)
            raise ApplicationError(
                f"The LLM's answer was not a valid proposed action: {err}",
                type="MalformedLLMOutput",
                non_retryable=attempt >= MAX_MALFORMED_ATTEMPTS,
            ) from err

    @activity.defn
    async def propose_action(self, request: AnalysisRequest) -> Proposal:
        """The model's proposal with its tool call's effect worked out, in one activity: a
        waiting run records one step before people are asked, not two. A call whose effect
        cannot be worked out (outside its tool's contract) is reported, not retried."""
        action = await self.analyze_request(request)
        if action.tool_call is None:
            return Proposal(action=action)
        try:
            return Proposal(action=action, preview=await preview_tool_call(action.tool_call))
        except ApplicationError as err:
            if not err.non_retryable:
                raise
            return Proposal(action=action, preview_failure=err.message)

    async def _ask_llm(self, user_request: str) -> str:
        try:
            return await measured_model_call(self._complete(user_request))
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            raise ApplicationError(
                f"The LLM server refused our credentials (HTTP {err.status_code}); "
                f"check {OPENAI_API_KEY_ENV}.",
                type="LLMAuthenticationError",
                non_retryable=True,
            ) from err
        except openai.NotFoundError as err:
            if self._chat_completions:
                raise self._configuration_error(err) from err
            # Most often the server has no Responses API (many local servers); OpenAI also
            # answers 404 for an unknown model.
            raise ApplicationError(
                f"The LLM server answered HTTP 404 to the Responses API: {err.message}. "
                f"If it has no Responses API (many local servers), set "
                f"{LLM_API_ENV}=chat_completions; otherwise check {OPENAI_MODEL_ENV} "
                f"(now {self._model!r}) and {OPENAI_BASE_URL_ENV}.",
                type="LLMConfigurationError",
                non_retryable=True,
            ) from err
        except openai.BadRequestError as err:
            raise self._configuration_error(err) from err

    def _configuration_error(self, err: openai.APIStatusError) -> ApplicationError:
        return ApplicationError(
            f"The LLM server rejected the request (HTTP {err.status_code}): {err.message}. "
            f"Check {OPENAI_MODEL_ENV} (now {self._model!r}) and {OPENAI_BASE_URL_ENV}.",
            type="LLMConfigurationError",
            non_retryable=True,
        )

    async def _complete(self, user_request: str) -> str:
        if self._chat_completions:
            completion = await self._client.chat.completions.create(
                model=self._model,
                messages=[
                    {"role": "system", "content": ANALYSIS_INSTRUCTIONS},
                    {"role": "user", "content": user_request},
                ],
                response_format=CHAT_RESPONSE_FORMAT,
            )
            if not completion.choices:
                raise MalformedProposalError("the server returned no choices")
            return completion.choices[0].message.content or ""
        response = await self._client.responses.create(
            model=self._model,
            instructions=ANALYSIS_INSTRUCTIONS,
            input=user_request,
            text=RESPONSES_TEXT_FORMAT,
        )
        if not response.output:
            raise MalformedProposalError("the server returned no output")
        return response.output_text


async def _with_heartbeats(call: Awaitable[str]) -> str:
    task = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_INTERVAL_SECONDS)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()  # no-op once done; stops the HTTP call if the activity is cancelled


class OfflineAnalysisActivities(AnalysisActivities):
    """The same activity and parsing, with the rule-based analyser in place of an LLM."""

    def __init__(self) -> None:  # no client: nothing leaves the machine
        pass

    async def _ask_llm(self, user_request: str) -> str:
        """The rules' proposal. A request they map to no tool fails at once, not after the
        malformed-output retries: deterministic rules give the same answer every time. It
        is an outcome of the request, not a fault of the worker: benign, so the SDK logs it
        at DEBUG, without a traceback in the worker's (or the demo's) terminal."""
        try:
            return propose_offline(user_request).model_dump_json()
        except NoToolFits as err:
            raise ApplicationError(
                str(err),
                type="NoToolFits",
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            ) from err
