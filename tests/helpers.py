"""Helpers for workflow and end-to-end tests, in one place."""

import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import (
    ListOpenWorkflowExecutionsRequest,
)
from temporalio.client import Client, WorkflowHandle, WorkflowHistory, WorkflowQueryFailedError
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer, Reply, fallback_tool_call, ok
from constants import (
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    OPENAI_API_KEY_ENV,
    OPENAI_BASE_URL_ENV,
    OPENAI_MODEL_ENV,
    SMTP_HOST_ENV,
    STAGE_APPROVERS_ENV,
    STATUS_QUERY,
    SUBMIT_DECISION_UPDATE,
    TASK_QUEUE_ENV,
    WEBHOOK_TOKEN_ENV,
    WEBHOOK_URL_ENV,
    WORKFLOW_TYPE,
)
from dev_server import TEMPORAL_CLI, UI_PORT_OFFSET, port_is_taken
from models.models import (
    ApprovalDecision,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from tests import launcher
from worker_setup import build_worker

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_TEST_SERVER = TEMPORAL_CLI.parent / "temporal-test-server"
TEST_MODEL = "test-model"
DEFAULT_WAIT_SECONDS = 30.0
# The browser tests' Chromium: Debian's packages (chromium, chromium-driver), never a download.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,900",
)

T = TypeVar("T")
Run = WorkflowHandle[Any, WorkflowResult]
# Who approves the stages tests use (``WorkflowInput.stage_approvers``, HITL_STAGE_APPROVERS):
# one member each and nobody in two, so every stage of a run can be approved.
STAGE_MEMBERS: dict[str, list[str]] = {
    "manager": ["mia"],
    "director": ["carol"],
    "cfo": ["dana"],
    "legal": ["lee"],
    "security": ["sam"],
}


def stage_approvers_file(directory: Path, members: dict[str, list[str]] | None = None) -> Path:
    """A HITL_STAGE_APPROVERS file in ``directory`` (a test's tmp dir) naming ``members``."""
    path = directory / "stage-approvers.json"
    path.write_text(json.dumps(STAGE_MEMBERS if members is None else members))
    return path


def member_of(stage: str, members: dict[str, list[str]] | None = None) -> str:
    """A member of ``stage`` (the first), who may decide it."""
    return (STAGE_MEMBERS if members is None else members)[stage][0]


def stage_of(child_id: str) -> tuple[str, str]:
    """The round's request ID and the stage of a stage child's ID
    (``<workflow-id>/stage/<request-id>/<position>-<stage>``)."""
    request_id, place = child_id.rsplit("/", 2)[-2:]
    return request_id, place.partition("-")[2]


async def decide_stage_as_member(
    client: Client,
    child_id: str,
    approved: bool = True,
    reviewer: str | None = None,
    members: dict[str, list[str]] | None = None,
) -> ApprovalDecision:
    """Decide the stage child ``child_id`` as one of its members (``reviewer``, default the
    stage's first in ``members``), through the decision update, as the inbox and
    send_approval do. Returns the vote as recorded."""
    request_id, stage = stage_of(child_id)
    decision = ApprovalDecision(
        request_id=request_id,
        approved=approved,
        reviewer=reviewer or member_of(stage, members),
        stage=stage,
    )
    handle = client.get_workflow_handle(child_id)
    return await handle.execute_update(
        SUBMIT_DECISION_UPDATE, decision, result_type=ApprovalDecision
    )


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def dev_server_search_attributes() -> list[SearchAttributeKey]:
    return [SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)]


async def wait_until(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    timeout: float = DEFAULT_WAIT_SECONDS,
) -> T:
    """Poll ``probe`` until ``accept`` holds; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.05)


LOCAL_ACTIVITY_MARKER = "core_local_activity"


def activities_run(history: WorkflowHistory) -> list[str]:
    """The activity types a run scheduled, in history order: its regular activities (one
    entry per scheduling) and its local activities (one marker each, recorded when done)."""
    names = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            names.append(event.activity_task_scheduled_event_attributes.activity_type.name)
        elif event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == LOCAL_ACTIVITY_MARKER:
                data = marker.details["data"].payloads[0].data
                names.append(json.loads(data)["activity_type"])
    return names


async def status_of(handle: WorkflowHandle) -> WorkflowStatus:
    return await handle.query(STATUS_QUERY, result_type=WorkflowStatus)


async def wait_for_state(
    handle: WorkflowHandle, state: WorkflowState, timeout: float = DEFAULT_WAIT_SECONDS
) -> WorkflowStatus:
    return await wait_until(lambda: status_of(handle), lambda s: s.state == state, timeout)


async def is_running(handle: WorkflowHandle) -> bool:
    """Whether the workflow has started and not yet closed; a status can name a child (a
    stage) a moment before the child starts, so "not found yet" is a plain no."""
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return description.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


def script_risky_proposal(
    llm_server: FakeOpenAIServer,
    text: str,
    *,
    action_type: str = "carry_out_request",
    description: str | None = None,
    reasoning: str = "requested",
    parameters: dict[str, Any] | None = None,
    tool_call: dict[str, Any] | None = None,
) -> str:
    """Make the LLM answer ``text`` with a risky proposal, so the run must wait for a human,
    and return ``text``. Give every test its own text: scripts are kept per request text.

    The default tool call e-mails one address (``fallback_tool_call``): it changes data,
    so default-deny asks, and its preview reads nothing other tests change, so runs
    sharing the operations database never drift each other's approvals."""
    proposal = {
        "action_type": action_type,
        "description": description if description is not None else f"Carry out: {text}",
        "reasoning": reasoning,
        "risky_action": True,
        "parameters": parameters or {},
        "tool_call": tool_call if tool_call is not None else fallback_tool_call(text),
    }
    llm_server.on(text, ok(proposal))
    return text


async def start_run(
    client: Client, task_queue: str, workflow_id: str, run_input: WorkflowInput, **options: Any
) -> Run:
    """Start the workflow by its type name, as users do, typed to return a WorkflowResult."""
    return await client.start_workflow(
        WORKFLOW_TYPE,
        run_input,
        id=workflow_id,
        task_queue=task_queue,
        result_type=WorkflowResult,
        **options,
    )


@asynccontextmanager
async def started(
    client: Client, task_queue: str, workflow_id: str, run_input: WorkflowInput
) -> AsyncIterator[Run]:
    """Start the run and terminate it if a failed assertion leaves it open: in the shared
    time-skipping server, an open run whose worker has gone stalls time skipping for every
    later test. Let a run finish rather than terminate it mid-activity: that stalls it too."""
    handle = await start_run(client, task_queue, workflow_id, run_input)
    try:
        yield handle
    finally:
        await close_run(handle)


# How long a run left open may take to finish the workflow task it has outstanding.
DRAIN_SECONDS = 30.0


async def close_run(handle: WorkflowHandle, reason: str = "test finished") -> None:
    """Terminate a run if still open, once a worker has finished its outstanding workflow task.

    On the time-skipping test server an outstanding workflow task holds the clock still for
    every run on the server, and terminating the run does not release it; only a worker
    completing the task does. The status query is answered after that task (the test server
    delivers it with the task), so a worker must be serving the run's queue here. A task
    already sent to a stopped worker's sticky queue cannot be drained (the test server never
    moves it back): closing runs while they wait is what keeps that from happening.
    """
    if not await is_running(handle):
        return  # the usual case
    with contextlib.suppress(TimeoutError, RPCError, WorkflowQueryFailedError):
        async with asyncio.timeout(DRAIN_SECONDS):
            await handle.query(STATUS_QUERY)
    with contextlib.suppress(RPCError):  # it may have just closed
        await handle.terminate(reason)


async def open_runs(client: Client, workflow_id: str) -> list[WorkflowHandle]:
    """The open runs of ``workflow_id`` and of its stages (their IDs start with it)."""
    response = await client.workflow_service.list_open_workflow_executions(
        ListOpenWorkflowExecutionsRequest(namespace=client.namespace, maximum_page_size=1000)
    )
    return [
        client.get_workflow_handle(found.execution.workflow_id, run_id=found.execution.run_id)
        for found in response.executions
        if found.execution.workflow_id.startswith(workflow_id)
    ]


@asynccontextmanager
async def running_test_workflow(
    client: Client, workflow_class: type, workflow_id: str | None = None
) -> AsyncIterator[WorkflowHandle]:
    """A test-only workflow (unsandboxed: it may raise or wait for ever) started on a worker
    of its own task queue; terminated on exit, before its worker stops."""
    task_queue = f"test-only-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[workflow_class],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(
            workflow_class.run,  # type: ignore[attr-defined]
            id=workflow_id or f"test-only-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        try:
            yield handle
        finally:
            with contextlib.suppress(RPCError):  # already closed
                await handle.terminate("end of test")


@dataclass(frozen=True)
class TimeSkippingRuns:
    """What a workflow test on the shared time-skipping server works with: the server, the
    real analysis activity and the local LLM, and the test's own task queue and workflow ID."""

    env: WorkflowEnvironment
    analysis: AnalysisActivities
    llm_server: FakeOpenAIServer
    task_queue: str
    workflow_id: str

    @property
    def client(self) -> Client:
        return self.env.client

    def worker(self, **options: Any) -> Worker:
        """The real worker wiring serving this test's queue; run it with ``async with``."""
        return build_worker(self.client, self.task_queue, self.analysis, **options)

    async def start(self, user_request: str, *replies: Reply, **fields: Any) -> Run:
        """Start this test's run; the LLM answers ``user_request`` with ``replies`` (none
        given: the offline analyser's proposal). A worker must be serving the queue."""
        self.llm_server.on(user_request, *replies)
        run_input = WorkflowInput(user_request=user_request, **fields)
        return await start_run(self.client, self.task_queue, self.workflow_id, run_input)

    @asynccontextmanager
    async def started(self, run_input: WorkflowInput, **worker_options: Any) -> AsyncIterator[Run]:
        """The real worker on this test's queue, and the run started on it.

        The run closes before the worker stops (see ``started``), so no run outlives its test.
        """
        async with (
            self.worker(**worker_options),
            started(self.client, self.task_queue, self.workflow_id, run_input) as handle,
        ):
            yield handle


async def close_left_open(runs: "TimeSkippingRuns") -> int:
    """Close the runs a test left open on the time-skipping server (see ``close_run``), with
    a worker serving them; return how many there were."""
    left_open = await open_runs(runs.client, runs.workflow_id)
    if left_open:
        async with runs.worker():
            for handle in left_open:
                await close_run(handle, "left open by the test")
    return len(left_open)


# A free clock skips this in an instant (the server only fires the timers due on the way);
# a held one counts it out on the wall clock.
PROBE_SKIP = timedelta(seconds=10)


async def time_skipping_is_free(env: WorkflowEnvironment) -> bool:
    """Whether the shared time-skipping server can still skip time, once a test's runs are
    closed. The server holds its clock while it counts anything in progress (a workflow
    task, an activity attempt, a child's report to its parent), and a count it never
    releases makes every later test's timers wait in real time: skipping ``PROBE_SKIP``
    then takes ``PROBE_SKIP`` of wall-clock time, not an instant."""
    started = time.monotonic()
    await env.sleep(PROBE_SKIP)
    return time.monotonic() - started < PROBE_SKIP.total_seconds() / 2


# The OS hands out ephemeral ports (port 0, and every outgoing connection's own end) from
# 32768 up (/proc/sys/net/ipv4/ip_local_port_range). A demo's embedded dev server binds its
# port and, for its Web UI, that port + UI_PORT_OFFSET: picked in that range, the second
# can be taken by any connection of a parallel test before the server binds it.
EMBEDDED_SERVER_PORTS = range(20000, 32768 - UI_PORT_OFFSET)


def embedded_server_port() -> int:
    """A port for a demo's embedded dev server whose Web UI port is free too, both below
    the ephemeral range, so no other test's connection takes one before the server binds."""
    while True:
        port = random.choice(EMBEDDED_SERVER_PORTS)
        if not port_is_taken(port) and not port_is_taken(port + UI_PORT_OFFSET):
            return port


def script_env(temporal_address: str, llm_url: str, task_queue: str) -> dict[str, str]:
    """Environment for the project's scripts run as subprocesses: all loopback, no profile,
    and no webhook (a worker would post its notices there); a test that wants one adds it
    to the returned dict."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "OPENAI_"))
        and key not in (WEBHOOK_URL_ENV, WEBHOOK_TOKEN_ENV, SMTP_HOST_ENV, STAGE_APPROVERS_ENV)
    }
    env.update(
        {
            "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_NAMESPACE": "default",
            OPENAI_BASE_URL_ENV: llm_url,
            OPENAI_API_KEY_ENV: "test-key",
            OPENAI_MODEL_ENV: TEST_MODEL,
            TASK_QUEUE_ENV: task_queue,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_script(
    module: str, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` from the project root and capture its output (a real
    process, started by ``tests/launcher.py`` without the import cost of a new Python)."""
    return launcher.run([module, *args], env=env, cwd=PROJECT_ROOT, timeout=timeout)


@contextmanager
def background_script(
    module: str, *args: str, env: dict[str, str], log: IO[str]
) -> Iterator[launcher.LaunchedProcess]:
    """Start ``python -m module`` writing to ``log``; stop it (and wait) on exit."""
    process = launcher.popen(
        [module, *args],
        env=env,
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,  # never a terminal, wherever the tests run
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        stop_process(process, grace_seconds=15)


def stop_process(
    process: subprocess.Popen[Any] | launcher.LaunchedProcess, grace_seconds: float
) -> None:
    """SIGTERM first, so the process can drain and let go of its ports and files; SIGKILL
    only if it is still there after ``grace_seconds``, so a hung process never hangs the test."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def wait_for_output(
    log_path: Path, text: str, timeout: float = DEFAULT_WAIT_SECONDS, count: int = 1
) -> str:
    """Wait until ``text`` appears ``count`` times in a subprocess's log; return the log."""

    async def read() -> str:
        return log_path.read_text(errors="replace")

    return await wait_until(read, lambda content: content.count(text) >= count, timeout)
