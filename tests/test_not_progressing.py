"""A run whose workflow task keeps failing is named as such, with the server's reason,
instead of a status query that times out (``client.status.not_progressing``).

The run is wedged on purpose by a test-only workflow that raises in its workflow code: the
SDK fails the workflow task, and the server retries it for ever, as it did for a run that
built a payload over Temporal's limit before the input limits existed.
"""

import argparse
import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import approval_status
import send_approval
import start_workflow
from benchmarks.fake_openai import FakeOpenAIServer
from client import connection as client_connection
from client import decide as client_decide
from client import start as client_start
from client import status as client_status
from client.connection import converter_with_keys
from client.status import not_progressing
from constants import TASK_QUEUE_ENV, WORKFLOW_TYPE
from encryption.keys import parse_keys
from models.models import WorkflowInput
from tests.e2e import address_of, script
from tests.helpers import running_test_workflow, script_env, start_run, wait_until

WEDGE = "deliberately wedged for the test"


@workflow.defn(name="WedgedForTest", sandboxed=False)
class WedgedWorkflow:
    """Fails every workflow task: a bug, or a payload Temporal refuses, would do the same."""

    @workflow.run
    async def run(self) -> None:
        raise RuntimeError(f"{WEDGE}\nsecond line\x1b[31m never shown")


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class WedgedAgent:
    """The agent's workflow type, wedged the same way, for start_workflow to start."""

    @workflow.run
    async def run(self, run_input: WorkflowInput) -> None:
        raise RuntimeError(f"{WEDGE}: {run_input.user_request}")


async def failing_attempts(handle: WorkflowHandle) -> int:
    description = await handle.describe()
    return description.raw_description.pending_workflow_task.attempt


@pytest.fixture
async def wedged(dev_client: Client) -> AsyncIterator[WorkflowHandle]:
    """A run whose workflow task has failed at least twice, its worker still polling."""
    async with running_test_workflow(dev_client, WedgedWorkflow) as handle:
        await wait_until(lambda: failing_attempts(handle), lambda attempt: attempt >= 2)
        yield handle


async def test_the_helper_says_why_from_what_the_server_reports(
    dev_client: Client, wedged: WorkflowHandle
) -> None:
    stuck = await not_progressing(dev_client, wedged.id)
    assert stuck is not None
    assert stuck.startswith(f"Workflow {wedged.id} is not progressing: its workflow task has")
    assert f"with: {WEDGE}." in stuck  # the first line of the failure, nothing after it
    assert "second line" not in stuck and "\x1b" not in stuck
    assert "temporal workflow terminate" in stuck


async def test_approval_status_and_send_approval_say_so_at_once(
    dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer, wedged: WorkflowHandle
) -> None:
    """One line and exit 1, from the server's report: not the status query's "no worker"
    after 20 s, which is all a query to such a run could end with."""
    env = script_env(address_of(dev_server), llm_server.url, "unused")
    status, decision = await asyncio.gather(
        script("approval_status", wedged.id, env=env),
        script("send_approval", wedged.id, "approve", "--reviewer", "ann", env=env),
    )
    for ran in (status, decision):
        assert ran.returncode == 1, ran.output
        assert ran.stdout == "" and len(ran.stderr.strip().splitlines()) == 1, ran.output
        assert f"Workflow {wedged.id} is not progressing" in ran.stderr and WEDGE in ran.stderr
    assert decision.stderr.strip().endswith("Nothing was sent.")


async def test_a_decision_sent_by_request_id_says_it_was_not_applied(
    dev_server: WorkflowEnvironment, wedged: WorkflowHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a request ID, send_approval sends the update at once: when no answer comes,
    it names the stuck run rather than a missing worker (wait shortened to 1 s)."""
    monkeypatch.setattr(client_connection, "WORKER_WAIT_SECONDS", 1)
    monkeypatch.setenv("TEMPORAL_ADDRESS", address_of(dev_server))
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    args = send_approval.parse_args([wedged.id, "req-1", "approve", "--reviewer", "ann"])
    with pytest.raises(client_decide.DecisionNotAppliedError) as refused:
        await asyncio.wait_for(send_approval.send(args), timeout=20)
    assert f"Workflow {wedged.id} is not progressing" in str(refused.value)
    assert str(refused.value).endswith("The decision was not applied.")


async def test_a_run_that_waits_or_has_no_worker_is_not_called_stuck(
    dev_server: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker means no failure: that is the query's 'no worker' message, not this one."""
    client = dev_server.client
    handle = await start_run(
        client,
        f"nobody-polls-{uuid.uuid4().hex[:8]}",
        f"idle-{uuid.uuid4().hex[:8]}",
        WorkflowInput(user_request="Delete the build cache"),
    )
    try:
        assert await not_progressing(client, handle.id) is None
        monkeypatch.setattr(client_connection, "WORKER_WAIT_SECONDS", 1)
        monkeypatch.setenv("TEMPORAL_ADDRESS", address_of(dev_server))
        monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
        with pytest.raises(client_status.StatusUnavailableError) as unanswered:
            status_args = argparse.Namespace(pending=False, workflow_id=handle.id)
            await asyncio.wait_for(approval_status.report(status_args), timeout=20)
    finally:
        await handle.terminate("end of test")
    assert str(unanswered.value).startswith("No worker answered")


async def test_start_workflow_stops_waiting_for_a_run_that_is_not_progressing(
    dev_client: Client, dev_server: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It would wait for ever; it says why and exits instead (checks every 0.5 s here)."""
    task_queue = f"wedged-agent-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(client_start, "PROGRESS_CHECK_SECONDS", 0.5)
    monkeypatch.setenv("TEMPORAL_ADDRESS", address_of(dev_server))
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    monkeypatch.setenv(TASK_QUEUE_ENV, task_queue)
    workflow_id = f"wedged-{uuid.uuid4().hex[:8]}"
    args = start_workflow.parse_args(["Delete the logs", "--workflow-id", workflow_id])
    async with Worker(
        dev_client,
        task_queue=task_queue,
        workflows=[WedgedAgent],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        try:
            with pytest.raises(client_start.ResultUnavailableError) as stopped:
                progress = start_workflow.Progress(workflow_id)
                await asyncio.wait_for(start_workflow.start_and_wait(args, progress), timeout=60)
        finally:
            await dev_client.get_workflow_handle(workflow_id).terminate("end of test")
    assert str(stopped.value).startswith(f"Workflow {workflow_id} is not progressing")
    assert f"{WEDGE}: Delete the logs" in str(stopped.value)
    assert str(stopped.value).endswith("Stopped waiting for its result.")


async def test_with_encryption_the_failure_is_decrypted_for_the_reader(
    dev_server: WorkflowEnvironment,
) -> None:
    """With keys, the worker stores the failure's message encrypted ("Encoded failure"): the
    helper reads it through the client's codec, as the scripts connect with the keys."""
    ring = parse_keys([f"k-test:{base64.b64encode(os.urandom(32)).decode()}"], source="test")
    client = await Client.connect(address_of(dev_server), data_converter=converter_with_keys(ring))
    async with running_test_workflow(client, WedgedWorkflow) as handle:
        await wait_until(lambda: failing_attempts(handle), lambda attempt: attempt >= 2)
        stuck = await not_progressing(client, handle.id)
        stored = await dev_server.client.get_workflow_handle(handle.id).fetch_history()
    failures = [
        event.workflow_task_failed_event_attributes.failure.message
        for event in stored.events
        if event.HasField("workflow_task_failed_event_attributes")
    ]
    assert failures and all(WEDGE not in message for message in failures)
    assert stuck is not None and f"with: {WEDGE}." in stuck


async def test_start_workflow_says_when_no_worker_polls_its_task_queue(
    dev_server: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No worker on the queue: after a short wait (0.2 s here) one line on stderr says so
    and names the queue, and the script goes on waiting (the run proceeds once one polls)."""
    task_queue = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(start_workflow, "WORKER_CHECK_SECONDS", 0.2)
    monkeypatch.setenv("TEMPORAL_ADDRESS", address_of(dev_server))
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    monkeypatch.setenv(TASK_QUEUE_ENV, task_queue)
    workflow_id = f"unserved-{uuid.uuid4().hex[:8]}"
    args = start_workflow.parse_args(["Delete the logs", "--workflow-id", workflow_id])
    waiting = asyncio.ensure_future(
        start_workflow.start_and_wait(args, start_workflow.Progress(workflow_id))
    )
    said: list[str] = []
    try:
        await wait_until(
            lambda: asyncio.sleep(0, said.append(capsys.readouterr().err)),
            lambda _: "No worker is polling" in "".join(said) or waiting.done(),
        )
        assert not waiting.done(), "it stopped waiting"
    finally:
        waiting.cancel()
        await dev_server.client.get_workflow_handle(workflow_id).terminate("end of test")
    [line] = "".join(said).splitlines()
    assert line.startswith(f"No worker is polling task queue {task_queue!r}; the run waits")
