"""Ctrl-C: every script stops with exit 130 and one line saying what it leaves behind.

Each script runs as a real process and gets SIGINT at a point the test knows it has
reached, from the server's side (a connection accepted, an update received, a workflow
started), never after a sleep.
"""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from benchmarks.fake_openai import FakeOpenAIServer
from constants import SUBMIT_DECISION_UPDATE, WORKFLOW_TYPE
from models.models import ApprovalDecision
from tests.e2e import address_of, worker_process
from tests.helpers import (
    is_running,
    running_test_workflow,
    script_env,
    script_process,
    wait_until,
)

# Each of these interrupts a script, a real process, as a terminal does.
pytestmark = pytest.mark.usefixtures("processes")

INTERRUPTED = 130
RECEIVED_QUERY = "update_received"


class BlackHole:
    """A TCP port that accepts connections and never answers: a client connecting to it is
    stuck, so a script pointed at it is interrupted before Temporal ever heard from it."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    async def accepted(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            self._held.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


@dataclass(frozen=True)
class Interrupted:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        return self.stderr.strip().splitlines()[-1] if self.stderr.strip() else ""


def launch(module: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return script_process(module, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def interrupt(process: subprocess.Popen[str]) -> Interrupted:
    """Ctrl-C, as a terminal sends it, then what the process said and its exit code."""
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.to_thread(process.communicate, timeout=60)
    return Interrupted(process.returncode, stdout, stderr)


def assert_clean_stop(ran: Interrupted, expected: str, *, only_line: bool = True) -> None:
    assert "Traceback" not in ran.stderr + ran.stdout, ran.stderr
    assert ran.returncode == INTERRUPTED, (ran.returncode, ran.stderr)
    if only_line:  # a worker's log lines may come before its last word
        assert len(ran.stderr.strip().splitlines()) == 1, ran.stderr
    assert ran.last_line.startswith("Interrupted: "), ran.stderr
    assert expected in ran.last_line, ran.stderr


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("approval_status", "some-workflow"), "nothing was changed"),
        (("send_approval", "some-workflow", "some-request", "approve"), "nothing was sent"),
        (("start_workflow", "Delete the old backups"), "no workflow was started"),
        (("worker", "--offline"), "nothing ran"),
        (("demo", "--offline", "--approve", "ok", "Delete the old backups"), "no run was started"),
    ],
    ids=lambda value: value[0] if isinstance(value, tuple) else "",
)
async def test_interrupted_before_temporal_answered_each_script_says_nothing_happened(
    black_hole: BlackHole, tmp_path: Path, command: tuple[str, ...], expected: str
) -> None:
    env = script_env(black_hole.address, "http://127.0.0.1:1/v1", "unused-queue")
    args = (*command[1:], "--data-dir", str(tmp_path)) if command[0] == "demo" else command[1:]
    process = launch(command[0], *args, env=env)
    try:
        await wait_until(
            black_hole.accepted,
            lambda accepted: accepted > 0 or process.poll() is not None,
        )
        ran = await interrupt(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert_clean_stop(ran, expected, only_line=command[0] != "worker")


@workflow.defn(name=WORKFLOW_TYPE)
class NeverDecides:
    """Stands in for the agent: takes the decision update and never answers it."""

    def __init__(self) -> None:
        self.received = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update(name=SUBMIT_DECISION_UPDATE)
    async def submit_decision(self, decision: ApprovalDecision) -> ApprovalDecision:
        self.received = True
        await workflow.wait_condition(lambda: False)
        return decision

    @workflow.query(name=RECEIVED_QUERY)
    def update_received(self) -> bool:
        return self.received


async def test_send_approval_interrupted_during_the_update_says_it_may_still_apply(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> None:
    env = script_env(address_of(dev_server), llm_server.url, task_queue)
    async with running_test_workflow(dev_server.client, NeverDecides, workflow_id) as handle:
        process = launch("send_approval", workflow_id, "req-1", "approve", env=env)
        try:
            await wait_until(lambda: handle.query(RECEIVED_QUERY, result_type=bool), bool)
            ran = await interrupt(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert_clean_stop(ran, "may still be applied")
    assert f"approval_status {workflow_id}" in ran.last_line


async def test_start_workflow_interrupted_while_waiting_says_the_run_goes_on(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> None:
    """No worker serves the queue: the run exists and waits, and so does the script."""
    env = script_env(address_of(dev_server), llm_server.url, task_queue)
    handle = dev_server.client.get_workflow_handle(workflow_id)
    process = launch("start_workflow", "Archive the logs", "--workflow-id", workflow_id, env=env)
    try:
        await wait_until(lambda: is_running(handle), lambda running: running)
        ran = await interrupt(process)
        assert await is_running(handle)  # Ctrl-C stopped the waiting, not the run
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        with contextlib.suppress(RPCError):
            await handle.terminate("end of test")
    # On a slow machine the line saying no worker polls the queue may come first.
    assert_clean_stop(ran, f"workflow {workflow_id} keeps running", only_line=False)


async def test_the_worker_stops_on_ctrl_c_with_130(
    dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer, task_queue: str, tmp_path: Path
) -> None:
    env = script_env(address_of(dev_server), llm_server.url, task_queue)
    log = tmp_path / "worker.log"
    async with worker_process(env, log) as worker:  # yielded once it serves
        os.kill(worker.process.pid, signal.SIGINT)
        returncode = await asyncio.to_thread(worker.process.wait, 60)
        output = worker.output()
    assert returncode == INTERRUPTED, output
    assert "Traceback" not in output
    assert (
        output.strip()
        .splitlines()[-1]
        .endswith("Worker stopped; waiting runs stay in Temporal until a worker serves them.")
    )
