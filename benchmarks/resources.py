"""CPU and memory of running processes over a time window, read with psutil.

CPU is the process's user+system time over wall time, in percent of one core (so a busy
process on a 2-core machine can show up to 200%).
"""

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psutil

MIB = 1024 * 1024
SAMPLE_INTERVAL_SECONDS = 0.25
LOAD_POLL_SECONDS = 5.0

LoadAverage = tuple[float, float, float]


class MachineBusyError(RuntimeError):
    """The machine did not become quiet in time; the message gives the load seen."""


def wait_for_quiet_machine(
    max_load: float,
    timeout: float,
    say: Callable[[str], None],
    load_average: Callable[[], LoadAverage] = os.getloadavg,
    poll_seconds: float = LOAD_POLL_SECONDS,
) -> LoadAverage:
    """Wait until the 1-minute load average is below ``max_load`` and return it; after
    ``timeout`` seconds, MachineBusyError. Other work on the machine takes CPU from the
    subjects, and figures measured beside it compare neither with each other nor with
    the README's."""
    deadline = time.monotonic() + timeout
    load = load_average()
    if load[0] >= max_load:
        say(f"waiting for a quiet machine: load average {load[0]:.2f}, below {max_load:g} needed")
    while load[0] >= max_load:
        if time.monotonic() >= deadline:
            raise MachineBusyError(
                f"the machine is busy: 1-minute load average {load[0]:.2f} "
                f"(5-minute {load[1]:.2f}), not below --max-load {max_load:g} within "
                f"{timeout:g}s. Figures measured beside other work are not comparable; stop "
                "that work, or raise --max-load and publish the load with the figures."
            )
        time.sleep(min(poll_seconds, max(0.0, deadline - time.monotonic())))
        load = load_average()
    return load


@dataclass(frozen=True)
class Usage:
    cpu_percent: float
    rss_mib: float  # mean over the window
    rss_max_mib: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def measure(processes: dict[str, psutil.Process], seconds: float) -> dict[str, Usage]:
    """Each process's CPU over ``seconds`` and its RSS sampled through the window."""
    start_cpu = {name: _cpu_seconds(process) for name, process in processes.items()}
    rss: dict[str, list[int]] = {name: [] for name in processes}
    started = time.monotonic()
    deadline = started + seconds
    while True:
        for name, process in processes.items():
            rss[name].append(process.memory_info().rss)
        now = time.monotonic()
        if now >= deadline:
            break
        await asyncio.sleep(min(SAMPLE_INTERVAL_SECONDS, deadline - now))
    elapsed = time.monotonic() - started
    return {
        name: Usage(
            cpu_percent=100.0 * (_cpu_seconds(process) - start_cpu[name]) / elapsed,
            rss_mib=sum(rss[name]) / len(rss[name]) / MIB,
            rss_max_mib=max(rss[name]) / MIB,
        )
        for name, process in processes.items()
    }


async def wait_until_quiet(
    process: psutil.Process,
    *,
    threshold_percent: float = 3.0,
    window_seconds: float = 0.5,
    quiet_windows: int = 2,
    timeout: float = 30.0,
) -> float:
    """Wait until the process has used under ``threshold_percent`` CPU for a few windows in a
    row (trailing tasks done), or ``timeout`` passed; return how long that took."""
    started = time.monotonic()
    quiet = 0
    while quiet < quiet_windows and time.monotonic() - started < timeout:
        before = _cpu_seconds(process)
        await asyncio.sleep(window_seconds)
        used = 100.0 * (_cpu_seconds(process) - before) / window_seconds
        quiet = quiet + 1 if used < threshold_percent else 0
    return time.monotonic() - started


class CpuMeter:
    """CPU used by each process, and by the whole machine, between ``start`` and ``stop``.

    Per-run CPU cost barely depends on what else the machine runs, unlike rates and
    latencies, so it is the fairer way to compare two workflows on a shared machine.
    """

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        self._processes = processes
        self._start_cpu: dict[str, float] = {}
        self._start_wall = 0.0
        self._start_machine = psutil.cpu_times()

    def start(self) -> "CpuMeter":
        self._start_cpu = {name: _cpu_seconds(p) for name, p in self._processes.items()}
        self._start_machine = psutil.cpu_times()
        self._start_wall = time.monotonic()
        return self

    def figures(self, phase: str, units: int) -> dict[str, float]:
        """``{phase}_{process}_cpu_ms_per_run`` for each process, and how busy the machine
        was (``{phase}_machine_busy_percent``, 100 = every core busy)."""
        figures: dict[str, float] = {}
        for name, process in self._processes.items():
            used = _cpu_seconds(process) - self._start_cpu[name]
            figures[f"{phase}_{name}_cpu_ms_per_run"] = 1000 * used / units
        figures[f"{phase}_machine_busy_percent"] = _busy_percent(
            self._start_machine, psutil.cpu_times()
        )
        return figures


def _busy_percent(before: Any, after: Any) -> float:
    """Share of all cores' time that was not idle between two ``psutil.cpu_times()``."""

    def split(times: Any) -> tuple[float, float]:
        values: dict[str, float] = times._asdict()
        idle = values.get("idle", 0.0) + values.get("iowait", 0.0)
        return sum(values.values()) - idle, idle

    busy_before, idle_before = split(before)
    busy_after, idle_after = split(after)
    busy, idle = busy_after - busy_before, idle_after - idle_before
    return 100.0 * busy / (busy + idle) if busy + idle > 0 else 0.0
