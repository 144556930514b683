"""Payload encryption end to end: real worker processes and scripts with keys, and the raw
history read through the session's plain client, as anyone with server access reads it.

The marker in each request stands for a customer's personal data: it must never reach the
server in clear, while the people holding the keys (the scripts) see it as they always did.
"""

import base64
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, WorkflowExecutionStatus
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer
from client.connection import converter_with_keys
from client.start import INITIAL_SEARCH_ATTRIBUTES
from constants import ENCRYPTION_KEYS_ENV, WORKFLOW_TYPE
from encryption.keys import parse_keys
from models.models import WorkflowInput
from tests.e2e import (
    WorkerProcess,
    address_of,
    approval_notice,
    script,
    send_approval,
    started_run,
    unique,
    worker_process,
)
from tests.helpers import script_env, wait_until
from worker_setup import build_worker

KEY_ID = "hitl-2026-11"
KEYLESS_TASK_TIMEOUT = timedelta(seconds=2)
RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
WORKFLOW_TASK_FAILED = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def marker() -> str:
    """Text that must only ever be stored encrypted."""
    return f"IBAN-DE89-{uuid.uuid4().hex[:12]}"


async def raw_history(dev_server: WorkflowEnvironment, workflow_id: str) -> bytes:
    """The run's history exactly as the server stores it (the session client has no codec)."""
    history = await dev_server.client.get_workflow_handle(workflow_id).fetch_history()
    return b"".join(event.SerializeToString() for event in history.events)


@pytest.fixture(scope="module")
def keys() -> str:
    return f"{KEY_ID}:{new_key()},hitl-2026-10:{new_key()}"


@pytest.fixture(scope="module")
async def encrypting_worker(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    keys: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkerProcess]:
    env = script_env(address_of(dev_server), llm_server.url, f"enc-{uuid.uuid4().hex[:12]}")
    env[ENCRYPTION_KEYS_ENV] = keys
    log = tmp_path_factory.mktemp("encryption") / "worker.log"
    async with worker_process(env, log) as worker:
        yield worker


async def test_the_server_never_sees_the_request_while_the_scripts_show_it(
    encrypting_worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    secret = marker()
    request = unique(f"Delete the customer record of {secret}")
    async with started_run(encrypting_worker, dev_server, tmp_path, request) as run:
        notice = await approval_notice(encrypting_worker, run)
        status = await script("approval_status", run.workflow_id, env=encrypting_worker.env)
        assert status.returncode == 0, status.output
        assert secret in status.stdout
        assert secret.encode() not in await raw_history(dev_server, run.workflow_id)

        sent = await send_approval(encrypting_worker, run, notice.request_id, "approve", "ok")
        assert sent.returncode == 0, sent.output
        done = await run.finish()

    assert done.returncode == 0, done.output
    assert secret in done.output  # the result, decrypted by start_workflow
    stored = await raw_history(dev_server, run.workflow_id)
    assert b"binary/encrypted" in stored
    assert KEY_ID.encode() in stored  # each payload names the key that sealed it
    assert secret.encode() not in stored
    assert b"Delete the customer record" not in stored


async def test_a_script_without_the_key_names_it_in_one_line(
    encrypting_worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    request = unique(f"Drop the ledger of {marker()}")
    async with started_run(encrypting_worker, dev_server, tmp_path, request) as run:
        await approval_notice(encrypting_worker, run)
        for keys in (f"other:{new_key()}", ""):
            env = {**encrypting_worker.env, ENCRYPTION_KEYS_ENV: keys}
            status = await script("approval_status", run.workflow_id, env=env)
            assert status.returncode == 1
            assert status.stdout == ""
            assert status.stderr.count("\n") == 1, status.stderr
            assert f"key ID {KEY_ID!r}" in status.stderr


async def test_bad_key_settings_stop_every_script_with_one_line(
    encrypting_worker: WorkerProcess,
) -> None:
    env = {**encrypting_worker.env, ENCRYPTION_KEYS_ENV: "k1:c2hvcnQ="}
    expected = f"{ENCRYPTION_KEYS_ENV}, entry 1 ('k1'): the key is 5 bytes; AES-256 needs 32"
    for command in (
        ("approval_status", "--pending"),
        ("start_workflow", "Summarise the report"),
        ("send_approval", "some-workflow", "approve"),
        ("worker", "--offline"),
        ("demo", "--offline", "--approve", "fine", "Summarise the report"),
    ):
        ran = await script(*command, env=env)
        assert ran.returncode == 1, (command, ran.output)
        assert "Traceback" not in ran.output, (command, ran.output)
        # The worker logs its model first; the last line is the reason it stops.
        assert ran.stderr.strip().splitlines()[-1].startswith(expected), (command, ran.output)
        assert ran.output.count(ENCRYPTION_KEYS_ENV) == 1, (command, ran.output)


async def test_a_worker_without_the_key_fails_tasks_not_the_run(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    keys: str,
    tmp_path: Path,
    analysis_activities: AnalysisActivities,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The run waits, intact, through the keyless worker's failed workflow tasks; a worker
    with the key, back on the queue, carries it to the end."""
    queue = f"enc-{uuid.uuid4().hex[:12]}"
    with_key = {**script_env(address_of(dev_server), llm_server.url, queue)}
    with_key[ENCRYPTION_KEYS_ENV] = keys
    workflow_id = f"enc-{uuid.uuid4().hex[:12]}"
    secret = marker()
    request = unique(f"Summarise the weekly report for {secret}")
    run = dev_server.client.get_workflow_handle(workflow_id)

    async def event_types() -> list[EventType.ValueType]:
        return [event.event_type async for event in run.fetch_history_events()]

    def client_holding(keys: str) -> Awaitable[Client]:
        ring = parse_keys(keys.split(","), source="test")
        return Client.connect(address_of(dev_server), data_converter=converter_with_keys(ring))

    # The keyless worker in this process (a process of its own costs seconds to start): the
    # worker's own wiring, with another key where the run's key should be.
    keyless = build_worker(await client_holding(f"other:{new_key()}"), queue, analysis_activities)
    with caplog.at_level(logging.WARNING):
        async with keyless:
            # Started as start_workflow starts it, by a client holding the keys; not by the
            # script itself, which stops waiting once the server says the run is not
            # progressing.
            await (await client_holding(keys)).start_workflow(
                WORKFLOW_TYPE,
                WorkflowInput(user_request=request),
                id=workflow_id,
                task_queue=queue,
                search_attributes=INITIAL_SEARCH_ATTRIBUTES,
                # The keyless worker keeps its retry of the failed task without answering:
                # the keyed worker gets the task once this timeout (default 10 s) ends it.
                task_timeout=KEYLESS_TASK_TIMEOUT,
            )
            # The worker logs why before the server records the failed task: wait for both.
            await wait_until(event_types, lambda types: WORKFLOW_TASK_FAILED in types)
            missing = [line for line in caplog.text.splitlines() if f"key ID {KEY_ID!r}" in line]
            assert "does not hold it" in missing[0]
            assert (await run.describe()).status == RUNNING

    async with worker_process(with_key, tmp_path / "keyed.log"):
        await wait_until(run.describe, lambda described: described.status != RUNNING)
        done = await script("approval_status", workflow_id, env=with_key)

    assert done.returncode == 0, done.output
    assert "auto_approved" in done.output
    assert secret in done.output
    assert secret.encode() not in await raw_history(dev_server, workflow_id)


async def test_a_run_outlives_a_key_rotation(
    dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer, tmp_path: Path
) -> None:
    """Started under the old key, decided after the new key was put first: the run reads its
    old payloads and writes new ones under the new key; a process holding both reads all of
    it, and the starter, which holds only the old key, names the new one."""
    old, new = f"k-old:{new_key()}", f"k-new:{new_key()}"
    before = script_env(address_of(dev_server), llm_server.url, f"enc-{uuid.uuid4().hex[:12]}")
    before[ENCRYPTION_KEYS_ENV] = old
    after = {**before, ENCRYPTION_KEYS_ENV: f"{new},{old}"}
    secret = marker()
    request = unique(f"Delete the archive of {secret}")

    async with (
        worker_process(before, tmp_path / "before.log") as worker,
        started_run(worker, dev_server, tmp_path, request) as run,
    ):
        notice = await approval_notice(worker, run)
        async with worker_process(after, tmp_path / "after.log") as rotated:
            worker.process.terminate()  # the old worker leaves; the rotated one carries on
            worker.process.wait()
            sent = await send_approval(rotated, run, notice.request_id, "approve")
            assert sent.returncode == 0, sent.output
            done = await run.finish()
            status = await script("approval_status", run.workflow_id, env=rotated.env)

    assert done.returncode == 1
    assert (
        done.output.strip()
        .splitlines()[-1]
        .startswith("A payload is encrypted with key ID 'k-new' and this process does not hold it")
    )
    assert status.returncode == 0, status.output
    assert secret in status.stdout
    assert "approved" in status.stdout
    stored = await raw_history(dev_server, run.workflow_id)
    assert b"k-old" in stored and b"k-new" in stored
    assert secret.encode() not in stored


async def test_the_demo_encrypts_too(
    encrypting_worker: WorkerProcess, dev_server: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The demo's own worker and client connect through the same helper: with keys set, its
    run is stored encrypted and it still shows the outcome in clear."""
    secret = marker()
    request = f"Delete the test data for {secret}"  # a request the offline rules map
    demo = ("demo", "--offline", "--approve", "fine", "--data-dir", str(tmp_path), request)
    done = await script(*demo, env=encrypting_worker.env)
    assert done.returncode == 0, done.output
    assert secret in done.stdout
    workflow_id = re.search(r"Started workflow (\S+)\.", done.stdout)
    assert workflow_id, done.stdout
    stored = await raw_history(dev_server, workflow_id[1])
    assert b"binary/encrypted" in stored
    assert secret.encode() not in stored
