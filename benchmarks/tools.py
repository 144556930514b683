"""What a tool call costs: execute latency with and without a preview, and the safe path.

uv run python -m benchmarks.tools [--runs N] [--safe-runs N] [--json PATH]

Everything runs here: an in-memory dev server, a worker with the offline analyser (its
tool calls are deterministic), and the operations database in a temporary folder. Runs go
one at a time, so each figure is one step's own cost:

- ``read_only``: a read-only tool, unasked. Execute has no preview to match.
- ``previewed``: a tool that changes data (``pay_invoice``), approved. Its effect was
  previewed before asking; execute works it out again inside its transaction, compares
  the fingerprints, then acts and records its key.

A proposal with no tool call is malformed output now (it ends ``analysis_failed``), so a
new run can no longer reach the simulated execution; it is no longer measured here.

``execute_ms`` is the execute activity's time in the run's history (scheduled ->
completed); ``decision_to_result_ms`` is an approval sent by update -> the result in hand;
``propose_ms`` is the ``propose_action`` activity's time: the proposal and its effect
preview, worked out together in one activity (the offline analyser is rules, so nearly all
of it is the preview). Then ``--safe-runs`` read-only runs start at once: the safe path's
throughput.
"""

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.propose_action import OfflineAnalysisActivities
from benchmarks.phases import percentile
from constants import STATE_DIR_ENV, STATUS_QUERY, SUBMIT_DECISION_UPDATE, WORKFLOW_TYPE
from dev_server import TEMPORAL_CLI
from models.models import (
    ApprovalDecision,
    Outcome,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from policy.risk_policy import LARGE_AMOUNT
from tools.database import database_path, ensure_database
from tools.registry import TOOLS
from worker_setup import build_worker

SAFE_REQUEST = "Summarise the report number {n}"  # summarize_records: read-only
PAY_REQUEST = "Pay invoice {n} from operating"  # pay_invoice: previewed, then paid
EXECUTE_ACTIVITIES = tuple(TOOLS)  # each tool executes as an activity of its name
PROPOSE_ACTIVITY = "propose_action"  # the proposal with its effect preview
POLL_SECONDS = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each kind, one at a time")
    parser.add_argument("--safe-runs", type=int, default=100, help="read-only runs at once")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def open_invoices(count: int) -> list[int]:
    """Open invoices below the staging amount, so each approval is one decision."""
    with closing(sqlite3.connect(database_path())) as db:
        rows = db.execute(
            "SELECT id FROM invoices WHERE status = 'open' AND amount_cents < ?"
            " ORDER BY id LIMIT ?",
            (LARGE_AMOUNT * 100, count),
        ).fetchall()
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} small open invoices; ask for fewer --runs")
    return [row[0] for row in rows]


async def activity_ms(handle: WorkflowHandle, names: Sequence[str]) -> float | None:
    """Scheduled -> completed of the run's last activity named in ``names``."""
    scheduled: dict[int, tuple[str, float]] = {}
    found = None
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime().timestamp()
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = (name, at)
        elif event.HasField("activity_task_completed_event_attributes"):
            name, start = scheduled[
                event.activity_task_completed_event_attributes.scheduled_event_id
            ]
            if name in names:
                found = 1000 * (at - start)
    return found


async def start(client: Client, queue: str, request: str) -> WorkflowHandle:
    return await client.start_workflow(
        WORKFLOW_TYPE,
        WorkflowInput(user_request=request),
        id=f"bench-tools-{uuid.uuid4().hex[:12]}",
        task_queue=queue,
        result_type=WorkflowResult,
    )


async def approve(handle: WorkflowHandle) -> float:
    """Wait for the request, approve it by update; milliseconds to the result."""
    while True:
        status = await handle.query(STATUS_QUERY, result_type=WorkflowStatus)
        if status.state == WorkflowState.AWAITING_APPROVAL and status.approval_request:
            break
        await asyncio.sleep(POLL_SECONDS)
    decision = ApprovalDecision(
        request_id=status.approval_request.request_id, approved=True, reviewer="bench"
    )
    sent = time.perf_counter()
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)
    result: WorkflowResult = await handle.result()
    if result.outcome != Outcome.APPROVED:
        raise SystemExit(f"{handle.id} ended {result.outcome}: {result.message}")
    return 1000 * (time.perf_counter() - sent)


def summary(label: str, values: list[float]) -> dict[str, float]:
    return {f"{label}_p50": percentile(values, 50), f"{label}_p99": percentile(values, 99)}


async def measure(client: Client, queue: str, args: argparse.Namespace) -> dict[str, float]:
    figures: dict[str, float] = {}
    execute: dict[str, list[float]] = {"read_only": [], "previewed": []}
    decided: dict[str, list[float]] = {"previewed": []}
    proposals: list[float] = []
    invoices = open_invoices(args.runs + 1)
    for n, invoice in enumerate(invoices):
        safe = await start(client, queue, SAFE_REQUEST.format(n=n))
        result: WorkflowResult = await safe.result()
        if result.outcome != Outcome.AUTO_APPROVED:
            raise SystemExit(f"{safe.id} ended {result.outcome}: {result.message}")
        paid = await start(client, queue, PAY_REQUEST.format(n=invoice))
        paid_ms = await approve(paid)
        if n == 0:
            continue  # warm-up: imports, sandbox, connections
        decided["previewed"].append(paid_ms)
        for kind, handle in (("read_only", safe), ("previewed", paid)):
            ms = await activity_ms(handle, EXECUTE_ACTIVITIES)
            assert ms is not None, handle.id
            execute[kind].append(ms)
        proposed = await activity_ms(paid, [PROPOSE_ACTIVITY])
        assert proposed is not None, paid.id
        proposals.append(proposed)
    for kind, values in execute.items():
        figures |= summary(f"{kind}_execute_ms", values)
    for kind, values in decided.items():
        figures |= summary(f"{kind}_decision_to_result_ms", values)
    figures |= summary("propose_ms", proposals)
    figures |= await safe_throughput(client, queue, args.safe_runs)
    return figures


async def safe_throughput(client: Client, queue: str, count: int) -> dict[str, float]:
    started = time.perf_counter()
    handles = [await start(client, queue, SAFE_REQUEST.format(n=n)) for n in range(count)]
    results = await asyncio.gather(*(handle.result() for handle in handles))
    elapsed = time.perf_counter() - started
    if any(result.outcome != Outcome.AUTO_APPROVED for result in results):
        raise SystemExit("a safe run was not auto-approved")
    return {"safe_runs": count, "safe_seconds": elapsed, "safe_runs_per_s": count / elapsed}


async def run(args: argparse.Namespace) -> dict[str, float]:
    os.environ[STATE_DIR_ENV] = tempfile.mkdtemp(prefix="bench-tools-")
    ensure_database(database_path())
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    try:
        queue = f"bench-tools-{uuid.uuid4().hex[:8]}"
        async with build_worker(env.client, queue, OfflineAnalysisActivities()):
            return await measure(env.client, queue, args)
    finally:
        await env.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    figures = asyncio.run(run(args))
    for name, value in figures.items():
        print(f"{name:40} {value:10.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
