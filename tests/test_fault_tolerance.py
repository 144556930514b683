"""Crashes lose nothing: real worker and server processes are killed and restarted mid-run.

The process to kill is started as a subprocess (a worker, or for the server test its own
``temporal server start-dev`` on a SQLite file) and killed with SIGKILL at the worst
moment; the tests check that the run still ends correctly, that the action ran exactly once
(counted by its idempotency key across every worker's log), and that the LLM was not asked
again for an answer that history had already recorded. A worker nobody kills may run in
this process (``build_worker``, as ``python -m worker`` builds it).

The worker killed mid-activity is ``tests.crash_worker_holding``, whose executions hold
until it is killed: one crash catches four runs at once (see ``crash``).
"""

import asyncio
import logging
import re
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import TimeoutType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import worker_setup
from activities.execute_tool import execute_tool_call
from activities.offline_analysis import propose_offline
from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer, ok
from client.start import INITIAL_SEARCH_ATTRIBUTES
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    SUBMIT_DECISION_UPDATE,
)
from dev_server import free_port
from models.models import (
    ApprovalDecision,
    AuditEvent,
    Outcome,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from models.tools import ExecuteToolInput, ToolOutcome
from tests.crash_worker_holding import HELD_BEFORE_ACTING, HELD_IN_TRANSACTION, STICKY_SECONDS_ENV
from tests.e2e import WorkerProcess, address_of, worker_process
from tests.helpers import (
    TEMPORAL_CLI,
    Run,
    run_script,
    script_env,
    start_run,
    status_of,
    stop_process,
    wait_for_output,
    wait_until,
)
from tools.database import database_path, ensure_database
from worker_setup import build_worker

RISKY_REQUEST = "Delete the stale rows from the production orders table"
SAFE_REQUEST = "Summarise last week's support tickets"
ITALIAN_DELETE_REQUEST = "Delete inactive customers in Italy"
ITALIAN_INACTIVE = "SELECT COUNT(*) FROM customers WHERE country = 'IT' AND status = 'inactive'"
ALL_CUSTOMERS = "SELECT COUNT(*) FROM customers"
ANALYSIS_ACTIVITY = "propose_action"  # the model's answer and its effect preview
EXECUTE_ACTIVITY = "send_email"  # the risky run's tool: its execute activity's name
# The runs the crash catches, by where they are when their worker dies.
WAITING, THINKING, EXECUTING, IN_TRANSACTION = "waiting", "thinking", "executing", "in-transaction"
# Longer than the crash takes: the worker is dead before the model answers.
LLM_THINKING_SECONDS = 60.0
# Long enough to be still open when the server is killed, which happens as soon as the
# run is seen waiting (milliseconds, not seconds, after its deadline was set).
SHORT_APPROVAL_TIMEOUT_SECONDS = 4
WAITING_RUNS = 5
# A run evicted while its notice (a local activity) is in flight leaves its workflow task
# to time out before another worker task rebuilds it: 10 s by default, shorter here.
EVICTED_TASK_TIMEOUT = timedelta(seconds=3)
EVICTION_LOGGER = "temporalio.worker._workflow"
NOTICE_IDS = re.compile(r"^Workflow ID: (\S+)\nRequest ID: (\S+)$", re.MULTILINE)


async def start_worker(
    stack: AsyncExitStack,
    env: dict[str, str],
    log: Path,
    *args: str,
    module: str = "worker",
) -> WorkerProcess:
    """Start a worker subprocess (stopped when ``stack`` closes) and wait until it polls."""
    return await stack.enter_async_context(worker_process(env, log, *args, module=module))


async def printed_notices(output: Callable[[], str], count: int) -> list[tuple[str, str]]:
    """(workflow ID, request ID) of each approval notice in a worker's ``output``, once
    ``count`` runs have one: the notice activity prints after the run records
    approval_requested.

    Counted by run: the opening notice is a local activity, which runs again when its run
    is evicted before the task that holds its result completes (a full cache), so a run
    may print its notice twice."""

    def runs(text: str) -> int:
        return len({workflow_id for workflow_id, _ in NOTICE_IDS.findall(text)})

    content = await wait_until(lambda: asyncio.sleep(0, output()), lambda t: runs(t) >= count)
    return NOTICE_IDS.findall(content)


async def noticed_request_id(worker: WorkerProcess, workflow_id: str) -> str:
    """The request ID in the notice the worker printed for ``workflow_id``, once printed."""

    def noticed(text: str) -> str | None:
        return dict(NOTICE_IDS.findall(text)).get(workflow_id)

    text = await wait_until(lambda: asyncio.sleep(0, worker.output()), lambda t: bool(noticed(t)))
    return str(noticed(text))


def request_text(base: str, tag: str) -> str:
    """Unique per test, so the shared LLM server counts this test's calls only."""
    return f"{base} [{tag}]"


def executions(idempotency_key: str, *workers: WorkerProcess) -> int:
    """How many times the execute activity ran for this key, across the workers' logs."""
    return sum(w.output().count(f"[idempotency key {idempotency_key}]") for w in workers)


def count(sql: str) -> int:
    with closing(sqlite3.connect(database_path())) as db:
        return db.execute(sql).fetchone()[0]


def events_named(audit: list[AuditEvent], name: str) -> list[AuditEvent]:
    return [event for event in audit if event.event == name]


async def start_risky_run(
    client: Client,
    workflow_id: str,
    task_queue: str,
    text: str,
    approval_timeout_seconds: int = 300,
    **options: Any,
) -> Run:
    """Started as ``start_workflow`` starts it, search attribute included; ``options`` are
    the client's start options."""
    run_input = WorkflowInput(user_request=text, approval_timeout_seconds=approval_timeout_seconds)
    return await start_run(
        client,
        task_queue,
        workflow_id,
        run_input,
        search_attributes=INITIAL_SEARCH_ATTRIBUTES,
        **options,
    )


async def wait_until_waiting(handle: WorkflowHandle, timeout: float = 30) -> WorkflowStatus:
    """Until the run has opened its approval request (its notices may still be on the way)."""

    def waiting(status: WorkflowStatus) -> bool:
        notified = events_named(status.audit_trail, "approval_requested")
        return status.state == WorkflowState.AWAITING_APPROVAL and bool(notified)

    return await wait_until(lambda: status_of(handle), waiting, timeout)


def approval(status: WorkflowStatus, reviewer: str) -> ApprovalDecision:
    assert status.approval_request is not None
    return ApprovalDecision(
        request_id=status.approval_request.request_id, approved=True, reviewer=reviewer
    )


@dataclass
class Killed:
    """A run the crash caught: its handle, its request text, and how it ended."""

    handle: Run
    text: str
    result: WorkflowResult


@dataclass
class Crash:
    """One worker killed with four runs at their worst moments, each finished by the worker
    started after it. What they wait on (the dead worker's sticky queue, three heartbeat
    timeouts) runs side by side: a scenario costs its assertions, not its own 10 s."""

    first: WorkerProcess
    second: WorkerProcess
    runs: dict[str, Killed]
    noticed_request_id: str  # the waiting run's, as the dead worker's notice printed it
    sent: subprocess.CompletedProcess[str]  # the approver's send_approval, meanwhile
    italian_inactive_before: int
    customers_before: int
    italian_inactive_after_kill: int
    recovery_seconds: float

    def measured(self) -> str:
        return f"kill -> four runs completed: {self.recovery_seconds:.1f}s"


@pytest.fixture(scope="module")
async def crash(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Crash:
    """The first worker is ``tests.crash_worker_holding``, whose executions hold until it is
    killed; the crash comes once every run is where its scenario needs it."""
    ensure_database(database_path())
    italian_inactive, customers = count(ITALIAN_INACTIVE), count(ALL_CUSTOMERS)
    tag, logs = uuid.uuid4().hex[:12], tmp_path_factory.mktemp("crash")
    env = script_env(address_of(dev_server), llm_server.url, f"crash-{tag}")
    texts = {
        WAITING: request_text(RISKY_REQUEST, f"{WAITING}-{tag}"),
        IN_TRANSACTION: request_text(ITALIAN_DELETE_REQUEST, f"{IN_TRANSACTION}-{tag}"),
        THINKING: request_text(SAFE_REQUEST, f"{THINKING}-{tag}"),
        EXECUTING: request_text(RISKY_REQUEST, f"{EXECUTING}-{tag}"),
    }
    proposal = propose_offline(texts[THINKING]).model_dump()
    llm_server.on(texts[THINKING], ok(proposal, delay_seconds=LLM_THINKING_SECONDS))
    async with AsyncExitStack() as stack:
        first = await start_worker(
            stack, env, logs / "worker-1.log", module="tests.crash_worker_holding"
        )
        handles = {
            name: await start_risky_run(
                dev_server.client, f"crash-{name}-{tag}", first.task_queue, text
            )
            for name, text in texts.items()
        }
        await wait_until_waiting(handles[WAITING])
        # The approver will only have the notice this (soon dead) worker printed.
        request_id = await noticed_request_id(first, handles[WAITING].id)
        await approve_and_hold(handles[IN_TRANSACTION], first, HELD_IN_TRANSACTION)
        await wait_until(lambda: asyncio.sleep(0, llm_server.calls(texts[THINKING])), bool)
        # Last: it sends no heartbeat, so its heartbeat timeout runs from its start.
        await approve_and_hold(handles[EXECUTING], first, HELD_BEFORE_ACTING)
        first.crash()
        crashed_at = time.monotonic()
        italian_inactive_after_kill = count(ITALIAN_INACTIVE)
        # The approver does not wait for the new worker: the decision is sent meanwhile.
        sent, second = await asyncio.gather(
            asyncio.to_thread(
                run_script,
                "send_approval",
                handles[WAITING].id,
                request_id,
                "approve",
                "still fine after the crash",
                "--reviewer",
                "alice",
                env=env,
            ),
            start_worker(stack, env, logs / "worker-2.log"),
        )
        results = await asyncio.gather(*(handle.result() for handle in handles.values()))
        recovery_seconds = time.monotonic() - crashed_at
    return Crash(
        first=first,
        second=second,
        runs={
            name: Killed(handles[name], texts[name], result)
            for name, result in zip(handles, results, strict=True)
        },
        noticed_request_id=request_id,
        sent=sent,
        italian_inactive_before=italian_inactive,
        customers_before=customers,
        italian_inactive_after_kill=italian_inactive_after_kill,
        recovery_seconds=recovery_seconds,
    )


async def approve_and_hold(handle: Run, first: WorkerProcess, held: str) -> None:
    """Approve the waiting run, and wait until its execution holds in the first worker."""
    status = await wait_until_waiting(handle)
    assert status.approval_request is not None and status.approval_request.preview
    await handle.execute_update(SUBMIT_DECISION_UPDATE, approval(status, "frank"))
    await wait_for_output(first.log, held)


async def test_worker_killed_while_awaiting_approval_loses_nothing(
    crash: Crash, llm_server: FakeOpenAIServer, record_property: Callable[[str, object], None]
) -> None:
    """The wait lives in history, not in the worker: a new worker takes the decision and
    finishes the run without asking the LLM again or executing twice."""
    record_property("measured", crash.measured())
    run = crash.runs[WAITING]
    key = f"{run.handle.id}/{crash.noticed_request_id}"
    assert crash.sent.returncode == 0, crash.sent.stderr
    assert run.result.outcome == Outcome.APPROVED
    assert run.result.decision is not None and run.result.decision.reviewer == "alice"
    assert run.result.execution is not None and run.result.execution.idempotency_key == key
    assert executions(key, crash.first, crash.second) == executions(key, crash.second) == 1
    assert llm_server.calls(run.text) == 1
    assert len(events_named(run.result.audit_trail, "action_proposed")) == 1


async def test_worker_killed_while_llm_thinks_retries_the_analysis_once(
    crash: Crash, llm_server: FakeOpenAIServer
) -> None:
    """An LLM call lost with its worker is retried on another worker, and only the retry's
    answer is recorded.

    The activity heartbeats while the model thinks, so the server notices the dead worker
    at the 10 s heartbeat timeout instead of waiting out the 90 s start-to-close timeout.
    """
    run = crash.runs[THINKING]
    assert run.result.outcome == Outcome.AUTO_APPROVED
    assert len(events_named(run.result.audit_trail, "action_proposed")) == 1
    assert llm_server.calls(run.text) == 2
    assert await activity_attempts(run.handle, ANALYSIS_ACTIVITY) == [2]
    assert await retry_cause(run.handle) == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    assert run.result.execution is not None
    key = run.result.execution.idempotency_key
    assert key == f"{run.handle.id}/auto/{run.handle.first_execution_run_id}"
    assert executions(key, crash.first, crash.second) == 1


async def test_worker_killed_while_executing_leaves_the_action_to_a_new_worker(
    crash: Crash, llm_server: FakeOpenAIServer
) -> None:
    """The worker dies inside the execute activity, before acting; a new worker executes
    the action, once.

    The held attempt sends no heartbeat, as a dead worker would not: the server gives it up
    at the 10 s heartbeat timeout, not the 120 s start-to-close timeout.
    """
    run = crash.runs[EXECUTING]
    key = f"{run.handle.id}/{run.result.request_id}"
    assert run.result.outcome == Outcome.APPROVED
    assert run.result.execution is not None and run.result.execution.idempotency_key == key
    assert executions(key, crash.first) == 0, "the held attempt must not have acted"
    assert executions(key, crash.second) == 1
    assert await activity_attempts(run.handle, EXECUTE_ACTIVITY) == [2]
    assert await retry_cause(run.handle) == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
    assert llm_server.calls(run.text) == 1


async def test_worker_killed_inside_the_tool_transaction_acts_once_on_a_new_worker(
    crash: Crash,
) -> None:
    """The worker dies with the tool's effect applied inside its transaction and the key not
    yet recorded: SQLite rolls it back, the server notices the dead worker at the heartbeat
    timeout, and a new worker acts, once."""
    run = crash.runs[IN_TRANSACTION]
    matching = crash.italian_inactive_before
    assert crash.italian_inactive_after_kill == matching, "an uncommitted effect must not show"
    assert run.result.outcome == Outcome.APPROVED, run.result.message
    assert run.result.execution is not None
    assert run.result.execution.summary.startswith(f"deleted {matching} rows from customers")
    assert count(ITALIAN_INACTIVE) == 0
    assert count(ALL_CUSTOMERS) == crash.customers_before - matching
    with closing(sqlite3.connect(database_path())) as db:
        keys = db.execute(
            "SELECT COUNT(*) FROM tool_executions WHERE idempotency_key = ?",
            (run.result.execution.idempotency_key,),
        ).fetchone()[0]
    assert keys == 1


async def retry_cause(handle: WorkflowHandle) -> int:
    """Why the one retried activity attempt had to be retried: its last failure's timeout type."""
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_started_event_attributes"):
            failure = event.activity_task_started_event_attributes.last_failure
            if failure.HasField("timeout_failure_info"):
                return failure.timeout_failure_info.timeout_type
    raise AssertionError("no started activity recorded a timeout as its last failure")


async def activity_attempts(handle: WorkflowHandle, activity_type: str) -> list[int]:
    """The attempt number of each ``activity_type`` activity that history records as started."""
    scheduled_ids: set[int] = set()
    attempts: list[int] = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == activity_type:
                scheduled_ids.add(event.event_id)
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled_ids:
                attempts.append(started.attempt)
    return attempts


@contextmanager
def temporal_server(db_file: Path, ports: dict[str, int], log: IO[str]) -> Iterator[Any]:
    """``temporal server start-dev`` persisting to ``db_file``; SIGTERM (then KILL) on exit."""
    process = subprocess.Popen(
        [
            str(TEMPORAL_CLI),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            *(arg for name, port in ports.items() for arg in (f"--{name}", str(port))),
            "--db-filename",
            str(db_file),
            "--search-attribute",
            f"{APPROVAL_STATUS_SEARCH_ATTRIBUTE}=Keyword",
            "--log-level",
            "error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        stop_process(process, grace_seconds=30)


async def connect_when_up(address: str, timeout: float = 30) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await Client.connect(address, data_converter=pydantic_data_converter)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


@pytest.mark.usefixtures("processes")
async def test_server_restart_keeps_waiting_runs_and_their_timers(
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    """Runs and durable timers live in the server's database: a server restart on the same
    file loses neither, the worker reconnects by itself, and a deadline that passed while
    the server was down fires once it is back."""
    ports = {name: free_port() for name in ("port", "ui-port", "http-port", "metrics-port")}
    address = f"127.0.0.1:{ports['port']}"
    db_file = tmp_path / "temporal.db"
    env = script_env(address, llm_server.url, task_queue)
    approved_text = request_text(RISKY_REQUEST, workflow_id)
    expiring_text = request_text(RISKY_REQUEST, f"{workflow_id} expiring")
    # Two stacks, so that the worker stops before the server it talks to.
    async with AsyncExitStack() as servers, AsyncExitStack() as workers:
        server_log = servers.enter_context((tmp_path / "server.log").open("w"))
        server = servers.enter_context(temporal_server(db_file, ports, server_log))
        client = await connect_when_up(address)
        worker = await start_worker(workers, env, tmp_path / "worker.log")
        approved = await start_risky_run(
            client, f"{workflow_id}-approve", task_queue, approved_text
        )
        await wait_until_waiting(approved)
        # The short deadline starts ticking last, once everything else is in place.
        expiring = await start_risky_run(
            client,
            f"{workflow_id}-expire",
            task_queue,
            expiring_text,
            approval_timeout_seconds=SHORT_APPROVAL_TIMEOUT_SECONDS,
        )
        expiring_status = await wait_until_waiting(expiring)
        expiring_request = expiring_status.approval_request
        assert expiring_request is not None
        deadline = expiring_request.deadline

        # Killed, not stopped: it is down the moment both runs are seen waiting, with no
        # graceful shutdown of unknown length racing the deadline (SQLite keeps what it
        # committed), so the deadline passes while it is down on any machine.
        server.kill()
        server.wait(timeout=30)
        assert datetime.now(UTC) < deadline, "the deadline passed before the server stopped"
        # Wait, with the server down, until the deadline has passed (the clock is the only
        # thing that moves: there is no event to wait for).
        await wait_until(lambda: asyncio.sleep(0.1, datetime.now(UTC)), lambda now: now > deadline)

        servers.enter_context(temporal_server(db_file, ports, server_log))
        restarted_at = time.monotonic()
        client = await connect_when_up(address)
        # A query is answered by a worker: the same worker process answers it again.
        status = await wait_until_waiting(client.get_workflow_handle(approved.id))
        await client.get_workflow_handle(approved.id).execute_update(
            SUBMIT_DECISION_UPDATE, approval(status, "carol")
        )
        approved_result = await client.get_workflow_handle(
            approved.id, result_type=WorkflowResult
        ).result()
        expired_result = await client.get_workflow_handle(
            expiring.id, result_type=WorkflowResult
        ).result()
        record_property(
            "measured", f"restart -> both runs done: {time.monotonic() - restarted_at:.1f}s"
        )
        assert worker.process.poll() is None, "the worker died with the server"

    assert approved_result.outcome == Outcome.APPROVED
    key = f"{approved.id}/{approved_result.request_id}"
    assert executions(key, worker) == 1
    assert expired_result.outcome == Outcome.TIMED_OUT
    assert expired_result.decision is None and expired_result.execution is None
    [timed_out] = events_named(expired_result.audit_trail, "timed_out")
    assert timed_out.at >= deadline
    assert executions(f"{expiring.id}/{expired_result.request_id}", worker) == 0
    # The restart replayed the runs from history: the analysis recorded there was not redone.
    assert llm_server.calls(approved_text) == llm_server.calls(expiring_text) == 1


async def test_surviving_worker_finishes_a_run_whose_worker_was_killed(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    analysis_activities: AnalysisActivities,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    record_property: Callable[[str, object], None],
) -> None:
    """With two workers on the queue, killing the one that holds the run in memory costs
    only time: the other rebuilds it from history and executes it once.

    The holder, a worker process, serves the run alone until it waits; the survivor, a
    worker in this process, starts then, so it never had the run in memory. The holder lets
    go of its sticky queue 2 s after it dies, not 10 s (see ``tests.crash_worker_holding``).
    """
    caplog.set_level(logging.INFO, logger=activity.logger.logger.name)
    env = script_env(address_of(dev_server), llm_server.url, task_queue)
    env[STICKY_SECONDS_ENV] = "2"
    text = request_text(RISKY_REQUEST, workflow_id)
    async with AsyncExitStack() as stack:
        holder = await start_worker(
            stack, env, tmp_path / "holder.log", module="tests.crash_worker_holding"
        )
        handle = await start_risky_run(dev_server.client, workflow_id, task_queue, text)
        status = await wait_until_waiting(handle)
        await stack.enter_async_context(
            build_worker(dev_server.client, task_queue, analysis_activities)
        )
        holder.crash()
        crashed_at = time.monotonic()
        await handle.signal(APPROVAL_DECISION_SIGNAL, approval(status, "bob"))
        result = await handle.result()
        record_property(
            "measured", f"kill -> completed by survivor: {time.monotonic() - crashed_at:.1f}s"
        )

    key = f"{workflow_id}/{result.request_id}"
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "bob"
    assert executions(key, holder) == 0
    assert caplog.text.count(f"[idempotency key {key}]") == 1, "the survivor acts once"
    assert llm_server.calls(text) == 1


# The SDK warns when it cancels a run's notice (a local activity) that its eviction
# already ended; in a worker process the same warning goes to the log.
@pytest.mark.filterwarnings("ignore:Cannot find activity to cancel:UserWarning")
async def test_many_waiting_runs_need_not_stay_in_memory(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    analysis_activities: AnalysisActivities,
    task_queue: str,
    workflow_id: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With room for one run in memory, five waiting runs are evicted and rebuilt from
    history when their decision comes, and each still ends with its own decision.

    The worker runs in this process, as ``python -m worker --max-cached-workflows 1`` would
    run it: nothing here is about the process, and its output is read just the same."""
    caplog.set_level(logging.INFO, logger=activity.logger.logger.name)
    caplog.set_level(logging.DEBUG, logger=EVICTION_LOGGER)  # the SDK logs evictions there
    printed: list[str] = []

    def output() -> str:
        """What the worker printed (its notices) and logged (evictions, executions)."""
        printed.append(capsys.readouterr().out)
        return "".join(printed) + caplog.text

    texts = [request_text(RISKY_REQUEST, f"{workflow_id}-{i}") for i in range(WAITING_RUNS)]
    client = dev_server.client
    async with build_worker(client, task_queue, analysis_activities, max_cached_workflows=1):
        handles = [
            await start_risky_run(
                client,
                f"{workflow_id}-{i}",
                task_queue,
                text,
                task_timeout=EVICTED_TASK_TIMEOUT,
            )
            for i, text in enumerate(texts)
        ]
        # Read the printed notices, not the status query: a query would bring an evicted
        # run back.
        requests = dict(await printed_notices(output, count=WAITING_RUNS))
        evicted = {
            handle.id
            for handle in handles
            if f"Evicting workflow with run ID {handle.first_execution_run_id}, "
            "message: Workflow cache full" in output()
        }
        assert len(evicted) >= WAITING_RUNS - 1, f"only {sorted(evicted)} left memory"
        await asyncio.gather(
            *(
                handle.execute_update(
                    SUBMIT_DECISION_UPDATE,
                    ApprovalDecision(
                        request_id=requests[handle.id], approved=True, reviewer=f"dave-{i}"
                    ),
                )
                for i, handle in enumerate(handles)
            )
        )
        results = await asyncio.gather(*(handle.result() for handle in handles))

    for i, (handle, result) in enumerate(zip(handles, results, strict=True)):
        assert result.outcome == Outcome.APPROVED
        assert result.request_id == requests[handle.id]
        assert result.decision is not None and result.decision.reviewer == f"dave-{i}"
        assert output().count(f"[idempotency key {handle.id}/{result.request_id}]") == 1
        assert llm_server.calls(texts[i]) == 1


async def test_execute_retry_reuses_the_idempotency_key(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    task_queue: str,
    workflow_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The downstream system can refuse a repeat only if every attempt carries the same
    key, ``<workflow id>/<request id>``: here the first attempt acts, then loses its reply."""
    seen: list[tuple[int, str]] = []

    @activity.defn(name=EXECUTE_ACTIVITY)
    async def execute_then_lose_first_reply(request: ExecuteToolInput) -> ToolOutcome:
        seen.append((activity.info().attempt, request.idempotency_key))
        outcome = await execute_tool_call(request)
        if activity.info().attempt == 1:
            raise RuntimeError("connection reset after the action was carried out")
        return outcome

    monkeypatch.setattr(worker_setup, "execute_tool", execute_then_lose_first_reply)
    client = dev_server.client
    async with build_worker(client, task_queue, analysis_activities):
        handle = await start_risky_run(
            client, workflow_id, task_queue, request_text(RISKY_REQUEST, workflow_id)
        )
        status = await wait_until_waiting(handle)
        await handle.execute_update(SUBMIT_DECISION_UPDATE, approval(status, "erin"))
        result = await handle.result()

    assert status.approval_request is not None
    key = f"{workflow_id}/{status.approval_request.request_id}"
    assert seen == [(1, key), (2, key)]
    assert result.outcome == Outcome.APPROVED
    assert result.execution is not None and result.execution.idempotency_key == key
