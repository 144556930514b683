"""The worker's wiring and its checks, shared by ``python -m worker``, the demo, the
benchmarks and the tests, so they all run exactly what users run.
"""

import argparse
import asyncio
import logging
import os
import signal

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.execute_tool import execute_tool
from activities.model_metrics import MODEL_CALL_LATENCY
from activities.notify_approval_needed import notify_approval_needed
from activities.preview_tool_call import preview_tool_call
from activities.propose_action import AnalysisActivities
from activities.send_approval_notices import ApprovalNotices
from activities.send_email_notice import EmailNotifier, SmtpSettingsError
from activities.send_webhook_notice import WebhookNotifier
from activities.slack_notifier import SlackNotifier
from client.connection import worker_client
from constants import METRICS_ADDRESS_ENV
from slack_approvals.settings import SlackSettingsError
from workflows.approval_workflow import ApprovalWorkflow
from workflows.human_in_the_loop_workflow import HumanInTheLoopWorkflow
from workflows.metrics import TIME_TO_DECISION

# The SDK's defaults, restated so the options below document them.
DEFAULT_MAX_CACHED_WORKFLOWS = 1000
DEFAULT_MAX_CONCURRENT_ACTIVITIES = 100
NAMESPACE_ENV = "TEMPORAL_NAMESPACE"  # read by temporalio.envconfig
# Histogram buckets (milliseconds) for the sample's own durations: the SDK's defaults stop
# at seconds, but a person decides in minutes or days, and a model answers in up to a minute.
SECOND_MS, MINUTE_MS, HOUR_MS = 1000, 60_000, 3_600_000
HISTOGRAM_BUCKETS_MS = {
    TIME_TO_DECISION: [
        *(n * SECOND_MS for n in (10, 30)),
        *(n * MINUTE_MS for n in (1, 5, 15, 30)),
        *(n * HOUR_MS for n in (1, 4, 8, 24, 72, 168)),
    ],
    MODEL_CALL_LATENCY: [250, 500, *(n * SECOND_MS for n in (1, 2, 5, 10, 20, 30, 60, 120))],
}


def parse_capacity(
    parser: argparse.ArgumentParser, argv: list[str] | None = None
) -> argparse.Namespace:
    """Parse ``argv`` with ``parser`` plus the worker's capacity options, shared by every
    worker process (``python -m worker``, the benchmarks' baseline worker)."""
    parser.add_argument(
        "--max-cached-workflows",
        type=int,
        default=DEFAULT_MAX_CACHED_WORKFLOWS,
        metavar="N",
        help="runs kept in memory between events (default %(default)s; 0 disables the cache)",
    )
    parser.add_argument(
        "--max-concurrent-activities",
        type=int,
        default=DEFAULT_MAX_CONCURRENT_ACTIVITIES,
        metavar="N",
        help="LLM calls, notices and executions in flight at once (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.max_cached_workflows < 0 or args.max_concurrent_activities < 1:
        parser.error("cache size must be >= 0 and concurrency >= 1")
    return args


class WorkerStartError(Exception):
    """The worker cannot serve with these settings; the message names the one to fix."""


def build_worker(
    client: Client,
    queue: str,
    analysis: AnalysisActivities,
    *,
    max_cached_workflows: int = DEFAULT_MAX_CACHED_WORKFLOWS,
    max_concurrent_activities: int = DEFAULT_MAX_CONCURRENT_ACTIVITIES,
    notifier: WebhookNotifier | None = None,
    slack: SlackNotifier | None = None,
) -> Worker:
    """The worker's wiring, shared with the tests so they run exactly what users run.

    A waiting run costs the worker memory only while it is cached; evicted runs are rebuilt
    from history when their next event (a decision, the deadline) arrives. The worker
    decodes through ``worker_client``: a payload it cannot decode is refused by the run,
    not a failed workflow task.
    """
    notifier = notifier or WebhookNotifier.from_env()
    try:  # registered for workflows/notifications.py to call (see the README, e-mail)
        emailer = EmailNotifier.from_env()
        slack = slack or SlackNotifier.from_env()
    except (SmtpSettingsError, SlackSettingsError) as err:
        raise WorkerStartError(str(err)) from None
    return Worker(
        worker_client(client),
        task_queue=queue,
        workflows=[HumanInTheLoopWorkflow, ApprovalWorkflow],
        activities=[
            analysis.propose_action,
            ApprovalNotices(notifier, emailer, slack).send_approval_notices,
            notify_approval_needed,
            notifier.send_webhook_notice,
            emailer.send_email_notice,
            slack.send_slack_notice,
            slack.update_slack_messages,
            preview_tool_call,
            execute_tool,
        ],
        max_cached_workflows=max_cached_workflows,
        max_concurrent_activities=max_concurrent_activities,
    )


def namespace_problem(client: Client, err: BaseException) -> str:
    """One line naming TEMPORAL_NAMESPACE, for a namespace the worker cannot use."""
    namespace, address = client.namespace, client.service_client.config.target_host
    if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
        return (
            f"Namespace {namespace!r} does not exist on Temporal at {address}; "
            f"set {NAMESPACE_ENV} to an existing namespace (the dev server has 'default')."
        )
    reason = err.message if isinstance(err, RPCError) else str(err).splitlines()[0]
    return f"Cannot serve namespace {namespace!r} at {address} (check {NAMESPACE_ENV}): {reason}"


async def check_namespace(client: Client) -> None:
    """Fail with WorkerStartError before a worker is built on a namespace it cannot use.

    The worker would find out too, but only once started, as a RuntimeError with a gRPC dump.
    """
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace)
        )
    except RPCError as err:
        raise WorkerStartError(namespace_problem(client, err)) from err


def metrics_runtime() -> Runtime | None:
    """A runtime serving Prometheus metrics at ``HITL_METRICS_ADDRESS``, if it is set.

    The SDK's own metrics (task latencies, slots, polls...) and the sample's (``hitl_*``)
    come out of the same endpoint: http://<address>/metrics.
    """
    address = os.environ.get(METRICS_ADDRESS_ENV, "").strip()
    if not address:
        return None
    prometheus = PrometheusConfig(
        bind_address=address, histogram_bucket_overrides=HISTOGRAM_BUCKETS_MS
    )
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=prometheus))
    except ValueError as err:  # a malformed address, or a port in use
        raise WorkerStartError(
            f"Cannot serve metrics at {METRICS_ADDRESS_ENV}={address} "
            f"(an ip:port such as 127.0.0.1:9464): {err}."
        ) from None
    logging.info("Metrics: http://%s/metrics", address)
    return runtime


async def serve_until_stopped(worker: Worker) -> signal.Signals:
    """Serve until SIGINT or SIGTERM, and return which; leaving ``async with`` drains
    in-flight tasks."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(
            stop_signal, lambda s=stop_signal: received.done() or received.set_result(s)
        )
    try:
        async with worker:
            logging.info("Worker started on task queue %r; Ctrl-C to stop.", worker.task_queue)
            await received
    except RuntimeError as err:  # the SDK's own start-up check, e.g. of the namespace
        if not str(err).startswith("Worker validation failed"):
            raise
        raise WorkerStartError(namespace_problem(worker.client, err)) from err
    logging.info("Worker stopped; waiting runs stay in Temporal until a worker serves them.")
    return received.result()
