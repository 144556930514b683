"""Runs the human-in-the-loop workflow and its activities until Ctrl-C or SIGTERM.

uv run python -m worker [--offline] [--max-cached-workflows N] [--max-concurrent-activities N]
"""

import argparse
import asyncio
import logging
import signal
import sys

from activities.llm_settings import LLMSettingsError, analysis_activities, usable_settings
from activities.offline_analysis import OFFLINE_LABEL
from activities.propose_action import AnalysisActivities
from activities.send_webhook_notice import WebhookNotifier, WebhookSettingsError
from client.connection import TemporalUnavailableError, connect
from console_exit import INTERRUPTED_EXIT_CODE, interrupted, run_script
from console_logging import configure_logging
from constants import task_queue
from worker_setup import (
    WorkerStartError,
    build_worker,
    check_namespace,
    metrics_runtime,
    parse_capacity,
    serve_until_stopped,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="worker", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--offline",
        action="store_true",
        help=f"no model: proposals come from the {OFFLINE_LABEL}",
    )
    return parse_capacity(parser, argv)


async def run_worker(
    args: argparse.Namespace, analysis: AnalysisActivities, notifier: WebhookNotifier
) -> signal.Signals:
    """Serve the task queue until a stop signal (returned); in-flight tasks are drained."""
    client = await connect(metrics_runtime())
    await check_namespace(client)
    worker = build_worker(
        client,
        task_queue(),
        analysis,
        max_cached_workflows=args.max_cached_workflows,
        max_concurrent_activities=args.max_concurrent_activities,
        notifier=notifier,
    )
    return await serve_until_stopped(worker)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return serve(args)
    except KeyboardInterrupt:  # before the worker served: its own handler stops it after
        return interrupted("the worker stopped before serving; nothing ran.")


def serve(args: argparse.Namespace) -> int:
    configure_logging()
    # One line per model call is noise; the webhook's URL never reaches this logger anyway
    # (activities/send_webhook_notice.py drops those records at the source).
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    try:
        notifier = WebhookNotifier.from_env()
        settings = usable_settings(offline=args.offline)
    except (WebhookSettingsError, LLMSettingsError) as err:
        print(err, file=sys.stderr)
        return 1
    if args.offline:
        logging.warning("OFFLINE MODE: proposals come from the %s.", OFFLINE_LABEL)
    else:
        logging.info("Model: %s", settings.describe())
    try:
        analysis = analysis_activities(settings, offline=args.offline)
        stopped_by = asyncio.run(run_worker(args, analysis, notifier))
    except (TemporalUnavailableError, WorkerStartError) as err:
        print(err, file=sys.stderr)
        return 1
    return INTERRUPTED_EXIT_CODE if stopped_by == signal.SIGINT else 0


if __name__ == "__main__":
    run_script(main)
