"""The one-command demo, end to end: embedded dev server, in-process worker, a human at a
terminal (a real pseudo-terminal) or flags, and nothing left running afterwards."""

import asyncio
import contextlib
import os
import pty
import re
import select
import shlex
import signal
import socket
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import demo
from activities.propose_action import OfflineAnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer
from client import connection as client_connection
from client.connection import DEV_SERVER_COMMAND
from constants import (
    OPENAI_API_KEY_ENV,
    OPENAI_BASE_URL_ENV,
    STAGE_APPROVERS_ENV,
    STATE_DIR_ENV,
    TASK_QUEUE_ENV,
)
from dev_server import UI_PORT_OFFSET, start_dev_server
from models.models import (
    Outcome,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
)
from tests.helpers import (
    DEFAULT_WAIT_SECONDS,
    TEMPORAL_CLI,
    background_script,
    dev_server_search_attributes,
    embedded_server_port,
    member_of,
    port_is_open,
    run_script,
    script_env,
    script_process,
    stage_approvers_file,
    start_run,
    wait_for_output,
    wait_for_state,
    wait_until,
)
from tools.database import DATABASE_FILE, reset_database
from worker_setup import build_worker

# Each of these runs the demo (with its embedded server) or a script as a process.
pytestmark = pytest.mark.usefixtures("processes")

RISKY = "Delete all test data from the production database"
UV_RUN_MODULE = ["uv", "run", "python", "-m"]
STAGED = "Pay $25,000 to ACME"  # $10,000 or more: manager -> director -> cfo


DEMO_TASK_QUEUE = "demo-tests"


def demo_env(address: str, llm_url: str) -> dict[str, str]:
    return script_env(address, llm_url, task_queue=DEMO_TASK_QUEUE)


def test_offline_demo_approves_from_flags_and_stops_its_server(tmp_path: Path) -> None:
    port = embedded_server_port()
    result = run_script(
        "demo",
        "--offline",
        "--approve",
        "fine on a copy",
        "--data-dir",
        str(tmp_path),
        RISKY,
        env=demo_env(f"127.0.0.1:{port}", "http://127.0.0.1:1/v1"),
    )
    assert result.returncode == 0, result.stderr
    assert "starting the embedded dev server" in result.stdout
    assert "offline rule-based analyser (not an LLM)" in result.stdout
    assert "A human must decide because:" in result.stdout
    assert "Result: approved" in result.stdout
    assert "decision_approved" in result.stdout and "fine on a copy" in result.stdout
    assert (tmp_path / "demo.db").exists()
    assert not port_is_open(port)


def test_the_demo_shows_the_effect_before_asking_and_the_tool_acts_once(tmp_path: Path) -> None:
    """A request the offline analyser turns into a tool call: the demo shows what it would
    change before the decision, then the tool changes exactly that (its own database)."""
    env = demo_env(f"127.0.0.1:{embedded_server_port()}", "http://127.0.0.1:1/v1")
    env[STATE_DIR_ENV] = str(tmp_path)
    request = "Delete inactive customers in Brazil"
    result = run_script(
        "demo", "--offline", "--approve", "checked", "--data-dir", str(tmp_path), request, env=env
    )

    assert result.returncode == 0, result.stderr
    effect = re.search(r"Effect:\s+deletes (\d+) of 2,020 rows in customers where", result.stdout)
    assert effect, result.stdout
    assert "delete_records changes data" in result.stdout
    assert f"executed: deleted {effect[1]} rows from customers" in result.stdout
    assert result.stdout.index("Effect:") < result.stdout.index("Result: approved")


def test_the_demo_acts_on_its_own_fresh_copy_of_the_sample_data(tmp_path: Path) -> None:
    """An earlier run deleted the test rows from the worker's database (``HITL_STATE_DIR``):
    the demo still finds them, in its own copy seeded for this demo, and acts there only."""
    shared = tmp_path / "worker-state" / DATABASE_FILE
    reset_database(shared)
    test_rows = "SELECT COUNT(*) FROM customers WHERE status = 'test'"
    with closing(sqlite3.connect(shared)) as db, db:
        db.execute("DELETE FROM customers WHERE status = 'test'")
    env = demo_env(f"127.0.0.1:{embedded_server_port()}", "http://127.0.0.1:1/v1")
    env[STATE_DIR_ENV] = str(shared.parent)
    result = run_script(
        "demo", "--offline", "--approve", "ok", "--data-dir", str(tmp_path), RISKY, env=env
    )

    assert result.returncode == 0, result.stderr
    own = tmp_path.resolve() / demo.SAMPLE_DATA_FOLDER
    assert f"Sample data: a fresh copy for this demo, in {own}." in result.stdout
    assert re.search(r"Effect:\s+deletes 20 of 2,020 rows in customers", result.stdout)
    assert "executed: deleted 20 rows from customers" in result.stdout
    assert count(own / DATABASE_FILE, test_rows) == 0
    assert count(shared, "SELECT COUNT(*) FROM customers") == 2_000  # not touched


def count(path: Path, sql: str) -> int:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchone()[0]


def test_demo_uses_the_configured_llm_and_rejects(
    tmp_path: Path, llm_server: FakeOpenAIServer
) -> None:
    result = run_script(
        "demo",
        "--reject",
        "not today",
        "--data-dir",
        str(tmp_path),
        RISKY + " (demo)",
        env=demo_env(f"127.0.0.1:{embedded_server_port()}", llm_server.url),
    )
    assert result.returncode == 0, result.stderr
    assert "test-model at " in result.stdout
    assert "Result: rejected" in result.stdout and "not today" in result.stdout
    assert llm_server.calls(RISKY + " (demo)") == 1


def test_demo_without_a_model_explains_the_options_before_starting_anything(
    tmp_path: Path,
) -> None:
    port = embedded_server_port()
    env = demo_env(f"127.0.0.1:{port}", "unused")
    del env[OPENAI_API_KEY_ENV], env[OPENAI_BASE_URL_ENV]
    result = run_script("demo", "--data-dir", str(tmp_path), RISKY, env=env)
    assert result.returncode == 1
    assert "OPENAI_API_KEY is not set" in result.stderr
    for option in ("OPENAI_BASE_URL", "HITL_LLM_API=chat_completions", "--offline"):
        assert option in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "demo.db").exists()


class Terminal:
    """The demo in a pseudo-terminal, so it believes a person sits at it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.fd, child_end = pty.openpty()
        try:
            self.process = script_process(
                "demo",
                *args,
                env=env,
                stdin=child_end,
                stdout=child_end,
                stderr=child_end,
            )
        finally:
            os.close(child_end)  # the demo holds the only copy: its exit ends our reads
        self.pid = self.process.pid
        self.output = ""

    @classmethod
    def offline_demo(cls, tmp_path: Path, request: str, *options: str) -> tuple["Terminal", int]:
        """``demo --offline options request`` with its data in ``tmp_path``, its embedded
        server on a free port (returned, to check that nothing is left listening there)."""
        port = embedded_server_port()
        env = demo_env(f"127.0.0.1:{port}", "http://127.0.0.1:1/v1")
        env[STAGE_APPROVERS_ENV] = str(stage_approvers_file(tmp_path))
        return cls(["--offline", *options, "--data-dir", str(tmp_path), request], env), port

    def expect(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{text!r} not shown; screen:\n{self.output[-2000:]}"
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    self.output += os.read(self.fd, 4096).decode(errors="replace")
                except OSError:  # the demo exited
                    break
        assert text in self.output, self.output[-2000:]

    def type(self, line: str) -> None:
        os.write(self.fd, f"{line}\n".encode())

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            returncode = self.process.poll()
            if returncode is not None:
                self.expect("")  # drain what is left
                return returncode
            select.select([self.fd], [], [], 0.1)
            with contextlib.suppress(OSError):  # the demo closed its terminal
                self.output += os.read(self.fd, 4096).decode(errors="replace")
        self.process.kill()
        raise AssertionError(f"demo did not exit; screen:\n{self.output[-2000:]}")


def test_interactive_demo_asks_until_answered_then_applies_the_decision(tmp_path: Path) -> None:
    terminal, port = Terminal.offline_demo(tmp_path, RISKY)
    terminal.expect("Approve? [y/n]")
    terminal.type("perhaps")
    terminal.expect("Please answer y or n.")
    terminal.type("y")
    terminal.expect("Notes (optional):")
    terminal.type("checked the backup")
    assert terminal.wait() == 0
    assert "Result: approved" in terminal.output
    assert "checked the backup" in terminal.output
    assert not port_is_open(port)


def test_the_deadline_ends_an_unanswered_prompt_with_the_timed_out_outcome(
    tmp_path: Path,
) -> None:
    terminal, port = Terminal.offline_demo(tmp_path, RISKY, "--approval-timeout", "3")
    terminal.expect("Approve? [y/n]")
    terminal.expect("The deadline passed before a decision.")
    assert terminal.wait() == 0
    assert "Result: timed_out" in terminal.output
    assert "Traceback" not in terminal.output
    assert not port_is_open(port)


async def test_a_decision_that_arrives_too_late_is_reported_not_raised(
    dev_server: WorkflowEnvironment,
    task_queue: str,
    workflow_id: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The race the prompt cannot close: the answer is sent as the deadline passes."""
    client = dev_server.client
    run_input = WorkflowInput(user_request=RISKY, approval_timeout_seconds=1)
    async with build_worker(client, task_queue, OfflineAnalysisActivities()):
        handle = await start_run(client, task_queue, workflow_id, run_input)
        waiting = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        assert (await handle.result()).outcome == Outcome.TIMED_OUT

        await demo.send_verdict(client, handle, waiting, approved=True, notes="late")

    assert f"Your decision was not applied. Workflow {workflow_id} is not running" in (
        capsys.readouterr().out
    )


async def test_without_a_terminal_the_demo_prints_the_command_and_waits_for_it(
    tmp_path: Path,
) -> None:
    """Run from a script with no flags, the demo cannot ask: it says how to decide from
    elsewhere, and that decision ends it like any other."""
    env = demo_env(f"127.0.0.1:{embedded_server_port()}", "http://127.0.0.1:1/v1")
    log_path = tmp_path / "demo.log"
    with (
        log_path.open("w") as log,
        background_script(
            "demo", "--offline", "--data-dir", str(tmp_path), RISKY, env=env, log=log
        ) as process,
    ):
        output = await wait_for_output(log_path, "No terminal to ask in")
        match = re.search(r"uv run python -m send_approval (\S+) approve\|reject", output)
        assert match, output
        sent = run_script("send_approval", match[1], "approve", "from elsewhere", env=env)
        assert sent.returncode == 0, sent.stderr
        assert await asyncio.to_thread(process.wait, 60) == 0
    output = log_path.read_text()
    assert "Result: approved" in output and "from elsewhere" in output


def test_the_demo_approves_a_staged_request_stage_by_stage(tmp_path: Path) -> None:
    """Each stage is decided as one of its members (HITL_STAGE_APPROVERS), a different
    person each, through the decision update: never the shorthand signal."""
    env = demo_env(f"127.0.0.1:{embedded_server_port()}", "http://127.0.0.1:1/v1")
    env[STAGE_APPROVERS_ENV] = str(stage_approvers_file(tmp_path))
    result = run_script(
        "demo",
        "--offline",
        "--approve",
        "within budget",
        "--data-dir",
        str(tmp_path),
        STAGED,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    for position, stage in enumerate(("manager", "director", "cfo"), start=1):
        member = member_of(stage)
        assert f"Sent approve to stage {stage} ({position}/3) as {member}." in result.stdout
        assert f"stage_approved: {stage} ({position}/3) by {member}" in result.stdout
    assert f"Result: approved - Approved by {member_of('cfo')} (stage cfo)" in result.stdout
    assert "decision_refused" not in result.stdout


def test_the_demo_asks_each_stage_in_turn_and_stops_at_a_no(tmp_path: Path) -> None:
    terminal, _ = Terminal.offline_demo(tmp_path, STAGED)
    terminal.expect(f"Approve stage 'manager' as {member_of('manager')}? [y/n]")
    terminal.type("y")
    terminal.expect(f"Approve stage 'director' as {member_of('director')}? [y/n]")
    terminal.type("n")
    assert terminal.wait() == 0
    assert "Result: rejected" in terminal.output
    assert "stage_rejected: director (2/3)" in terminal.output
    assert "Approve stage 'cfo'" not in terminal.output


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "No such file"), ("{not json", "not JSON"), ('{"cfo": "dana"}', "expected")],
    ids=["missing", "not json", "wrong shape"],
)
def test_a_bad_stage_approvers_file_is_one_line_before_anything_starts(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "stages.json"
    if content is not None:
        path.write_text(content)
    port = embedded_server_port()
    env = {**demo_env(f"127.0.0.1:{port}", "http://127.0.0.1:1/v1"), STAGE_APPROVERS_ENV: str(path)}
    result = run_script("demo", "--offline", "--data-dir", str(tmp_path), STAGED, env=env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"{STAGE_APPROVERS_ENV}={path}: ") and problem in line, line
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not port_is_open(port)


async def test_a_wrong_namespace_is_one_line_from_worker_and_demo(
    dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_server.client.service_client.config.target_host
    env = {**demo_env(address, "http://127.0.0.1:1/v1"), "TEMPORAL_NAMESPACE": "no-such-ns"}
    for module, args in (
        ("worker", ["--offline"]),
        ("demo", ["--offline", "--approve", "ok", "--data-dir", str(tmp_path), RISKY]),
    ):
        result = await asyncio.to_thread(run_script, module, *args, env=env)
        assert result.returncode == 1, (module, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert "TEMPORAL_NAMESPACE" in last and "'no-such-ns'" in last, result.stderr
        # Nor the SDK core's warning about the namespace, which a started worker would log.
        assert "Traceback" not in result.stderr and "sdk_core" not in result.stderr


def test_a_port_held_by_another_program_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The listener never answers as Temporal: the demo gives up on it after the probe.
    monkeypatch.setattr(demo, "LOCAL_PROBE_SECONDS", 0.5)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        if port + UI_PORT_OFFSET > 65535:
            pytest.skip("the OS picked a port with no room for the Web UI above it")
        result = run_script(
            "demo",
            *("--offline", "--approve", "ok", "--data-dir", str(tmp_path), RISKY),
            env=demo_env(f"127.0.0.1:{port}", "http://127.0.0.1:1/v1"),
        )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"port {port} is taken" in result.stderr
    assert not (tmp_path / "demo.db").exists()


@pytest.mark.parametrize("unusable", ["cannot be created", "is a file"])
def test_an_unusable_data_folder_is_named(tmp_path: Path, unusable: str) -> None:
    data_dir = Path("/proc/nope") if unusable == "cannot be created" else tmp_path / "a-file"
    if unusable == "is a file":
        data_dir.write_text("not a folder")
    result = run_script(
        "demo",
        *("--offline", "--approve", "ok", "--data-dir", str(data_dir), RISKY),
        env=demo_env(f"127.0.0.1:{embedded_server_port()}", "http://127.0.0.1:1/v1"),
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert str(data_dir) in result.stderr and "--data-dir" in result.stderr


async def test_ctrl_c_stops_everything_and_keeps_the_run_for_later(tmp_path: Path) -> None:
    terminal, port = Terminal.offline_demo(tmp_path, RISKY)
    address = f"127.0.0.1:{port}"
    terminal.expect("Approve? [y/n]")
    os.kill(terminal.pid, signal.SIGINT)
    assert terminal.wait() == 130
    assert "Stopped. Workflow" in terminal.output
    assert "Traceback" not in terminal.output
    assert not port_is_open(port)
    workflow_id = terminal.output.split("Stopped. Workflow ", 1)[1].split()[0]
    hint = terminal.output.split("To decide it later:", 1)[1].strip().splitlines()
    server, worker, decide = (shlex.split(line) for line in hint[:3])
    assert " ".join(server) == (
        f"{DEV_SERVER_COMMAND} --port {port} --db-filename {tmp_path / 'demo.db'}"
    )
    sample_data = tmp_path.resolve() / demo.SAMPLE_DATA_FOLDER
    demo_queue = f"{DEMO_TASK_QUEUE}-demo"  # the demo's own: no other worker answers it
    assert worker == [
        f"{TASK_QUEUE_ENV}={demo_queue}",
        f"{STATE_DIR_ENV}={sample_data}",
        *UV_RUN_MODULE,
        "worker",
        "--offline",
    ]
    assert decide == [*UV_RUN_MODULE, "send_approval", workflow_id, "approve", "notes"]

    # The run survived in the database file: with a server on it, the printed worker (no
    # key needed: the demo ran offline; on the demo's sample data) and the printed decision
    # finish it.
    env = demo_env(address, "")
    del env[OPENAI_API_KEY_ENV], env[OPENAI_BASE_URL_ENV]
    env[STATE_DIR_ENV], env[TASK_QUEUE_ENV] = str(sample_data), demo_queue
    server_env = await start_dev_server(address, tmp_path / "demo.db")
    log = tmp_path / "worker.log"
    try:
        with log.open("w") as out, background_script(*worker[6:], env=env, log=out):
            await wait_for_output(log, "Worker started")
            result = await asyncio.to_thread(run_script, *decide[4:], env=env)
            assert result.returncode == 0, result.stderr
            client = await Client.connect(address, data_converter=pydantic_data_converter)
            handle = client.get_workflow_handle(workflow_id, result_type=WorkflowResult)
            assert (await handle.result()).outcome == Outcome.APPROVED
            assert (await handle.describe()).task_queue == demo_queue
    finally:
        await server_env.shutdown()


@pytest.mark.parametrize("missing", ["--approve", "--reject"])
def test_demo_flags_need_notes(missing: str) -> None:
    result = run_script("demo", RISKY, missing, env=dict(os.environ))
    assert result.returncode == 2
    assert "usage: demo" in result.stderr


async def server_on_file(port: int, db_file: Path) -> WorkflowEnvironment:
    """A dev server on ``port`` that keeps its runs in ``db_file``, so it can be restarted
    (no Web UI: its port could still be held by the server just stopped)."""
    return await WorkflowEnvironment.start_local(
        port=port,
        ui=False,
        data_converter=pydantic_data_converter,
        search_attributes=dev_server_search_attributes(),
        dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_extra_args=["--db-filename", str(db_file)],
        dev_server_log_level="error",
    )


async def test_a_decision_the_server_forgot_is_sent_again_until_the_run_takes_it_once(
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The flags' decision is sent while no worker serves the run, so nobody accepts it in
    time; then the server restarts, which forgets an update no worker has accepted (it is
    held in memory only). The demo keeps sending it, as the same update, until the run
    takes it: the run ends rejected, with one decision, instead of waiting out its deadline."""
    monkeypatch.setattr(client_connection, "WORKER_WAIT_SECONDS", 1)  # "not answered in time"
    port, db_file = embedded_server_port(), tmp_path / "temporal.db"
    output = ""

    async def printed() -> str:
        nonlocal output
        output += capsys.readouterr().out
        return output

    server = await server_on_file(port, db_file)
    sending: asyncio.Future[None] | None = None
    try:
        client = server.client
        async with build_worker(client, task_queue, OfflineAnalysisActivities()):
            run_input = WorkflowInput(user_request=RISKY)
            handle = await start_run(client, task_queue, workflow_id, run_input)
            waiting = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        sending = asyncio.ensure_future(
            demo.send_verdict(client, handle, waiting, approved=False, notes="not today")
        )
        # The first send went unanswered: the demo gave up on it, or sends it again.
        await wait_until(printed, lambda out: sending.done() or "again" in out)
        await server.shutdown()
        server = await server_on_file(port, db_file)
        async with build_worker(server.client, task_queue, OfflineAnalysisActivities()):
            async with asyncio.timeout(DEFAULT_WAIT_SECONDS):
                result, _ = await asyncio.gather(handle.result(), sending)
    except TimeoutError:
        pytest.fail(f"the run never took the decision; the demo said:\n{await printed()}")
    finally:
        if sending is not None:
            sending.cancel()
        await server.shutdown()

    assert result.outcome == Outcome.REJECTED
    decisions = [entry for entry in result.audit_trail if entry.event.startswith("decision_")]
    assert [entry.event for entry in decisions] == ["decision_rejected"], result.audit_trail
    assert "not today" in decisions[0].detail and len(result.votes) == 1
    assert "sending it again, as the same update" in await printed()


async def test_a_decision_no_worker_takes_before_the_deadline_is_reported_not_applied(
    dev_server: WorkflowEnvironment,
    task_queue: str,
    workflow_id: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sending again stops at the deadline: with no worker at all, the demo says the
    decision was not confirmed, and leaves it to the run's outcome, which follows."""
    monkeypatch.setattr(client_connection, "WORKER_WAIT_SECONDS", 1)
    client = dev_server.client
    # Room for the worker to stop and one unanswered send (1 s) before the deadline: the
    # demo keeps sending until then, so every second more is a second of the test.
    run_input = WorkflowInput(user_request=RISKY, approval_timeout_seconds=5)
    async with build_worker(client, task_queue, OfflineAnalysisActivities()):
        handle = await start_run(client, task_queue, workflow_id, run_input)
        waiting = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
    try:
        async with asyncio.timeout(DEFAULT_WAIT_SECONDS):
            await demo.send_verdict(client, handle, waiting, approved=True, notes="too late")
    finally:
        await handle.terminate("end of test")  # it waits for a worker to time it out

    lines = capsys.readouterr().out.strip().splitlines()
    assert "sending it again, as the same update" in lines[-2]
    assert lines[-1].startswith("Your decision was not confirmed by the deadline (no answer")
