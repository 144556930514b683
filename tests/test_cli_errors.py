"""User mistakes at the command line: each gets one clear line, the right exit code, no traceback.

Exit 2 is a usage error (argparse: nothing was sent anywhere); exit 1 means Temporal or the
workflow said no, or could not be reached. A person reading the terminal, or a shell script
checking ``$?``, must be able to tell what went wrong without reading a stack trace.
The scripts run as real processes against the session's dev server and one shared worker
(the ``worker`` fixture).
"""

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment

import approval_status
import send_approval as send_approval_script
from benchmarks.fake_openai import FakeOpenAIServer
from client import connection as client_connection
from client import status as client_status
from console_exit import BROKEN_PIPE_EXIT_CODE
from constants import (
    OPENAI_API_KEY_ENV,
    OPENAI_BASE_URL_ENV,
    STAGE_APPROVERS_ENV,
    STATUS_QUERY,
)
from dev_server import TEMPORAL_CLI, free_port
from models.models import WorkflowInput, WorkflowState
from tests.e2e import (
    PROCESS_TIMEOUT_SECONDS,
    Ran,
    WorkerProcess,
    address_of,
    approval_notice,
    script,
    send_approval,
    started_run,
    unique,
)
from tests.helpers import (
    PROJECT_ROOT,
    background_script,
    is_running,
    member_of,
    running_test_workflow,
    script_env,
    stage_approvers_file,
    start_run,
    status_of,
    wait_for_output,
    wait_until,
)
from tests.record_histories import started_children


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


async def assert_worker_and_scripts_refuse(
    env: dict[str, str], commands: list[tuple[str, ...]], expected: str
) -> None:
    """``commands`` (the worker first) all stop with ``expected`` (a regex), in one line."""
    worker_ran, *script_runs = await asyncio.gather(
        *(script(*command, env=env) for command in commands)
    )
    assert_worker_refused_to_start(worker_ran, expected)
    for ran in script_runs:
        assert_one_line_error(ran, 1, expected)


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


async def test_an_edit_that_keeps_the_call_is_refused_and_the_run_still_waits(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Approving "with edits" the very arguments shown would approve the old call under the
    word "edited": refused, with the reason, and nothing counted."""
    async with started_run(worker, dev_server, tmp_path, unique("Delete the cache")) as run:
        await approval_notice(worker, run)
        handle = dev_server.client.get_workflow_handle(run.workflow_id)
        request = (await status_of(handle)).approval_request
        assert request is not None and request.proposed_action.tool_call is not None
        same = json.dumps(request.proposed_action.tool_call.arguments)
        sent = await send_approval(worker, run, "approve", "--edit-arguments", same)
        status = await status_of(handle)

    assert_one_line_error(
        sent, 1, r"^Refused: the amended call is the one awaiting approval; approve it without"
    )
    assert status.state == WorkflowState.AWAITING_APPROVAL and status.votes == []


USAGE_ERRORS = [
    ("send_approval", ("wf-1", "maybe"), "expected approve or reject"),
    ("send_approval", ("wf-1", "req-1", "approve", "notes", "extra"), "expected approve or reject"),
    ("send_approval", ("wf-1",), "the following arguments are required: decision"),
    ("send_approval", ("wf-1", "approve", "--edit-arguments", "{table"), "not JSON \\(Expecting"),
    ("send_approval", ("wf-1", "approve", "--edit-arguments", "[]"), "must be a JSON object"),
    ("send_approval", ("wf-1", "reject", "--edit-arguments", "{}"), "only goes with approve"),
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
    await assert_worker_and_scripts_refuse(env, commands, expected)


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


async def test_an_unknown_workflow_whose_id_mentions_a_namespace_is_still_no_such_workflow(
    worker: WorkerProcess,
) -> None:
    """The server's error details say what was not found, whatever the ID's words."""
    status, decision = await asyncio.gather(
        script("approval_status", "namespace-cleanup", env=worker.env),
        script("send_approval", "namespace-cleanup", "some-request", "approve", env=worker.env),
    )
    assert_one_line_error(status, 1, r"^No workflow with ID 'namespace-cleanup'")
    assert_one_line_error(decision, 1, r"^Workflow namespace-cleanup is not running")


async def test_a_namespace_that_does_not_exist_is_named_not_taken_for_a_missing_workflow(
    worker: WorkerProcess,
) -> None:
    env = {**worker.env, "TEMPORAL_NAMESPACE": "no-such-namespace"}
    ran = await asyncio.gather(
        script("approval_status", "some-workflow", env=env),
        script("approval_status", "--pending", env=env),
        script("send_approval", "some-workflow", "some-request", "approve", env=env),
    )
    for each in ran:
        assert_one_line_error(each, 1, r"[Nn]amespace.*no-such-namespace")


async def test_a_stage_workflow_id_is_named_as_a_stage_with_the_command_that_decides_it(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """A stage's child answers the status query with no status (undecided) or a stage
    outcome (decided): the scripts say it is a stage and give the command that decides it,
    a member's send_approval through the run (which binds the decision to the stage)."""
    env = {**worker.env, STAGE_APPROVERS_ENV: str(stage_approvers_file(tmp_path))}
    async with started_run(
        worker, dev_server, tmp_path, unique("Delete the audit logs"), "--stage", "manager", env=env
    ) as run:
        parent = dev_server.client.get_workflow_handle(run.workflow_id)
        (child_id,) = await wait_until(lambda: started_children(parent), bool)
        await wait_until(lambda: is_running(dev_server.client.get_workflow_handle(child_id)), bool)
        undecided = await asyncio.gather(
            script("send_approval", child_id, "approve", env=worker.env),
            script("send_approval", child_id, "some-request-id", "approve", env=worker.env),
            script("approval_status", child_id, env=worker.env),
        )
        member = member_of("manager")
        sent = await script(
            "send_approval", run.workflow_id, "approve", "--reviewer", member, env=worker.env
        )
        done = await run.finish()
        decided = await asyncio.gather(
            script("send_approval", child_id, "approve", env=worker.env),
            script("approval_status", child_id, env=worker.env),
        )

    assert sent.returncode == 0, sent.output
    assert f"{member} approved stage manager of request" in sent.stdout
    assert "Result: approved" in done.output
    command = re.escape(
        f"`uv run python -m send_approval {run.workflow_id} approve|reject --reviewer MEMBER`."
    )
    without_id, with_wrong_id, status = undecided
    for ran in (without_id, status):
        assert_one_line_error(ran, 1, rf"^Workflow {child_id} is a stage's approval .*{command}")
    # A stage takes the update too: a wrong request ID is refused by the stage itself,
    # which names the request it waits for.
    assert_one_line_error(
        with_wrong_id, 1, r"^Refused: request ID 'some-request-id' does not match the pending"
    )
    for ran in decided:
        assert_one_line_error(
            ran,
            1,
            rf"^Workflow {child_id} is the approval workflow of stage 'manager', not a run of "
            r"the agent, and it is already approved\.",
        )
    assert undecided[0].stderr.strip().endswith("Nothing was sent.")


@workflow.defn(name="WorkflowWithoutStatus")
class WorkflowWithoutStatus:
    """Another program's workflow on the same server: it has no get_status query."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def test_a_workflow_without_the_status_query_is_named_not_a_traceback(
    worker: WorkerProcess, dev_server: WorkflowEnvironment
) -> None:
    """The query fails in the workflow (``WorkflowQueryFailedError``): one line, exit 1."""
    async with running_test_workflow(dev_server.client, WorkflowWithoutStatus) as handle:
        workflow_id = handle.id
        ran = await asyncio.gather(
            script("send_approval", workflow_id, "approve", env=worker.env),
            script("approval_status", workflow_id, env=worker.env),
        )
    for each in ran:
        assert_one_line_error(
            each, 1, rf"^Workflow {workflow_id} cannot say where it stands \(.*{STATUS_QUERY}"
        )


async def test_the_status_query_gives_up_when_no_worker_answers(
    dev_server: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a request ID, send_approval asks the run first: with no worker that query
    is bounded like the update, and says so (here the bound is shortened to 1 s)."""
    monkeypatch.setattr(client_connection, "WORKER_WAIT_SECONDS", 1)
    monkeypatch.setenv("TEMPORAL_ADDRESS", address_of(dev_server))
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    workflow_id = f"no-worker-{uuid.uuid4().hex[:8]}"
    handle = await start_run(
        dev_server.client,
        f"nobody-polls-{uuid.uuid4().hex[:8]}",
        workflow_id,
        WorkflowInput(user_request="Delete the build cache"),
    )
    try:
        args = send_approval_script.parse_args([workflow_id, "approve", "--reviewer", "ann"])
        with pytest.raises(send_approval_script.DecisionNotAppliedError) as refused:
            await asyncio.wait_for(send_approval_script.send(args), timeout=20)
        with pytest.raises(client_status.StatusUnavailableError) as unanswered:
            status_args = argparse.Namespace(pending=False, workflow_id=workflow_id)
            await asyncio.wait_for(approval_status.report(status_args), timeout=20)
    finally:
        await handle.terminate("end of test")
    no_worker = "No worker answered within 1s; is `python -m worker` running?"
    assert str(refused.value) == f"{no_worker} Nothing was sent."
    assert str(unanswered.value) == no_worker


async def test_start_workflow_with_a_workflow_id_in_use_says_so(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    async with started_run(worker, dev_server, tmp_path, unique("Drop the cache table")) as run:
        await approval_notice(worker, run)
        again = await script(
            "start_workflow", "Something else", "--workflow-id", run.workflow_id, env=worker.env
        )
        status = await status_of(dev_server.client.get_workflow_handle(run.workflow_id))

    assert_one_line_error(again, 1, rf"^Workflow ID {run.workflow_id} is in use by a running")
    assert status.state == WorkflowState.AWAITING_APPROVAL  # the first run is untouched


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("TEMPORAL_PROFILE", "nope", r"^Bad Temporal settings \(TEMPORAL_PROFILE=nope\): "),
        ("TEMPORAL_ADDRESS", "not a host", r"^TEMPORAL_ADDRESS 'not a host' is not a valid "),
        ("TEMPORAL_ADDRESS", "127.0.0.1:99999", r"^TEMPORAL_ADDRESS '127.0.0.1:99999' is not a"),
    ],
    ids=["missing-profile", "not-a-host", "bad-port"],
)
async def test_every_script_names_a_bad_temporal_setting(
    llm_server: FakeOpenAIServer, setting: str, value: str, expected: str
) -> None:
    env = script_env(f"127.0.0.1:{free_port()}", llm_server.url, "unused-queue")
    env[setting] = value
    commands = [
        ("worker",),
        ("start_workflow", "Summarise the report"),
        ("send_approval", "wf-1", "approve"),
        ("approval_status", "wf-1"),
    ]
    await assert_worker_and_scripts_refuse(env, commands, expected)


@pytest.mark.usefixtures("processes")
async def test_start_workflow_says_the_run_started_when_the_server_goes_away_while_waiting(
    llm_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    """The run exists (Temporal keeps it); only waiting for it failed, and the user learns
    its ID and how to look it up, not that Temporal refused to start it."""
    server = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI), dev_server_log_level="error"
    )
    env = script_env(address_of(server), llm_server.url, f"nobody-{uuid.uuid4().hex[:8]}")
    log_path = tmp_path / "start_workflow.log"
    command = ("start_workflow", "Summarise the report", "--workflow-id", "doomed")
    with (
        log_path.open("w") as log,
        background_script(*command, env=env, log=log) as process,
    ):
        try:
            await wait_for_output(log_path, "Waiting for the result")
        finally:
            await server.shutdown()
        returncode = await asyncio.to_thread(process.wait, PROCESS_TIMEOUT_SECONDS)
    output = log_path.read_text()
    assert "Traceback" not in output, output
    assert returncode == 1, output
    assert "refused to start" not in output
    assert re.search(
        r"^Workflow doomed was started, but waiting for its result failed \(.*\)\. "
        r"Check it later with `uv run python -m approval_status doomed`\.$",
        output,
        re.MULTILINE,
    ), output


@pytest.mark.parametrize(
    ("setting", "make_value", "expected"),
    [
        (
            "TEMPORAL_CONFIG_FILE",
            lambda tmp: tmp / "temporal.toml",
            r"^Bad Temporal settings \(TEMPORAL_CONFIG_FILE=.*temporal\.toml\): "
            r"Configuration loading error: TOML parse error at line 1, column \d+: .+\.$",
        ),
        (
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            lambda tmp: tmp / "missing.pem",
            r"^Bad Temporal settings \(TEMPORAL_TLS_CLIENT_CERT_PATH=.*missing\.pem\): "
            r"No such file or directory: .*missing\.pem\.$",
        ),
    ],
    ids=["broken-profile-file", "missing-certificate"],
)
async def test_settings_that_cannot_be_loaded_are_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setting: str,
    make_value: object,
    expected: str,
) -> None:
    """A TOML error spans several lines (location, excerpt, reason): the message keeps one."""
    assert callable(make_value)
    value = make_value(tmp_path)
    (tmp_path / "temporal.toml").write_text("address = = 1\n")
    for name in client_connection.PROFILE_SETTINGS:  # only the setting under test is named
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(setting, str(value))

    with pytest.raises(client_connection.TemporalSettingsError) as failure:
        await client_connection.connect()
    assert re.fullmatch(expected, str(failure.value)), str(failure.value)


def test_a_reader_that_goes_away_ends_a_script_without_a_traceback(
    dev_server: WorkflowEnvironment,
) -> None:
    """``approval_status --pending | head``: once the reader has gone, the script ends
    quietly (exit 141, as a shell reports SIGPIPE), with nothing on stderr."""
    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone before anything was written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "approval_status", "--pending"],
            cwd=PROJECT_ROOT,
            env=script_env(address_of(dev_server), "http://127.0.0.1:9", "no-queue"),
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (BROKEN_PIPE_EXIT_CODE, "")
