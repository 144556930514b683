"""What one cached waiting run costs in the worker's Python heap, product beside baseline.

uv run python -m benchmarks.cache_cost [--runs N] [--top K]

For each subject, in this process: an in-memory dev server, a worker with the default
cache, a few warm-up runs, then N risky runs parked awaiting approval. The Python heap
(``tracemalloc``, after ``gc.collect()``) is compared before and after parking them, and the
growth per run is printed with the source files that hold most of it. This is where the
README's "A thin workflow module" figures come from: a workflow module the sandbox
re-imports per run shows up here as import (``<frozen importlib._bootstrap>``) and as its
own file.
"""

import argparse
import asyncio
import contextlib
import gc
import os
import sys
import tracemalloc
import uuid
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.llm_settings import LLMSettings, analysis_activities
from benchmarks.baseline_execute_action import execute_action
from benchmarks.baseline_workflow import BaselineApprovalWorkflow
from benchmarks.phases import RISKY_REQUEST
from benchmarks.subjects import BASELINE, PRODUCT, Subject
from client.connection import data_converter
from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE
from dev_server import TEMPORAL_CLI
from worker_setup import build_worker

WARM_UP_RUNS = 5
POLL_SECONDS = 0.25
KIB = 1024


def build(subject: Subject, client: Client, queue: str) -> Worker:
    analysis = analysis_activities(LLMSettings.from_env(), offline=True)
    if subject is PRODUCT:
        return build_worker(client, queue, analysis)
    return Worker(
        client,
        task_queue=queue,
        workflows=[BaselineApprovalWorkflow],
        activities=[analysis.analyze_request, execute_action],
    )


async def park(subject: Subject, client: Client, queue: str, runs: int, parked: int) -> int:
    """Start ``runs`` risky runs and return once all ``parked + runs`` show as Pending."""
    handles: list[WorkflowHandle[Any, Any]] = []
    for n in range(runs):
        request = RISKY_REQUEST.format(n=n)
        handles.append(await subject.start(client, queue, request, f"cost-{uuid.uuid4().hex}"))
    query = (
        f'{APPROVAL_STATUS_SEARCH_ATTRIBUTE} = "Pending" AND TaskQueue = "{queue}" '
        'AND ExecutionStatus = "Running"'
    )
    while (await client.count_workflows(query)).count < parked + runs:
        await asyncio.sleep(POLL_SECONDS)
    return parked + runs


async def measure(subject: Subject, runs: int, top: int) -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=data_converter(),
        search_attributes=[SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)],
        dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_log_level="error",
    )
    queue = f"cost-{subject.name}-{uuid.uuid4().hex[:8]}"
    try:
        async with build(subject, env.client, queue):
            parked = await park(subject, env.client, queue, WARM_UP_RUNS, 0)
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.take_snapshot()
            await park(subject, env.client, queue, runs, parked)
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
    finally:
        await env.shutdown()
    growth = after.compare_to(before, "filename")
    total = sum(stat.size_diff for stat in growth) / runs / KIB
    print(f"{subject.name}: Python heap per cached waiting run {total:.1f} KiB", file=sys.stderr)
    for stat in growth[:top]:
        where = stat.traceback[0].filename.replace(os.getcwd() + "/", "")
        print(f"  {stat.size_diff / runs / KIB:7.2f} KiB  {where}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.cache_cost", description=__doc__)
    parser.add_argument("--runs", type=int, default=50, metavar="N", help="(default 50)")
    parser.add_argument("--top", type=int, default=8, metavar="K", help="files shown (default 8)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.top < 0:
        parser.error("--runs must be >= 1 and --top >= 0")
    # The product's terminal notice prints every request; the figures go to stderr.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for subject in (BASELINE, PRODUCT):
            asyncio.run(measure(subject, args.runs, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
