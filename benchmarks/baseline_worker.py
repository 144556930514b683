"""Runs the baseline workflow with the product's activities, options and connection.

uv run python -m benchmarks.baseline_worker [--max-cached-workflows N]
    [--max-concurrent-activities N]

A process of its own, like ``python -m worker``, so both are measured the same way.
"""

import argparse
import asyncio
import logging

from temporalio.worker import Worker

from activities.llm_settings import LLMSettings, analysis_activities
from benchmarks.baseline_execute_action import execute_action
from benchmarks.baseline_workflow import BaselineApprovalWorkflow
from client.connection import connect
from console_exit import exit_process
from console_logging import configure_logging
from constants import task_queue
from worker_setup import parse_capacity, serve_until_stopped


async def run_worker(max_cached_workflows: int, max_concurrent_activities: int) -> None:
    # Built as the product's worker builds it: same client settings, same activity class.
    analysis = analysis_activities(LLMSettings.from_env())
    worker = Worker(
        await connect(),
        task_queue=task_queue(),
        workflows=[BaselineApprovalWorkflow],
        activities=[analysis.analyze_request, execute_action],
        max_cached_workflows=max_cached_workflows,
        max_concurrent_activities=max_concurrent_activities,
    )
    await serve_until_stopped(worker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks.baseline_worker", description=__doc__.splitlines()[0]
    )
    args = parse_capacity(parser, argv)
    configure_logging()
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    asyncio.run(run_worker(args.max_cached_workflows, args.max_concurrent_activities))
    return 0


if __name__ == "__main__":
    exit_process(main())
