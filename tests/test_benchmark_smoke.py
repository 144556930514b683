"""The load benchmark runs end to end at toy size, reports every figure, and leaves nothing
running behind it.

The numbers are not judged here (the machine is shared and the sizes are tiny); the
benchmark's own table judges them against the targets at full size.
"""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from benchmarks import encryption
from benchmarks.load import connect_when_ready
from benchmarks.processes import ProcessSet, dev_server_argv
from benchmarks.resources import MachineBusyError, wait_for_quiet_machine
from dev_server import free_port
from tests.helpers import PROJECT_ROOT

# The benchmark runs as a process, with the servers and workers it starts; the first test
# waits for the whole toy run (three subjects), which a loaded machine stretches.
BENCH_TIMEOUT_SECONDS = 180
pytestmark = [pytest.mark.usefixtures("processes"), pytest.mark.timeout(BENCH_TIMEOUT_SECONDS + 60)]
# Not HITL_-prefixed: the benchmark drops HITL_ (and TEMPORAL_, OPENAI_) variables from its
# workers' environment, and the marker must reach every process it starts.
MARKER_ENV = "BENCH_SMOKE_MARKER"
# How often the running benchmark's processes are listed, to see each one carry the marker.
WATCH_INTERVAL_SECONDS = 0.5
SUBJECTS = ("product", "baseline")
MEASURED = (*SUBJECTS, "product-encrypted")  # every subject the run measured
FIGURES = (
    "safe_runs",
    "safe_seconds",
    "safe_runs_per_s",
    "safe_latency_p50_ms",
    "safe_latency_p99_ms",
    "idle_settle_seconds",
    "idle_worker_cpu_percent",
    "idle_worker_rss_mib",
    "idle_server_cpu_percent",
    "idle_server_rss_mib",
    "waiting_runs",
    "park_starts_seconds",
    "park_seconds",
    "waiting_settle_seconds",
    "waiting_worker_cpu_percent",
    "waiting_worker_rss_mib",
    "waiting_server_cpu_percent",
    "waiting_server_rss_mib",
    "worker_rss_growth_mib",
    "prepare_seconds",
    "approval_latency_p50_ms",
    "approval_latency_p99_ms",
    "approval_accepted_p50_ms",
    "approval_signal_latency_p50_ms",
    "approval_signal_latency_p99_ms",
    "approval_signal_accepted_p50_ms",
    "burst_approvals",
    "burst_seconds",
    "burst_approvals_per_s",
    "safe_worker_cpu_ms_per_run",
    "safe_server_cpu_ms_per_run",
    "safe_llm_cpu_ms_per_run",
    "safe_bench_cpu_ms_per_run",
    "safe_machine_busy_percent",
    "park_worker_cpu_ms_per_run",
    "park_server_cpu_ms_per_run",
    "park_llm_cpu_ms_per_run",
    "park_bench_cpu_ms_per_run",
    "park_machine_busy_percent",
    "burst_worker_cpu_ms_per_run",
    "burst_server_cpu_ms_per_run",
    "burst_llm_cpu_ms_per_run",
    "burst_bench_cpu_ms_per_run",
    "burst_machine_busy_percent",
    "parked_events",
    "parked_workflow_tasks",
    "parked_activities",
    "parked_upserts",
    "parked_markers",
    "parked_timers",
    "parked_start_to_parked_ms",
    "parked_workflow_task_queue_ms",
    "parked_workflow_task_run_ms",
    "parked_activity_queue_ms",
    "parked_activity_run_ms",
)
TARGET_FIGURES = {
    "safe_runs_per_s",
    "park_seconds",
    "waiting_worker_cpu_percent",
    "worker_rss_growth_mib",
    "approval_latency_p50_ms",
    "burst_approvals_per_s",
}


class BenchmarkRun:
    def __init__(
        self,
        returncode: int,
        stdout: str,
        stderr: str,
        report_path: Path,
        marker: str,
        marked_pids: set[int],
    ):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.report_path = report_path
        self.marker = marker
        self.marked_pids = marked_pids

    def report(self) -> dict[str, Any]:
        return json.loads(self.report_path.read_text())


@pytest.fixture(scope="module")
def benchmark_run(tmp_path_factory: pytest.TempPathFactory) -> BenchmarkRun:
    """One tiny benchmark run, shared by the tests below; its processes carry a marker in
    their environment so that any survivor can be found, whoever started it. While it runs,
    the marked processes are listed, to show that the marker reaches every one of them."""
    bench_dir = tmp_path_factory.mktemp("bench")
    report_path = bench_dir / "load.json"
    marker = uuid.uuid4().hex
    argv = [
        sys.executable,
        "-m",
        "benchmarks.load",
        # The fewest runs that still take every path: one approval by update, one by
        # signal, and a burst of two; one CPU/RSS sample per window.
        "--safe-runs=3",
        "--waiting-runs=4",
        "--latency-samples=1",
        "--sample-seconds=0.25",
        # The shared test machine is never quiet; the load is recorded, not waited for.
        "--max-load=1000",
        "--quiet-timeout=0",
        # One run serves the encryption tests too: the encrypted subject runs beside.
        "--encryption",
        f"--json={report_path}",
    ]
    stdout_path, stderr_path = bench_dir / "stdout.txt", bench_dir / "stderr.txt"
    marked_pids: set[int] = set()
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env={**os.environ, MARKER_ENV: marker},
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
        deadline = time.monotonic() + BENCH_TIMEOUT_SECONDS
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    process.terminate()  # the benchmark stops what it started on SIGTERM
                    process.wait(timeout=30)
                    pytest.fail(
                        f"the benchmark took over {BENCH_TIMEOUT_SECONDS}s:\n"
                        + stderr_path.read_text()
                    )
                marked_pids.update(p.pid for p in marked_processes(marker))
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=WATCH_INTERVAL_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return BenchmarkRun(
        process.returncode,
        stdout_path.read_text(),
        stderr_path.read_text(),
        report_path,
        marker,
        marked_pids,
    )


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER_ENV) == marker:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_benchmark_exits_cleanly_and_prints_the_table(
    benchmark_run: BenchmarkRun, record_property: Callable[[str, object], None]
) -> None:
    record_property("measured", benchmark_run.stdout)  # shown in the run's summary
    assert benchmark_run.returncode == 0, benchmark_run.stderr
    assert "burst approvals/s" in benchmark_run.stdout
    assert str(benchmark_run.report_path) in benchmark_run.stdout


def test_the_run_reports_encryption_on_and_off(benchmark_run: BenchmarkRun) -> None:
    report = benchmark_run.report()
    figures = report["encryption"]
    for figure, _ in encryption.COMPARED:
        assert figures[f"{figure}_off"] > 0 and figures[f"{figure}_on"] > 0, figure
    assert "payload encryption" in benchmark_run.stdout
    assert "safe throughput lost to encryption" in benchmark_run.stdout
    # Every result was checked by the benchmark, so the encrypted worker and the client
    # shared the key: the client cannot read a sealed result without it, nor the worker a
    # sealed input.
    roles = {process["role"] for process in report["processes"]}
    assert {"product-encrypted-worker", "product-encrypted-server"} <= roles


def test_report_has_every_figure_for_product_and_baseline(benchmark_run: BenchmarkRun) -> None:
    report = benchmark_run.report()
    for subject in SUBJECTS:
        figures = report[subject]
        missing = [name for name in FIGURES if not isinstance(figures.get(name), int | float)]
        assert not missing, f"{subject} lacks {missing}"
        assert figures["safe_runs"] == 3
        assert figures["waiting_runs"] == 4
        assert figures["burst_approvals"] == 2  # 4 waiting, 1 by update, 1 by signal
    assert set(FIGURES) <= set(report["ratios"])


def test_both_subjects_decided_by_the_same_paths(benchmark_run: BenchmarkRun) -> None:
    """Like for like: each approval phase reached product and baseline the same way, as
    the decided runs' histories record it (an accepted update, or a signal)."""
    paths = benchmark_run.report()["decision_paths"]
    expected = {
        "one_at_a_time_by_update": "update",
        "one_at_a_time_by_signal": "signal",
        "burst_by_update": "update",
    }
    assert paths == dict.fromkeys(MEASURED, expected)


def test_a_parked_runs_history_is_read_back_for_each_subject(benchmark_run: BenchmarkRun) -> None:
    """The baseline parks after its analysis; so does the product, whose one activity
    proposes the action with its e-mail's preview (the assessment runs in workflow code),
    then it sends the opening notice, one local activity (a marker) for every channel, and
    starts the deadline timer; its version is one more marker (``workflows/versions.py``)."""
    report = benchmark_run.report()
    assert report["baseline"]["parked_activities"] == 1
    assert report["product"]["parked_activities"] == 1
    assert report["product"]["parked_markers"] == 2
    assert report["product"]["parked_timers"] == 1
    assert report["product"]["parked_events"] > report["baseline"]["parked_events"]


def test_report_records_the_load_it_ran_under(benchmark_run: BenchmarkRun) -> None:
    machine = benchmark_run.report()["machine"]
    assert machine["max_load"] == 1000
    assert len(machine["load_average_before"]) == 3
    assert set(machine["load_average_at_subject_start"]) == set(MEASURED)


def test_a_busy_machine_is_waited_for_then_refused_with_the_load_seen() -> None:
    loads = iter([(5.5, 4.0, 3.0), (0.2, 3.9, 3.0)])
    seen: list[str] = []
    quiet = wait_for_quiet_machine(1.0, 60, seen.append, lambda: next(loads), poll_seconds=0)
    assert quiet[0] == 0.2
    assert seen and "5.50" in seen[0]

    with pytest.raises(MachineBusyError) as busy:
        wait_for_quiet_machine(1.0, 0, seen.append, lambda: (5.5, 4.0, 3.0))
    assert "load average 5.50" in str(busy.value) and "--max-load 1" in str(busy.value)


def test_report_judges_every_target(benchmark_run: BenchmarkRun) -> None:
    targets = benchmark_run.report()["targets"]
    assert {target["figure"] for target in targets} == TARGET_FIGURES
    assert all(isinstance(target["passed"], bool) for target in targets)


def test_benchmark_stopped_every_process_it_started(benchmark_run: BenchmarkRun) -> None:
    processes = benchmark_run.report()["processes"]
    roles = {process["role"] for process in processes}
    assert roles == {
        "llm",
        *(f"{subject}-{role}" for subject in MEASURED for role in ("server", "worker")),
    }
    assert all(process["exit_code"] is not None for process in processes)
    # The survivor check below is blind to a process the marker did not reach.
    assert {process["pid"] for process in processes} <= benchmark_run.marked_pids
    assert marked_processes(benchmark_run.marker) == []


def test_persisted_dev_server_keeps_its_data_in_the_sqlite_file(tmp_path: Path) -> None:
    """--persisted: each subject's dev server runs on a SQLite file, as users run it."""
    db_file = tmp_path / "product.db"
    port = free_port()

    async def connect() -> None:
        await connect_when_ready(f"127.0.0.1:{port}", server)

    with ProcessSet(tmp_path / "logs") as processes:
        server = processes.start(
            "server", dev_server_argv(port, free_port(), db_file), dict(os.environ)
        )
        asyncio.run(connect())
        assert db_file.stat().st_size > 0
    assert server.popen.poll() is not None
