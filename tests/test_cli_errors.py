"""User mistakes at the command line: each gets one clear line, the right exit code, no traceback.

Exit 2 is a usage error (argparse: nothing was sent anywhere); exit 1 means Temporal or the
workflow said no, or could not be reached. A person reading the terminal, or a shell script
checking ``$?``, must be able to tell what went wrong without reading a stack trace.
The scripts run as real processes against the session's dev server and one shared worker
(the ``worker`` fixture).
"""

import asyncio
import re
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from constants import OPENAI_API_KEY_ENV, OPENAI_BASE_URL_ENV
from dev_server import free_port
from models.models import WorkflowState
from tests.e2e import (
    Ran,
    WorkerProcess,
    address_of,
    approval_notice,
    script,
    send_approval,
    started_run,
    unique,
)
from tests.fake_openai import FakeOpenAIServer
from tests.helpers import script_env, status_of


def unreachable_env() -> dict[str, str]:
    """Scripts pointed at closed ports, for mistakes that must be caught before connecting."""
    port = free_port()
    return script_env(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}/v1", "unused-queue")


def assert_one_line_error(ran: Ran, exit_code: int, expected: str) -> None:
    """Exactly one line on stderr, saying ``expected`` (a regex); nothing looks like a crash."""
    assert "Traceback" not in ran.output, ran.output
    assert ran.returncode == exit_code, f"{ran.command}: {ran.output!r}"
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, f"{ran.command}: {ran.stderr!r}"
    assert re.search(expected, lines[0]), f"{ran.command}: {ran.stderr!r}"


def assert_worker_refused_to_start(ran: Ran, expected: str) -> None:
    """The worker's error is one line of its own (log lines or a list of fixes may surround it)."""
    assert "Traceback" not in ran.output, ran.output
    assert ran.returncode == 1, ran.output
    assert re.search(expected, ran.stderr, re.MULTILINE), ran.stderr
    assert "Worker started" not in ran.output


def assert_usage_error(ran: Ran, prog: str, expected: str) -> None:
    """argparse's way: the usage, then one ``prog: error: ...`` line, exit 2."""
    assert "Traceback" not in ran.output, ran.output
    lines = ran.stderr.strip().splitlines()
    assert lines and lines[0].startswith(f"usage: {prog}"), f"{ran.stderr!r}"
    assert re.search(rf"^{prog}: error: .*{expected}", lines[-1]), f"{ran.stderr!r}"
    assert ran.returncode == 2, ran.output
    assert ran.stdout == ""


async def test_send_approval_to_an_unknown_workflow_fails(worker: WorkerProcess) -> None:
    """Both forms (with and without a request ID) name the workflow that is not running."""
    with_id, without_id = await asyncio.gather(
        script("send_approval", "no-such-workflow", "some-request", "approve", env=worker.env),
        script("send_approval", "no-such-workflow", "approve", env=worker.env),
    )
    for ran in (with_id, without_id):
        assert_one_line_error(ran, 1, r"^Workflow no-such-workflow is not running")


async def test_send_approval_with_a_wrong_request_id_is_refused(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """A stale or mistyped request ID is refused and leaves the run waiting."""
    async with started_run(worker, dev_server, tmp_path, unique("Delete the cache")) as run:
        notice = await approval_notice(worker, run)
        sent = await send_approval(worker, run, "req-typo", "approve")
        status = await status_of(dev_server.client.get_workflow_handle(run.workflow_id))

    assert_one_line_error(
        sent, 1, rf"^Refused: request ID 'req-typo' does not match .*'{notice.request_id}'"
    )
    assert status.state == WorkflowState.AWAITING_APPROVAL
    assert status.decision is None


async def test_a_second_decision_after_one_was_applied_is_refused(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """A decision is applied once; a late change of mind does not alter the outcome.

    The run finishes right after the first decision, so the second one meets either the
    workflow's own refusal or a finished workflow: both must say so and exit 1.
    """
    async with started_run(worker, dev_server, tmp_path, unique("Drop the sessions table")) as run:
        notice = await approval_notice(worker, run)
        first = await send_approval(worker, run, notice.request_id, "approve")
        second = await send_approval(worker, run, notice.request_id, "reject")
        done = await run.finish()

    assert first.returncode == 0, first.output
    assert_one_line_error(second, 1, r"already decided|is not running|not waiting")
    assert "Result: approved" in done.output


async def test_a_decision_for_a_finished_workflow_fails(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Deciding a run that already ended says it is over, in both forms."""
    async with started_run(worker, dev_server, tmp_path, unique("Summarise the backlog")) as run:
        done = await run.finish()
    assert "Result: auto_approved" in done.output

    with_id, without_id = await asyncio.gather(
        send_approval(worker, run, "some-request", "approve"),
        send_approval(worker, run, "approve"),
    )
    assert_one_line_error(with_id, 1, rf"^Workflow {run.workflow_id} is not running")
    assert_one_line_error(without_id, 1, rf"^Workflow {run.workflow_id} is not waiting .*completed")


async def test_a_reviewer_not_on_the_approver_list_is_refused(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """``--approver`` limits who may decide; anyone else is refused and the run still waits."""
    request = unique("Delete the shared drive")
    options = ("--approver", "alice", "--approver", "bob")
    async with started_run(worker, dev_server, tmp_path, request, *options) as run:
        notice = await approval_notice(worker, run)
        sent = await send_approval(
            worker, run, notice.request_id, "approve", "--reviewer", "mallory"
        )
        status = await status_of(dev_server.client.get_workflow_handle(run.workflow_id))

    assert_one_line_error(sent, 1, r"^Refused: 'mallory' is not an approver")
    assert status.state == WorkflowState.AWAITING_APPROVAL


USAGE_ERRORS = [
    ("send_approval", ("wf-1", "maybe"), "expected approve or reject"),
    ("send_approval", ("wf-1", "req-1", "approve", "notes", "extra"), "expected approve or reject"),
    ("send_approval", ("wf-1",), "the following arguments are required: decision"),
    ("approval_status", (), "one of the arguments workflow_id --pending is required"),
]


async def test_bad_verdicts_and_missing_arguments_exit_2_with_the_usage_line() -> None:
    """Malformed commands are caught before anything is sent.

    The server here is unreachable, so a command that got past argparse would exit 1.
    """
    env = unreachable_env()
    results = await asyncio.gather(
        *(script(module, *args, env=env) for module, args, _ in USAGE_ERRORS)
    )
    for ran, (module, _, expected) in zip(results, USAGE_ERRORS, strict=True):
        assert_usage_error(ran, module, expected)


async def test_start_workflow_rejects_an_empty_request_and_a_zero_timeout() -> None:
    """Nonsense input is a usage error, caught before connecting to Temporal."""
    env = unreachable_env()
    empty, zero = await asyncio.gather(
        script("start_workflow", "  ", env=env),
        script("start_workflow", "Summarise the report", "--approval-timeout", "0", env=env),
    )
    assert_usage_error(empty, "start_workflow", "the request must not be empty")
    assert_usage_error(zero, "start_workflow", "--approval-timeout: must be a positive number")


async def test_every_script_reports_an_unreachable_temporal_server(
    llm_server: FakeOpenAIServer,
) -> None:
    """A wrong TEMPORAL_ADDRESS is named in one line, not a gRPC stack trace."""
    env = script_env(f"127.0.0.1:{free_port()}", llm_server.url, "unused-queue")
    expected = rf"^Cannot reach Temporal at {re.escape(env['TEMPORAL_ADDRESS'])}\."
    commands = [
        ("worker",),
        ("start_workflow", "Summarise the report"),
        ("send_approval", "wf-1", "req-1", "approve"),
        ("approval_status", "--pending"),
    ]
    worker_ran, *script_runs = await asyncio.gather(
        *(script(*command, env=env) for command in commands)
    )
    assert_worker_refused_to_start(worker_ran, expected)
    for ran in script_runs:
        assert_one_line_error(ran, 1, expected)


async def test_worker_without_an_openai_api_key_names_the_variable(
    dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer
) -> None:
    """With Temporal up but no key (and no local LLM URL), the worker says what to set."""
    env = script_env(address_of(dev_server), llm_server.url, "no-key-queue")
    del env[OPENAI_API_KEY_ENV], env[OPENAI_BASE_URL_ENV]
    ran = await script("worker", env=env)
    assert_worker_refused_to_start(ran, rf"^No model configured: {OPENAI_API_KEY_ENV} is not set")


async def test_approval_status_for_an_unknown_workflow_fails(worker: WorkerProcess) -> None:
    ran = await script("approval_status", "no-such-workflow", env=worker.env)
    assert_one_line_error(ran, 1, r"^No workflow with ID 'no-such-workflow'")
