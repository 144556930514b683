"""What waiting for a human costs: load figures of the product beside a plain baseline.

uv run python -m benchmarks.load [--safe-runs N] [--waiting-runs M] [--latency-samples K]
    [--json PATH] [--sample-seconds S] [--burst-concurrency C] [--park-timeout S]
    [--max-cached-workflows N] [--max-concurrent-activities N]
    [--max-load L] [--quiet-timeout S] [--persisted]

It first waits for a quiet machine (1-minute load average below --max-load) and refuses,
with the load it saw, if none comes; the JSON records the load before each subject.

Starts everything it needs and stops it all when done: the local OpenAI-compatible server
(offline rule-based answers), and for each of the product and the baseline its own dev
server (so neither inherits the other's history) and its own worker process. The dev servers
keep their data in memory, or with --persisted in a SQLite file each (in the logs folder), as
users run ``temporal server start-dev --db-filename``.
Prints a table with the targets and writes the figures as JSON.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from benchmarks import encryption
from benchmarks.fake_llm import READY_PREFIX
from benchmarks.phases import Settings, SubjectRun, WrongResultError
from benchmarks.processes import (
    PROJECT_ROOT,
    ProcessFailedError,
    ProcessSet,
    Started,
    dev_server_argv,
    python_module_argv,
    wait_for_log,
    worker_env,
)
from benchmarks.report import judge, ratios, table
from benchmarks.resources import MachineBusyError, wait_for_quiet_machine
from benchmarks.subjects import BASELINE, PRODUCT, Subject
from console_exit import exit_process
from dev_server import free_port
from worker_setup import DEFAULT_MAX_CACHED_WORKFLOWS, DEFAULT_MAX_CONCURRENT_ACTIVITIES

RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
# The workers' bytecode, kept from one benchmark run to the next (Python checks each file
# against its source): a fresh folder per run made the first worker compile every module
# it imports, seconds of CPU before anything is measured.
PYCACHE_DIR = RESULTS_DIR / "pycache"
# Quiet: the 1-minute load average at most a quarter of the CPUs (0.5 on 2 cores).
DEFAULT_MAX_LOAD = (os.cpu_count() or 1) / 4
WORKER_READY = "Worker started on task queue"
SERVER_READY_SECONDS = 60.0
SUBJECTS = (BASELINE, PRODUCT)


def positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.load", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--safe-runs",
        type=positive(int),
        default=200,
        metavar="N",
        help="auto-approved runs started at once for throughput (default %(default)s)",
    )
    add(
        "--waiting-runs",
        type=positive(int),
        default=1000,
        metavar="M",
        help="runs parked awaiting approval (default %(default)s)",
    )
    add(
        "--latency-samples",
        type=positive(int),
        default=50,
        metavar="K",
        help="of those, approved one at a time for latency (default %(default)s)",
    )
    add(
        "--sample-seconds",
        type=positive(float),
        default=10.0,
        metavar="S",
        help="how long CPU and RSS are sampled, idle and waiting (default %(default)s)",
    )
    add(
        "--burst-concurrency",
        type=positive(int),
        default=50,
        metavar="C",
        help="decisions in flight at once in the burst (default %(default)s)",
    )
    add(
        "--park-timeout",
        type=positive(float),
        default=600.0,
        metavar="S",
        help="give up if the runs are not all parked by then (default %(default)s)",
    )
    add(
        "--max-cached-workflows",
        type=int,
        default=DEFAULT_MAX_CACHED_WORKFLOWS,
        metavar="N",
        help="passed to both workers (default %(default)s)",
    )
    add(
        "--max-concurrent-activities",
        type=positive(int),
        default=DEFAULT_MAX_CONCURRENT_ACTIVITIES,
        metavar="N",
        help="passed to both workers (default %(default)s)",
    )
    add(
        "--max-load",
        type=positive(float),
        default=DEFAULT_MAX_LOAD,
        metavar="L",
        help="start only once the 1-minute load average is below L (default %(default)g)",
    )
    add(
        "--quiet-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="refuse if the machine is not quiet within S seconds (default %(default)g)",
    )
    add(
        "--persisted",
        action="store_true",
        help="dev servers keep their data in a SQLite file, as with --db-filename "
        "(default: in memory)",
    )
    add(
        "--encryption",
        action="store_true",
        help="also measure the product with payload encryption on, and report its cost",
    )
    add(
        "--json",
        type=Path,
        metavar="PATH",
        help="where to write the figures (default benchmarks/results/load-<time>.json)",
    )
    args = parser.parse_args(argv)
    if 2 * args.latency_samples >= args.waiting_runs:
        parser.error(
            "--waiting-runs must exceed twice --latency-samples (samples by update, as many "
            "by signal, and the rest burst)"
        )
    if args.max_cached_workflows < 0:
        parser.error("--max-cached-workflows must be >= 0")
    if args.json is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        args.json = RESULTS_DIR / f"load-{stamp}.json"
    return args


class Benchmark:
    def __init__(self, args: argparse.Namespace, processes: ProcessSet) -> None:
        self._args = args
        self._processes = processes
        self._began = time.monotonic()
        self.decision_paths: dict[str, dict[str, str]] = {}
        self.load_at_start: dict[str, tuple[float, float, float]] = {}
        self._settings = Settings(
            safe_runs=args.safe_runs,
            waiting_runs=args.waiting_runs,
            latency_samples=args.latency_samples,
            sample_seconds=args.sample_seconds,
            burst_concurrency=args.burst_concurrency,
            park_timeout_seconds=args.park_timeout,
        )

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self._began:6.1f}s] {message}", file=sys.stderr, flush=True)

    async def run(self) -> dict[str, dict[str, float]]:
        llm = self._processes.start(
            "llm", python_module_argv("benchmarks.fake_llm"), dict(os.environ)
        )
        subjects = (*SUBJECTS, encryption.ENCRYPTED_PRODUCT) if self._args.encryption else SUBJECTS
        return {subject.name: await self._measure(subject, llm) for subject in subjects}

    async def _measure(self, subject: Subject, llm: Started) -> dict[str, float]:
        self.load_at_start[subject.name] = os.getloadavg()
        port = free_port()
        db_file = self._processes.log_dir / f"{subject.name}.db" if self._args.persisted else None
        server = self._processes.start(
            f"{subject.name}-server", dev_server_argv(port, free_port(), db_file), dict(os.environ)
        )
        llm_url = (await wait_for_log(llm, READY_PREFIX)).split(READY_PREFIX, 1)[1].split()[0]
        address = f"127.0.0.1:{port}"
        client = await connect_when_ready(address, server, encryption.client_converter(subject))
        queue = f"bench-{subject.name}-{uuid.uuid4().hex[:8]}"
        worker_args = (
            f"--max-cached-workflows={self._args.max_cached_workflows}",
            f"--max-concurrent-activities={self._args.max_concurrent_activities}",
        )
        worker = self._processes.start(
            f"{subject.name}-worker",
            python_module_argv(subject.worker_module, *worker_args),
            worker_env(
                address,
                llm_url,
                queue,
                PYCACHE_DIR,
                self._processes.log_dir / "hitl-state",
            )
            | encryption.worker_settings(subject),
        )
        try:
            await wait_for_log(worker, WORKER_READY)
            # The previous subject's server stopped while this one started; now it is gone.
            self._processes.wait_stopping()
            self.say(f"{subject.name}: worker pid {worker.pid}, dev server pid {server.pid}")
            run = SubjectRun(
                subject,
                client,
                queue,
                {
                    "worker": worker.usage(),
                    "server": server.usage(),
                    "llm": llm.usage(),
                    "bench": psutil.Process(),
                },
                self._settings,
                lambda message: self.say(f"{subject.name}: {message}"),
            )
            figures = await run.measure_all()
            self.decision_paths[subject.name] = run.decision_paths
            return figures
        finally:
            self._processes.stop(worker)
            self._processes.terminate(server)


async def connect_when_ready(
    address: str, server: Started, converter: DataConverter = pydantic_data_converter
) -> Client:
    """Connect once the dev server answers; fail early if it exited."""
    deadline = time.monotonic() + SERVER_READY_SECONDS
    while True:
        try:
            return await Client.connect(address, data_converter=converter)
        except RuntimeError:
            if server.popen.poll() is not None or time.monotonic() > deadline:
                raise ProcessFailedError(
                    f"the dev server on {address} did not start:\n{server.log()[-2000:]}"
                ) from None
            await asyncio.sleep(0.1)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM unwinds like Ctrl-C, so every started process is stopped on the way out."""
    raise SystemExit(128 + signum)


def say_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    json_path: Path = args.json
    log_dir = json_path.parent / f"{json_path.stem}-logs"
    started_at = datetime.now(UTC)
    try:
        load_before = wait_for_quiet_machine(args.max_load, args.quiet_timeout, say_to_stderr)
    except MachineBusyError as err:
        print(f"Benchmark refused: {err}", file=sys.stderr)
        return 1
    with ProcessSet(log_dir) as processes:
        benchmark = Benchmark(args, processes)
        try:
            figures = asyncio.run(benchmark.run())
        except (ProcessFailedError, WrongResultError, TimeoutError) as err:
            print(f"Benchmark failed: {err} (logs in {log_dir})", file=sys.stderr)
            return 1
    product, baseline = figures[PRODUCT.name], figures[BASELINE.name]
    report = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_seconds": (datetime.now(UTC) - started_at).total_seconds(),
        "config": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in vars(args).items()
        },
        "machine": {
            "cpus": os.cpu_count(),
            "max_load": args.max_load,
            "load_average_before": load_before,
            "load_average_at_subject_start": benchmark.load_at_start,
            "load_average_after": os.getloadavg(),
        },
        "product": product,
        "baseline": baseline,
        "decision_paths": benchmark.decision_paths,
        "ratios": ratios(product, baseline),
        "targets": judge(product, baseline),
        "processes": processes.records(),
    }
    if encrypted := figures.get(encryption.ENCRYPTED_PRODUCT.name):
        report["encryption"] = encryption.compare(product, encrypted)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{args.safe_runs} safe runs, {args.waiting_runs} waiting runs "
        f"({args.latency_samples} approved one at a time); "
        f"dev servers {'on SQLite files' if args.persisted else 'in memory'}; "
        f"load average {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(table(product, baseline))
    if "encryption" in report:
        print(encryption.table(report["encryption"]))
    print(f"JSON: {json_path}")
    return 0


if __name__ == "__main__":
    exit_process(main())
