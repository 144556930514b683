"""The one-command demo, end to end: embedded dev server, in-process worker, a human at a
terminal (a real pseudo-terminal) or flags, and nothing left running afterwards."""

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.openai_responses import OfflineAnalysisActivities
from constants import OPENAI_API_KEY_ENV, OPENAI_BASE_URL_ENV
from dev_server import free_port, start_dev_server
from models.models import ApprovalDecision, Outcome, WorkflowResult, WorkflowState
from send_approval import submit
from tests.fake_openai import FakeOpenAIServer
from tests.helpers import (
    PROJECT_ROOT,
    port_is_open,
    run_script,
    script_env,
    status_of,
)
from worker import build_worker

RISKY = "Delete all test data from the production database"


DEMO_TASK_QUEUE = "demo-tests"


def demo_env(address: str, llm_url: str) -> dict[str, str]:
    return script_env(address, llm_url, task_queue=DEMO_TASK_QUEUE)


def test_offline_demo_approves_from_flags_and_stops_its_server(tmp_path: Path) -> None:
    port = free_port()
    result = run_script(
        "demo",
        "--offline",
        "--approve",
        "fine on a copy",
        "--data-dir",
        str(tmp_path),
        RISKY,
        env=demo_env(f"127.0.0.1:{port}", "http://127.0.0.1:1/v1"),
    )
    assert result.returncode == 0, result.stderr
    assert "starting the embedded dev server" in result.stdout
    assert "offline rule-based analyser (not an LLM)" in result.stdout
    assert "A human must decide because:" in result.stdout
    assert "Result: approved" in result.stdout
    assert "decision_approved" in result.stdout and "fine on a copy" in result.stdout
    assert (tmp_path / "demo.db").exists()
    assert not port_is_open(port)


def test_demo_uses_the_configured_llm_and_rejects(
    tmp_path: Path, llm_server: FakeOpenAIServer
) -> None:
    result = run_script(
        "demo",
        "--reject",
        "not today",
        "--data-dir",
        str(tmp_path),
        RISKY + " (demo)",
        env=demo_env(f"127.0.0.1:{free_port()}", llm_server.url),
    )
    assert result.returncode == 0, result.stderr
    assert "test-model at " in result.stdout
    assert "Result: rejected" in result.stdout and "not today" in result.stdout
    assert llm_server.calls(RISKY + " (demo)") == 1


def test_demo_without_a_model_explains_the_options_before_starting_anything(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = demo_env(f"127.0.0.1:{port}", "unused")
    del env[OPENAI_API_KEY_ENV], env[OPENAI_BASE_URL_ENV]
    result = run_script("demo", "--data-dir", str(tmp_path), RISKY, env=env)
    assert result.returncode == 1
    assert "OPENAI_API_KEY is not set" in result.stderr
    for option in ("OPENAI_BASE_URL", "HITL_LLM_API=chat_completions", "--offline"):
        assert option in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo.db").exists()


class Terminal:
    """The demo in a pseudo-terminal, so it believes a person sits at it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the demo
            os.chdir(PROJECT_ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "demo", *args], env)
        self.output = ""

    def expect(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} not shown; screen:\n{self.output[-2000:]}"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:  # the demo exited
                    break
        assert text in self.output, self.output[-2000:]

    def type(self, line: str) -> None:
        os.write(self.fd, f"{line}\n".encode())

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.expect("")  # drain what is left
                return os.waitstatus_to_exitcode(status)
            select.select([self.fd], [], [], 0.1)
            with contextlib.suppress(OSError):  # the demo closed its terminal
                self.output += os.read(self.fd, 4096).decode(errors="replace")
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"demo did not exit; screen:\n{self.output[-2000:]}")


def test_interactive_demo_asks_until_answered_then_applies_the_decision(tmp_path: Path) -> None:
    port = free_port()
    env = demo_env(f"127.0.0.1:{port}", "http://127.0.0.1:1/v1")
    terminal = Terminal(["--offline", "--data-dir", str(tmp_path), RISKY], env)
    terminal.expect("Approve? [y/n]")
    terminal.type("perhaps")
    terminal.expect("Please answer y or n.")
    terminal.type("y")
    terminal.expect("Notes (optional):")
    terminal.type("checked the backup")
    assert terminal.wait() == 0
    assert "Result: approved" in terminal.output
    assert "checked the backup" in terminal.output
    assert not port_is_open(port)


async def test_ctrl_c_stops_everything_and_keeps_the_run_for_later(tmp_path: Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    terminal = Terminal(["--offline", "--data-dir", str(tmp_path), RISKY], demo_env(address, ""))
    terminal.expect("Approve? [y/n]")
    os.kill(terminal.pid, signal.SIGINT)
    assert terminal.wait() == 130
    assert "Stopped. Workflow" in terminal.output
    assert "Traceback" not in terminal.output
    assert not port_is_open(port)
    workflow_id = terminal.output.split("Stopped. Workflow ", 1)[1].split()[0]

    # The run survived in the database file: with a server on it and a worker, the ordinary
    # decision path finishes it.
    server = await start_dev_server(address, tmp_path / "demo.db")
    try:
        client = await Client.connect(address, data_converter=pydantic_data_converter)
        handle = client.get_workflow_handle(workflow_id, result_type=WorkflowResult)
        async with build_worker(client, DEMO_TASK_QUEUE, OfflineAnalysisActivities()):
            status = await status_of(handle)
            assert status.state == WorkflowState.AWAITING_APPROVAL
            assert status.approval_request is not None
            decision = ApprovalDecision(
                request_id=status.approval_request.request_id, approved=True, reviewer="later"
            )
            await submit(client, workflow_id, decision)
            assert (await handle.result()).outcome == Outcome.APPROVED
    finally:
        await server.shutdown()


@pytest.mark.parametrize("missing", ["--approve", "--reject"])
def test_demo_flags_need_notes(missing: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo", RISKY, missing],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "usage: demo" in result.stderr
