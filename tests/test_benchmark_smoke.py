"""The load benchmark runs end to end at toy size, reports every figure, and leaves nothing
running behind it.

The numbers are not judged here (the machine is shared and the sizes are tiny); the
benchmark's own table judges them against the targets at full size.
"""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import PROJECT_ROOT

BENCH_TIMEOUT_SECONDS = 90
MARKER_ENV = "HITL_BENCH_SMOKE_MARKER"
SUBJECTS = ("product", "baseline")
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
    def __init__(self, returncode: int, stdout: str, stderr: str, report_path: Path, marker: str):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.report_path = report_path
        self.marker = marker

    def report(self) -> dict[str, Any]:
        return json.loads(self.report_path.read_text())


@pytest.fixture(scope="module")
def benchmark_run(tmp_path_factory: pytest.TempPathFactory) -> BenchmarkRun:
    """One tiny benchmark run, shared by the tests below; its processes carry a marker in
    their environment so that any survivor can be found, whoever started it."""
    report_path = tmp_path_factory.mktemp("bench") / "load.json"
    marker = uuid.uuid4().hex
    argv = [
        sys.executable,
        "-m",
        "benchmarks.load",
        "--safe-runs=5",
        "--waiting-runs=10",
        "--latency-samples=3",
        "--sample-seconds=0.5",
        f"--json={report_path}",
    ]
    process = subprocess.Popen(
        argv,
        cwd=PROJECT_ROOT,
        env={**os.environ, MARKER_ENV: marker},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=BENCH_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.terminate()  # the benchmark stops what it started on SIGTERM
        _, stderr = process.communicate(timeout=30)
        pytest.fail(f"the benchmark took over {BENCH_TIMEOUT_SECONDS}s:\n{stderr}")
    return BenchmarkRun(process.returncode, stdout, stderr, report_path, marker)


def marked_processes(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARKER_ENV) == marker:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_benchmark_exits_cleanly_and_prints_the_table(benchmark_run: BenchmarkRun) -> None:
    assert benchmark_run.returncode == 0, benchmark_run.stderr
    assert "burst approvals/s" in benchmark_run.stdout
    assert str(benchmark_run.report_path) in benchmark_run.stdout


def test_report_has_every_figure_for_product_and_baseline(benchmark_run: BenchmarkRun) -> None:
    report = benchmark_run.report()
    for subject in SUBJECTS:
        figures = report[subject]
        missing = [name for name in FIGURES if not isinstance(figures.get(name), int | float)]
        assert not missing, f"{subject} lacks {missing}"
        assert figures["safe_runs"] == 5
        assert figures["waiting_runs"] == 10
        assert figures["burst_approvals"] == 7
    assert set(FIGURES) <= set(report["ratios"])


def test_report_judges_every_target(benchmark_run: BenchmarkRun) -> None:
    targets = benchmark_run.report()["targets"]
    assert {target["figure"] for target in targets} == TARGET_FIGURES
    assert all(isinstance(target["passed"], bool) for target in targets)


def test_benchmark_stopped_every_process_it_started(benchmark_run: BenchmarkRun) -> None:
    processes = benchmark_run.report()["processes"]
    roles = {process["role"] for process in processes}
    assert roles == {
        "llm",
        "product-server",
        "product-worker",
        "baseline-server",
        "baseline-worker",
    }
    assert all(process["exit_code"] is not None for process in processes)
    assert marked_processes(benchmark_run.marker) == []
