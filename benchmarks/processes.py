"""Start, watch and stop the benchmark's processes, so that none outlives the benchmark.

Every process is started through one ``ProcessSet``, which stops them all (in reverse order,
terminate then kill) however the benchmark ends, and records each one's PID, start time and
exit code for the results.
"""

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

from constants import (
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    OPENAI_API_KEY_ENV,
    OPENAI_BASE_URL_ENV,
    OPENAI_MODEL_ENV,
    STATE_DIR_ENV,
    TASK_QUEUE_ENV,
)
from dev_server import TEMPORAL_CLI

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_SECONDS = 15.0
BENCH_API_KEY = "bench"
BENCH_MODEL = "bench-model"


class ProcessFailedError(RuntimeError):
    """A process the benchmark depends on exited or did not become ready."""


@dataclass
class Started:
    role: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    create_time: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def usage(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class ProcessSet:
    """Owns every process the benchmark starts; leaving the ``with`` block stops them all."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._started: list[Started] = []
        self._stopping: list[Started] = []

    @property
    def log_dir(self) -> Path:
        return self._log_dir

    def __enter__(self) -> "ProcessSet":
        self._log_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for started in reversed(self._started):  # workers before their server
            self.stop(started)

    def start(self, role: str, argv: list[str], env: dict[str, str]) -> Started:
        log_path = self._log_dir / f"{role}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            create_time = psutil.Process(popen.pid).create_time()
        except psutil.NoSuchProcess:
            create_time = 0.0
        started = Started(role, popen, log_path, create_time)
        self._started.append(started)
        return started

    def stop(self, started: Started) -> None:
        """SIGTERM (a worker drains and exits), then SIGKILL if it does not stop in time."""
        self.terminate(started)
        self.wait_stopping()

    def terminate(self, started: Started) -> None:
        """Ask the process to stop without waiting; ``wait_stopping`` reaps it later."""
        if started.popen.poll() is None:
            started.popen.terminate()
        self._stopping.append(started)

    def wait_stopping(self) -> None:
        """Reap every process asked to stop, so none still runs during a measurement."""
        while self._stopping:
            started = self._stopping.pop()
            try:
                started.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                started.popen.kill()
                started.popen.wait()

    def records(self) -> list[dict[str, object]]:
        return [
            {
                "role": started.role,
                "pid": started.pid,
                "create_time": started.create_time,
                "exit_code": started.popen.poll(),
                "log": str(started.log_path),
            }
            for started in self._started
        ]


def dev_server_argv(port: int, ui_port: int, db_file: Path | None = None) -> list[str]:
    """A dev server on loopback with the ApprovalStatus search attribute: in memory, or
    keeping its data in the SQLite file ``db_file``, as users run it with --db-filename."""
    persisted = ["--db-filename", str(db_file)] if db_file is not None else []
    return [
        str(TEMPORAL_CLI),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--search-attribute",
        f"{APPROVAL_STATUS_SEARCH_ATTRIBUTE}=Keyword",
        "--log-level",
        "error",
        *persisted,
    ]


def python_module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def worker_env(
    temporal_address: str, llm_url: str, queue: str, pycache_dir: Path, state_dir: Path
) -> dict[str, str]:
    """The worker's environment: loopback server and LLM only, no inherited profile, and
    the execute ledger in ``state_dir`` (the benchmark's own folder, not the project's).

    Bytecode caching is on, as in a normal install, but outside the source tree: the
    workflow sandbox imports the workflow module afresh for every new run, and without a
    ``.pyc`` (PYTHONDONTWRITEBYTECODE) each run would pay for compiling it from source.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEMPORAL_", "OPENAI_", "HITL_"))
        and key != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        {
            "PYTHONPYCACHEPREFIX": str(pycache_dir),
            "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_NAMESPACE": "default",
            OPENAI_BASE_URL_ENV: llm_url,
            OPENAI_API_KEY_ENV: BENCH_API_KEY,
            OPENAI_MODEL_ENV: BENCH_MODEL,
            TASK_QUEUE_ENV: queue,
            STATE_DIR_ENV: str(state_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


async def wait_for_log(started: Started, text: str, timeout: float = 60.0) -> str:
    """Wait until ``text`` appears in the process's log; fail at once if it exited."""
    deadline = time.monotonic() + timeout
    while True:
        content = started.log()
        if text in content:
            return content
        if started.popen.poll() is not None:
            raise ProcessFailedError(
                f"{started.role} exited with {started.popen.returncode}:\n{content[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise ProcessFailedError(
                f"{started.role} did not print {text!r} within {timeout}s:\n{content[-2000:]}"
            )
        await asyncio.sleep(0.05)
