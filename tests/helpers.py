"""Helpers for workflow and end-to-end tests, in one place."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

from temporalio.client import WorkflowHandle
from temporalio.common import SearchAttributeKey

from constants import (
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    OPENAI_API_KEY_ENV,
    OPENAI_BASE_URL_ENV,
    OPENAI_MODEL_ENV,
    STATUS_QUERY,
    TASK_QUEUE_ENV,
)
from dev_server import TEMPORAL_CLI
from models.models import WorkflowState, WorkflowStatus

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPORAL_TEST_SERVER = TEMPORAL_CLI.parent / "temporal-test-server"
TEST_MODEL = "test-model"
DEFAULT_WAIT_SECONDS = 30.0

T = TypeVar("T")


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


async def status_of(handle: WorkflowHandle) -> WorkflowStatus:
    return await handle.query(STATUS_QUERY, result_type=WorkflowStatus)


async def wait_for_state(
    handle: WorkflowHandle, state: WorkflowState, timeout: float = DEFAULT_WAIT_SECONDS
) -> WorkflowStatus:
    return await wait_until(lambda: status_of(handle), lambda s: s.state == state, timeout)


def script_env(temporal_address: str, llm_url: str, task_queue: str) -> dict[str, str]:
    """Environment for the project's scripts run as subprocesses: all loopback, no profile."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "OPENAI_"))
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
    """Run ``python -m module args`` from the project root and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def background_script(
    module: str, *args: str, env: dict[str, str], log: IO[str]
) -> Iterator[subprocess.Popen[str]]:
    """Start ``python -m module`` writing to ``log``; stop it (and wait) on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
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
