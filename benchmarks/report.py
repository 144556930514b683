"""Targets, the printed table and the JSON: the product's figures beside the baseline's.

A target is either absolute ("parked in under 60 s") or relative to the baseline
("burst approvals >= 1.5x the baseline's"); each is printed next to the figure it judges.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    figure: str
    comparison: str  # "<", "<=" or ">="
    limit: float
    relative: bool = False  # limit is a multiple of the baseline's figure
    note: str = ""

    def limit_for(self, baseline: dict[str, float]) -> float:
        return self.limit * baseline[self.figure] if self.relative else self.limit

    def passed(self, product: dict[str, float], baseline: dict[str, float]) -> bool:
        value, limit = product[self.figure], self.limit_for(baseline)
        if self.comparison == "<":
            return value < limit
        return value <= limit if self.comparison == "<=" else value >= limit

    def describe(self) -> str:
        limit = f"{self.limit:g}x baseline" if self.relative else f"{self.limit:g}"
        return f"{self.comparison} {limit}{self.note}"


# Issue 15: waiting costs as little as the least workflow, and decisions are no slower.
TARGETS: tuple[Target, ...] = (
    Target("safe_runs_per_s", ">=", 20),
    Target("safe_runs_per_s", ">=", 1.0, relative=True),
    Target("park_seconds", "<", 20, note=" (for 1,000 runs)"),
    Target("waiting_worker_cpu_percent", "<", 1),
    Target("worker_rss_growth_mib", "<=", 1.1, relative=True),
    Target("approval_latency_p50_ms", "<", 50),
    Target("burst_approvals_per_s", ">=", 1.0, relative=True),
)

# (figure, label) in print order.
ROWS: tuple[tuple[str, str], ...] = (
    ("safe_runs_per_s", "safe throughput, runs/s"),
    ("safe_latency_p50_ms", "safe start-to-result p50, ms"),
    ("safe_latency_p99_ms", "safe start-to-result p99, ms"),
    ("safe_worker_cpu_ms_per_run", "worker CPU per safe run, ms"),
    ("safe_server_cpu_ms_per_run", "dev server CPU per safe run, ms"),
    ("safe_machine_busy_percent", "machine busy during safe runs, %"),
    ("park_starts_seconds", "starting the waiting runs, s"),
    ("park_seconds", "all waiting runs parked, s"),
    ("park_worker_cpu_ms_per_run", "worker CPU per parked run, ms"),
    ("park_server_cpu_ms_per_run", "dev server CPU per parked run, ms"),
    ("park_machine_busy_percent", "machine busy while parking, %"),
    ("idle_worker_cpu_percent", "idle worker CPU, %"),
    ("waiting_worker_cpu_percent", "waiting worker CPU, %"),
    ("idle_worker_rss_mib", "idle worker RSS, MiB"),
    ("waiting_worker_rss_mib", "waiting worker RSS, MiB"),
    ("worker_rss_growth_mib", "worker RSS growth, MiB"),
    ("idle_server_cpu_percent", "idle dev server CPU, %"),
    ("waiting_server_cpu_percent", "waiting dev server CPU, %"),
    ("waiting_server_rss_mib", "waiting dev server RSS, MiB"),
    ("prepare_seconds", "looking up pending requests, s"),
    ("approval_accepted_p50_ms", "by update: decision accepted p50, ms"),
    ("approval_latency_p50_ms", "by update: approval latency p50, ms"),
    ("approval_latency_p99_ms", "by update: approval latency p99, ms"),
    ("approval_signal_accepted_p50_ms", "by signal: decision accepted p50, ms"),
    ("approval_signal_latency_p50_ms", "by signal: approval latency p50, ms"),
    ("approval_signal_latency_p99_ms", "by signal: approval latency p99, ms"),
    ("burst_approvals_per_s", "burst approvals/s"),
    ("burst_worker_cpu_ms_per_run", "worker CPU per burst approval, ms"),
    ("burst_server_cpu_ms_per_run", "dev server CPU per burst approval, ms"),
    ("burst_machine_busy_percent", "machine busy during the burst, %"),
    ("parked_events", "a parked run: history events until parked"),
    ("parked_workflow_tasks", "a parked run: workflow tasks"),
    ("parked_activities", "a parked run: activities"),
    ("parked_start_to_parked_ms", "a parked run: start to parked, ms"),
    ("parked_workflow_task_queue_ms", "a parked run: workflow tasks queued, ms"),
    ("parked_workflow_task_run_ms", "a parked run: workflow tasks running, ms"),
    ("parked_activity_queue_ms", "a parked run: activities queued, ms"),
    ("parked_activity_run_ms", "a parked run: activities running, ms"),
)


def ratio(product: float, baseline: float) -> float | None:
    return product / baseline if baseline else None


def ratios(product: dict[str, float], baseline: dict[str, float]) -> dict[str, float | None]:
    return {key: ratio(value, baseline[key]) for key, value in product.items() if key in baseline}


def judge(product: dict[str, float], baseline: dict[str, float]) -> list[dict[str, object]]:
    return [
        {
            "figure": target.figure,
            "target": target.describe(),
            "value": product[target.figure],
            "limit": target.limit_for(baseline),
            "passed": target.passed(product, baseline),
        }
        for target in TARGETS
    ]


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def table(product: dict[str, float], baseline: dict[str, float]) -> str:
    """The figures side by side, each with its targets and pass/miss."""
    header = ("figure", "product", "baseline", "ratio", "target", "result")
    lines = [header]
    for figure, label in ROWS:
        targets = [t for t in TARGETS if t.figure == figure]
        lines.append(
            (
                label,
                _number(product[figure]),
                _number(baseline[figure]),
                _number(ratio(product[figure], baseline[figure])),
                "; ".join(t.describe() for t in targets),
                " ".join("pass" if t.passed(product, baseline) else "MISS" for t in targets),
            )
        )
    widths = [max(len(line[col]) for line in lines) for col in range(len(header))]
    rendered = [
        "  ".join(
            cell.ljust(width) if col in (0, 4, 5) else cell.rjust(width)
            for col, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    rendered.insert(1, "-" * len(rendered[0]))
    return "\n".join(rendered)
