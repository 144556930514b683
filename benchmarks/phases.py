"""The measurements, run the same way against the product and against the baseline.

1. throughput: safe runs started at once, first start to last result;
2. the cost of waiting: the worker's CPU and RSS while runs wait, against the idle worker,
   and the time until every started run is parked (counted through visibility);
3. approvals: latency one at a time (decision sent -> result) by update, the path both
   subjects' approvers use, then as many by signal, the second figure; then a burst, by
   update. Which path decided each phase is read back from a decided run's history;
4. what a parked run's history holds, and where its time went until it parked
   (``benchmarks/histories.py``), read back from the runs approved one at a time.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil
from temporalio.client import Client, WorkflowHandle

from benchmarks.histories import parking_profile
from benchmarks.resources import CpuMeter, measure, wait_until_quiet
from benchmarks.subjects import Decide, Decisions, Subject
from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE
from models.models import ApprovalStatus

SAFE_REQUEST = "Summarise the report number {n}"
# send_email to one address: the product asks (default-deny) and its preview reads only
# that address, so concurrent runs never drift one another's approvals; "production" is a
# risk rule, so the offline analyser flags it risky and the baseline asks too.
RISKY_REQUEST = "E-mail ops@example.com: production report for batch {n}"
WARM_UP_RUNS = 3
COUNT_POLL_SECONDS = 0.25

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Settings:
    safe_runs: int
    waiting_runs: int
    latency_samples: int
    sample_seconds: float
    burst_concurrency: int
    park_timeout_seconds: float


class WrongResultError(RuntimeError):
    """A run ended differently than the benchmark scenario requires."""


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; defined for any non-empty sample."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


async def bounded(items: Sequence[T], limit: int, call: Callable[[T], Awaitable[R]]) -> list[R]:
    """``call`` for every item, at most ``limit`` at a time, results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with semaphore:
            return await call(item)

    return await asyncio.gather(*(one(item) for item in items))


class SubjectRun:
    """One subject's measurements against its own worker and dev server."""

    def __init__(
        self,
        subject: Subject,
        client: Client,
        queue: str,
        processes: dict[str, psutil.Process],
        settings: Settings,
        say: Callable[[str], None],
    ) -> None:
        self._say = say
        self._subject = subject
        self._client = client
        self._queue = queue
        # worker, server, llm and bench (this process): CPU is measured for each.
        self._processes = processes
        self._settings = settings
        self._ids = 0
        self.decision_paths: dict[str, str] = {}
        """Per approval phase, how the server saw the decision arrive (from history)."""

    async def measure_all(self) -> dict[str, float]:
        figures: dict[str, float] = {}
        await self._warm_up()
        self._say(f"{self._settings.safe_runs} safe runs at once")
        figures |= await self._safe_throughput()
        figures |= await self._park_and_wait()
        return figures

    def _next_id(self, phase: str) -> str:
        self._ids += 1
        return f"bench-{self._subject.name}-{phase}-{self._ids}-{self._queue}"

    async def _start(self, request_template: str, phase: str) -> WorkflowHandle[Any, Any]:
        workflow_id = self._next_id(phase)
        request = request_template.format(n=self._ids)
        return await self._subject.start(self._client, self._queue, request, workflow_id)

    async def _check(self, handle: WorkflowHandle[Any, Any], ok: Callable[[Any], bool]) -> None:
        result = await handle.result()
        if not ok(result):
            raise WrongResultError(f"{handle.id} of {self._subject.name} ended with {result!r}")

    async def _warm_up(self) -> None:
        """Imports, sandbox and connections warmed before anything is timed."""
        safe = [await self._start(SAFE_REQUEST, "warm") for _ in range(WARM_UP_RUNS)]
        await asyncio.gather(*(self._check(h, self._subject.auto_approved) for h in safe))
        risky = [await self._start(RISKY_REQUEST, "warm") for _ in range(2)]
        await self._wait_parked(2, time.perf_counter())
        by_update, by_signal = [await self._subject.prepare_decision(h) for h in risky]
        await by_update.by_update()
        await by_signal.by_signal()
        await asyncio.gather(*(self._check(h, self._subject.approved) for h in risky))

    async def _safe_throughput(self) -> dict[str, float]:
        batch_start = time.perf_counter()

        async def one(_: int) -> float:
            started = time.perf_counter()
            handle = await self._start(SAFE_REQUEST, "safe")
            await self._check(handle, self._subject.auto_approved)
            return time.perf_counter() - started

        count = self._settings.safe_runs
        meter = CpuMeter(self._processes).start()
        latencies = await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - batch_start
        return meter.figures("safe", count) | {
            "safe_runs": count,
            "safe_seconds": elapsed,
            "safe_runs_per_s": count / elapsed,
            "safe_latency_p50_ms": 1000 * percentile(latencies, 50),
            "safe_latency_p99_ms": 1000 * percentile(latencies, 99),
        }

    async def _wait_parked(self, expected: int, since: float) -> float:
        """Seconds from ``since`` until ``expected`` runs show ApprovalStatus=Pending."""
        query = (
            f'{APPROVAL_STATUS_SEARCH_ATTRIBUTE} = "{ApprovalStatus.PENDING.value}" '
            f'AND TaskQueue = "{self._queue}" AND ExecutionStatus = "Running"'
        )
        deadline = since + self._settings.park_timeout_seconds
        while True:
            count = (await self._client.count_workflows(query)).count
            now = time.perf_counter()
            if count >= expected:
                return now - since
            if now > deadline:
                raise TimeoutError(f"only {count} of {expected} runs parked in time")
            await asyncio.sleep(COUNT_POLL_SECONDS)

    async def _usage(self, label: str) -> dict[str, float]:
        quiet = await wait_until_quiet(self._processes["worker"])
        watched = {name: self._processes[name] for name in ("worker", "server")}
        usage = await measure(watched, self._settings.sample_seconds)
        figures = {f"{label}_settle_seconds": quiet}
        for name, use in usage.items():
            figures[f"{label}_{name}_cpu_percent"] = use.cpu_percent
            figures[f"{label}_{name}_rss_mib"] = use.rss_mib
        return figures

    async def _park_and_wait(self) -> dict[str, float]:
        self._say(f"idle worker for {self._settings.sample_seconds}s")
        figures = await self._usage("idle")
        count = self._settings.waiting_runs
        self._say(f"parking {count} runs")
        meter = CpuMeter(self._processes).start()
        park_start = time.perf_counter()
        handles = await asyncio.gather(*(self._start(RISKY_REQUEST, "wait") for _ in range(count)))
        figures["waiting_runs"] = count
        figures["park_starts_seconds"] = time.perf_counter() - park_start
        figures["park_seconds"] = await self._wait_parked(count, park_start)
        figures |= meter.figures("park", count)
        self._say(f"{count} runs parked; waiting worker for {self._settings.sample_seconds}s")
        figures |= await self._usage("waiting")
        figures["worker_rss_growth_mib"] = (
            figures["waiting_worker_rss_mib"] - figures["idle_worker_rss_mib"]
        )
        figures |= await self._approve(handles)
        return figures

    async def _approve(self, handles: Sequence[WorkflowHandle[Any, Any]]) -> dict[str, float]:
        settings = self._settings
        prepare_start = time.perf_counter()
        decisions = await bounded(
            handles, settings.burst_concurrency, self._subject.prepare_decision
        )
        figures = {"prepare_seconds": time.perf_counter() - prepare_start}
        k = settings.latency_samples
        self._say(f"approving {k} one at a time by update, {k} by signal, then the rest at once")
        pairs = list(zip(handles, decisions, strict=True))
        by_update, by_signal, burst = pairs[:k], pairs[k : 2 * k], pairs[2 * k :]

        figures |= await self._one_at_a_time("approval", by_update, "update")
        figures |= await self._one_at_a_time("approval_signal", by_signal, "signal")
        self._say(
            f"{len(burst)} approvals at once by update, {settings.burst_concurrency} in flight"
        )

        async def approve(pair: tuple[WorkflowHandle[Any, Any], Decisions]) -> None:
            handle, decisions = pair
            await decisions.by_update()
            await self._check(handle, self._subject.approved)

        meter = CpuMeter(self._processes).start()
        burst_start = time.perf_counter()
        await bounded(burst, settings.burst_concurrency, approve)
        elapsed = time.perf_counter() - burst_start
        figures |= meter.figures("burst", len(burst))
        figures["burst_approvals"] = len(burst)
        figures["burst_seconds"] = elapsed
        figures["burst_approvals_per_s"] = len(burst) / elapsed
        self.decision_paths["burst_by_update"] = await decided_by(burst[-1][0])
        figures |= await parking_profile([handle for handle, _ in by_update])
        return figures

    async def _one_at_a_time(
        self,
        label: str,
        pairs: Sequence[tuple[WorkflowHandle[Any, Any], Decisions]],
        path: str,
    ) -> dict[str, float]:
        """Latency of approvals sent one after another (decision sent -> result in hand)."""
        accepted: list[float] = []
        latencies: list[float] = []
        for handle, decisions in pairs:
            decide: Decide = decisions.by_update if path == "update" else decisions.by_signal
            sent = time.perf_counter()
            await decide()
            accepted.append(time.perf_counter() - sent)
            await self._check(handle, self._subject.approved)
            latencies.append(time.perf_counter() - sent)
        self.decision_paths[f"one_at_a_time_by_{path}"] = await decided_by(pairs[-1][0])
        return {
            f"{label}_latency_p50_ms": 1000 * percentile(latencies, 50),
            f"{label}_latency_p99_ms": 1000 * percentile(latencies, 99),
            f"{label}_accepted_p50_ms": 1000 * percentile(accepted, 50),
        }


async def decided_by(handle: WorkflowHandle[Any, Any]) -> str:
    """How the decision reached the run, as its history records it: "update" (an accepted
    update), "signal", or "none". The search attribute upsert is neither."""
    paths = set()
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            paths.add("update")
        elif event.HasField("workflow_execution_signaled_event_attributes"):
            paths.add("signal")
    return "+".join(sorted(paths)) or "none"
