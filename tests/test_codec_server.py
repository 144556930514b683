"""``python -m codec_server`` as a process: CORS, the token, and decoding what a worker
wrote, with a plain HTTP client and with ``temporal workflow show --codec-endpoint``."""

import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from benchmarks.fake_openai import FakeOpenAIServer
from constants import CODEC_CORS_ORIGIN_ENV, CODEC_TOKEN_ENV, ENCRYPTION_KEYS_ENV
from dev_server import free_port
from encryption.codec import NOT_ENCRYPTED_REASON
from tests.e2e import (
    WorkerProcess,
    address_of,
    approval_notice,
    listening_script,
    script,
    started_run,
    temporal_cli,
    unique,
    worker_process,
)
from tests.helpers import script_env, wait_until

UI_ORIGIN = "http://localhost:8233"
TOKEN = "codec-test-token-0123456789"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
}


@dataclass(frozen=True)
class CodecServer:
    url: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def encrypted_env(dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer) -> dict[str, str]:
    env = script_env(address_of(dev_server), llm_server.url, f"codec-{uuid.uuid4().hex[:12]}")
    env[ENCRYPTION_KEYS_ENV] = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    return env


@pytest.fixture(scope="module")
async def codec_server(
    encrypted_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CodecServer]:
    port = free_port()
    env = {**encrypted_env, CODEC_TOKEN_ENV: TOKEN, CODEC_CORS_ORIGIN_ENV: UI_ORIGIN}
    log_path = tmp_path_factory.mktemp("codec") / "codec_server.log"
    async with listening_script("codec_server", port, env, log_path):
        yield CodecServer(f"http://127.0.0.1:{port}", env)


@pytest.fixture(scope="module")
async def encrypting_worker(
    encrypted_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("codec-worker") / "worker.log"
    async with worker_process(encrypted_env, log) as worker:
        yield worker


@pytest.fixture(scope="module")
async def finished_run(
    encrypting_worker: WorkerProcess, dev_server: WorkflowEnvironment
) -> tuple[str, str, Payloads]:
    """An auto-approved run's ID, request, and its result exactly as the server stores it
    (the worker wrote it)."""
    request = unique(f"Summarise the report for client {uuid.uuid4().hex[:10]}")
    workflow_id = f"codec-{uuid.uuid4().hex[:12]}"
    done = await script(
        "start_workflow", request, "--workflow-id", workflow_id, env=encrypting_worker.env
    )
    assert done.returncode == 0, done.output
    handle = dev_server.client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            return workflow_id, request, event.workflow_execution_completed_event_attributes.result
    raise AssertionError("the run did not complete")


def body(payloads: Payloads) -> str:
    return json_format.MessageToJson(payloads)


async def test_preflight_is_answered_for_the_web_ui_origin_only(codec_server: CodecServer) -> None:
    async with httpx2.AsyncClient(base_url=codec_server.url) as http:
        allowed = await http.options("/decode", headers={"Origin": UI_ORIGIN, **PREFLIGHT})
        other = await http.options(
            "/decode", headers={"Origin": "http://evil.example", **PREFLIGHT}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "x-namespace" in allowed.headers["access-control-allow-headers"].lower()
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


async def test_no_token_no_payloads(
    codec_server: CodecServer, finished_run: tuple[str, str, Payloads]
) -> None:
    _, request, result = finished_run
    async with httpx2.AsyncClient(base_url=codec_server.url) as http:
        refusals = [
            await http.post("/decode", content=body(result)),
            await http.post(
                "/decode", content=body(result), headers={"Authorization": "Bearer wrong"}
            ),
            await http.post(f"/{TOKEN[:-1]}x/decode", content=body(result)),
            await http.post(
                "/decode", content=body(result), headers={"Authorization": f"Basic {TOKEN}"}
            ),
        ]
    for refused in refusals:
        assert refused.status_code == 401
        assert refused.json() == {"error": "A valid token is required."}
        assert request not in refused.text


async def test_decodes_what_the_worker_wrote(
    codec_server: CodecServer, finished_run: tuple[str, str, Payloads]
) -> None:
    _, _, result = finished_run
    headers = {"Origin": UI_ORIGIN, "X-Namespace": "default"}
    async with httpx2.AsyncClient(base_url=codec_server.url, headers=headers) as http:
        by_header = await http.post(
            "/decode", content=body(result), headers={"Authorization": f"Bearer {TOKEN}"}
        )
        by_path = await http.post(f"/{TOKEN}/decode", content=body(result))
    for answer in (by_header, by_path):
        assert answer.status_code == 200, answer.text
        assert answer.headers["access-control-allow-origin"] == UI_ORIGIN
        decoded = json_format.Parse(answer.text, Payloads())
        (value,) = pydantic_data_converter.payload_converter.from_payloads(decoded.payloads)
        assert value["outcome"] == "auto_approved"
        assert value["message"].startswith("Auto-approved")
        # What the decoded result says is nowhere in what the server stores.
        assert value["message"].encode() not in result.SerializeToString()


async def test_encode_then_decode_round_trips(codec_server: CodecServer) -> None:
    plain = Payloads(payloads=pydantic_data_converter.payload_converter.to_payloads(["secret"]))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(base_url=codec_server.url, headers=auth) as http:
        encoded = await http.post("/encode", content=body(plain))
        assert b"secret" not in encoded.content
        decoded = await http.post("/decode", content=encoded.text)
        garbage = await http.post("/decode", content="{not json")
    assert json_format.Parse(decoded.text, Payloads()) == plain
    assert garbage.status_code == 400
    assert "protobuf JSON" in garbage.json()["error"]


async def test_temporal_workflow_show_decodes_through_it(
    codec_server: CodecServer, finished_run: tuple[str, str, Payloads], tmp_path: Path
) -> None:
    workflow_id, request, _ = finished_run
    show = ("workflow", "show", "--workflow-id", workflow_id, "--detailed")
    plain = await temporal_cli(*show, env=codec_server.env)
    decoded = await temporal_cli(
        *show,
        "--codec-endpoint",
        codec_server.url,
        "--codec-auth",
        f"Bearer {TOKEN}",
        env=codec_server.env,
    )
    assert plain.returncode == 0, plain.output
    assert request not in plain.output
    assert decoded.returncode == 0, decoded.output
    assert request in decoded.output


async def test_temporal_workflow_signal_decides_only_through_it(
    codec_server: CodecServer,
    encrypting_worker: WorkerProcess,
    dev_server: WorkflowEnvironment,
    tmp_path: Path,
) -> None:
    """The notice's CLI command, as typed, is sent in clear: the run refuses and records it
    (a client without the key decides nothing). With ``--codec-endpoint`` the CLI encrypts
    the same decision, and it decides."""
    request = unique("Delete the stale rows of the staging invoices table")
    async with started_run(encrypting_worker, dev_server, tmp_path, request) as run:
        notice = await approval_notice(encrypting_worker, run)
        assert "--codec-endpoint <codec-server-url>" in encrypting_worker.output()
        signal = ("workflow", "signal", "--workflow-id", run.workflow_id)
        signal += ("--name", notice.signal_name, "--input", notice.signal_input)
        plain = await temporal_cli(*signal, env=codec_server.env)
        status = await wait_until(
            lambda: script("approval_status", run.workflow_id, env=encrypting_worker.env),
            lambda ran: "decision_refused" in ran.stdout,
        )
        through_codec = await temporal_cli(
            *signal,
            "--codec-endpoint",
            codec_server.url,
            "--codec-auth",
            f"Bearer {TOKEN}",
            env=codec_server.env,
        )
        done = await run.finish()
    assert plain.returncode == 0, plain.output  # fire and forget: accepted by the server
    assert f"could not be decoded: {NOT_ENCRYPTED_REASON}" in status.stdout
    assert through_codec.returncode == 0, through_codec.output
    assert done.returncode == 0, done.output
    assert "approved" in done.output


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({CODEC_TOKEN_ENV: ""}, f"Set {CODEC_TOKEN_ENV} to a secret of at least 16 characters"),
        ({ENCRYPTION_KEYS_ENV: ""}, "No keys to decode with"),
        ({CODEC_CORS_ORIGIN_ENV: "localhost:8233"}, "is not an origin like"),
        ({ENCRYPTION_KEYS_ENV: "k1"}, "entry 1 is not key-id:base64-key"),
    ],
)
async def test_bad_settings_are_one_line(
    encrypted_env: dict[str, str], change: dict[str, str], expected: str
) -> None:
    env = {**encrypted_env, CODEC_TOKEN_ENV: TOKEN, **change}
    ran = await script("codec_server", "--port", str(free_port()), env=env)
    assert ran.returncode == 1
    assert ran.stderr.count("\n") == 1 and expected in ran.stderr, ran.output
