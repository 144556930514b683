"""The webhook notifier, against a local HTTP receiver on 127.0.0.1 that tests script.

Unit level: the activity alone in an ``ActivityEnvironment``, one behaviour per HTTP answer.
Workflow level: the real worker wiring with the notifier pointed at the receiver, to show
that a flaky or broken webhook never stops a request from being decided, and that the
webhook's secrets (the URL's path and the bearer token) reach neither errors nor logs.
"""

import json
import logging
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.send_webhook_notice import WebhookNotifier, WebhookSettingsError, checked_webhook
from benchmarks.fake_openai import FakeOpenAIServer, send_json
from constants import SUBMIT_DECISION_UPDATE, WEBHOOK_TOKEN_ENV, WEBHOOK_URL_ENV
from dev_server import free_port
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    AuditEvent,
    Outcome,
    ProposedAction,
    WorkflowInput,
    WorkflowState,
    WorkflowStatus,
)
from tests.e2e import address_of, script, worker_process
from tests.helpers import (
    Run,
    TimeSkippingRuns,
    script_env,
    script_risky_proposal,
    start_run,
    status_of,
    wait_for_state,
    wait_until,
)

TOKEN = "secret-token-4f9a"
SECRET_PATH = "/services/T0SECRET/B0SECRET/xoxsecretpath"
# Basic-auth credentials in the URL itself, as some webhook providers hand them out.
URL_USER, URL_PASSWORD = "hookuser", "hunter2-pass"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict


class Receiver:
    """Records every POST; answers with the scripted statuses in order, then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._statuses: deque[int] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{SECRET_PATH}"

    @property
    def url_with_credentials(self) -> str:
        return self.url.replace("http://", f"http://{URL_USER}:{URL_PASSWORD}@")

    @property
    def host(self) -> str:
        """host:port, the only part of the URL messages and logs may show."""
        return f"127.0.0.1:{self._httpd.server_address[1]}"

    def answer(self, *statuses: int) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    def always(self, status: int) -> None:
        self.answer(*([status] * 100))

    def _next_status(self, received: Received) -> int:
        with self._lock:
            self.requests.append(received)
            return self._statuses.popleft() if self._statuses else 200

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver._next_status(Received(self.path, dict(self.headers), body))
                answer = b'{"ok": true}' if status == 200 else b'{"error": "scripted"}'
                send_json(self, status, answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def down_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{SECRET_PATH}"


def approval_request(workflow_id: str = "wf-1") -> ApprovalRequest:
    now = datetime.now(UTC)
    return ApprovalRequest(
        workflow_id=workflow_id,
        request_id="req-7c1e",
        user_request="Delete the staging bucket",
        proposed_action=ProposedAction(
            action_type="delete_bucket",
            description="Delete the staging bucket",
            reasoning="asked to",
            risky_action=True,
        ),
        risk_reasons=["destructive or irreversible operation"],
        requested_at=now,
        deadline=now + timedelta(seconds=300),
        approvers=["alice"],
    )


def assert_no_secrets(text: str) -> None:
    assert SECRET_PATH not in text
    assert "T0SECRET" not in text
    assert TOKEN not in text
    assert URL_USER not in text
    assert URL_PASSWORD not in text


@asynccontextmanager
async def webhook_notifier(url: str | None, token: str | None) -> AsyncIterator[WebhookNotifier]:
    """The notifier as the worker builds it: its own HTTP client, closed afterwards."""
    async with httpx2.AsyncClient(timeout=10) as http:
        yield WebhookNotifier(url, token, http)


async def send(url: str | None, token: str | None) -> object:
    async with webhook_notifier(url, token) as notifier:
        return await ActivityEnvironment().run(notifier.send_webhook_notice, approval_request())


async def send_failing(url: str) -> ApplicationError:
    with pytest.raises(ApplicationError) as failure:
        await send(url, TOKEN)
    assert_no_secrets(str(failure.value))
    assert failure.value.__cause__ is None  # the transport error (with the URL) is not chained
    return failure.value


# --- the activity alone ---------------------------------------------------------------------


async def test_delivers_a_slack_compatible_body_with_the_request_and_the_bearer_token(
    receiver: Receiver,
) -> None:
    delivery = await send(receiver.url, TOKEN)
    assert delivery.delivered is True
    assert delivery.detail == f"HTTP 200 from {receiver.url.split('/')[2]}"
    assert_no_secrets(delivery.detail)
    (received,) = receiver.requests
    assert received.path == SECRET_PATH
    assert received.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "req-7c1e" in received.body["text"]
    assert "Delete the staging bucket" in received.body["text"]
    assert received.body["approval_request"]["request_id"] == "req-7c1e"
    assert received.body["approval_request"]["workflow_id"] == "wf-1"
    assert received.body["approval_request"]["approvers"] == ["alice"]


async def test_without_a_token_no_authorization_header_is_sent(receiver: Receiver) -> None:
    delivery = await send(receiver.url, None)
    assert delivery.delivered is True
    assert "Authorization" not in receiver.requests[0].headers


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_server_errors_and_throttling_are_retryable(receiver: Receiver, status: int) -> None:
    receiver.answer(status)
    error = await send_failing(receiver.url)
    assert error.type == "WebhookRejected"
    assert not error.non_retryable
    assert f"HTTP {status}" in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_are_not_retried(receiver: Receiver, status: int) -> None:
    """A wrong URL or token will not fix itself: retrying only delays the audit entry."""
    receiver.answer(status)
    error = await send_failing(receiver.url)
    assert error.non_retryable
    assert f"HTTP {status}" in str(error)


async def test_an_unreachable_receiver_is_retryable_and_the_error_keeps_the_secrets(
    down_url: str,
) -> None:
    error = await send_failing(down_url)
    assert not error.non_retryable
    assert "unreachable" in str(error)
    assert down_url.split("/")[2] in str(error)  # the host, which is not a secret, helps


async def test_credentials_in_the_url_reach_neither_the_detail_the_errors_nor_the_logs(
    receiver: Receiver, down_url: str, worker_logs: pytest.LogCaptureFixture
) -> None:
    """``user:password@`` is part of the URL's netloc: only host and port may be shown."""
    delivered = await send(receiver.url_with_credentials, TOKEN)
    receiver.answer(401)
    refused = await send_failing(receiver.url_with_credentials)
    unreachable = await send_failing(
        down_url.replace("http://", f"http://{URL_USER}:{URL_PASSWORD}@")
    )

    assert delivered.delivered is True
    assert delivered.detail == f"HTTP 200 from {receiver.host}"
    assert refused.message == f"webhook at {receiver.host} answered HTTP 401"
    assert unreachable.message.startswith(f"webhook at {down_url.split('/')[2]} unreachable")
    assert_no_secrets(delivered.detail)
    assert_no_secrets(worker_logs.text)


async def test_the_http_client_logs_nothing_secret_even_at_debug(
    receiver: Receiver, worker_logs: pytest.LogCaptureFixture
) -> None:
    """httpx2 logs ``HTTP Request: POST <full URL>`` at INFO; a program that logs at INFO or
    DEBUG without turning httpx2 down must still never see the secret path."""
    delivery = await send(receiver.url_with_credentials, TOKEN)
    assert delivery.delivered is True
    assert receiver.requests[0].path == SECRET_PATH  # the secret was used, just not logged
    assert_no_secrets(worker_logs.text)


async def test_without_a_url_nothing_is_sent_and_delivery_is_false() -> None:
    delivery = await send(None, TOKEN)
    assert delivery.delivered is False
    assert WEBHOOK_URL_ENV in delivery.detail


# --- the settings, checked when the worker starts -------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/services/T0SECRET",
        "http://127.0.0.1:8080/services/T0SECRET",
        "http://localhost/services/T0SECRET",
        "http://[::1]:9000/services/T0SECRET",
    ],
)
def test_usable_webhook_urls_pass_unchanged_even_with_a_token(url: str) -> None:
    assert checked_webhook(url, TOKEN) == url


@pytest.mark.parametrize(
    ("url", "token", "expected"),
    [
        ("hooks.example.com/services/T0SECRET", None, "needs http:// or https:// and a host"),
        ("ftp://hooks.example.com/services/T0SECRET", None, "needs http:// or https://"),
        ("https:///services/T0SECRET", None, "needs http:// or https:// and a host"),
        ("https://hooks.example.com:99999/services/T0SECRET", None, "no valid port"),
        ("https://hooks.example.com:web/services/T0SECRET", None, "no valid port"),
        ("http://hooks.example.com/services/T0SECRET", TOKEN, "in clear; use https://"),
    ],
)
def test_unusable_webhook_settings_are_named_without_the_secret(
    url: str, token: str | None, expected: str
) -> None:
    with pytest.raises(WebhookSettingsError) as refused:
        checked_webhook(url, token)
    message = str(refused.value)
    assert WEBHOOK_URL_ENV in message and expected in message
    assert "\n" not in message
    assert_no_secrets(message)


@pytest.mark.parametrize("program", ["worker", "demo"])
async def test_a_bad_webhook_url_is_refused_in_one_line_before_anything_starts(
    program: str, tmp_path: Path
) -> None:
    """Like a bad model URL: one line naming the setting, exit 1, nothing tried (the demo
    starts no embedded server, the worker connects to nothing)."""
    port = free_port()  # nothing listens: the check must come before any connection
    env = script_env(f"127.0.0.1:{port}", f"http://127.0.0.1:{port}/v1", "unused-queue")
    env.update(
        {WEBHOOK_URL_ENV: f"http://hooks.example.com{SECRET_PATH}", WEBHOOK_TOKEN_ENV: TOKEN}
    )
    args = ["--offline"]
    if program == "demo":
        args += ["--approve", "ok", "--data-dir", str(tmp_path), "Delete the old backups"]
    ran = await script(program, *args, env=env)
    assert not (tmp_path / "demo.db").exists()
    assert ran.returncode == 1, ran.output
    assert "Traceback" not in ran.output
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith(f"{WEBHOOK_TOKEN_ENV} is set but {WEBHOOK_URL_ENV}"), ran.stderr
    assert_no_secrets(ran.output)


# --- in the workflow ------------------------------------------------------------------------


@pytest.fixture
def risky_request(llm_server: FakeOpenAIServer, workflow_id: str) -> str:
    """A request text unique to the test, which the LLM answers with a risky proposal."""
    return script_risky_proposal(
        llm_server, f"Revoke the API keys of team {workflow_id}", action_type="revoke_keys"
    )


@asynccontextmanager
async def run_notifying(
    runs: TimeSkippingRuns, receiver: Receiver, run_input: WorkflowInput, url: str | None = None
) -> AsyncIterator[Run]:
    """The run, on the real worker wiring with its webhook notices going to ``receiver``
    (at ``url``, one of its URLs; by default the plain one)."""
    async with (
        webhook_notifier(url or receiver.url, TOKEN) as notifier,
        runs.started(run_input, notifier=notifier) as handle,
    ):
        yield handle


async def approve(handle: WorkflowHandle, status: WorkflowStatus) -> None:
    assert status.approval_request is not None
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE,
        ApprovalDecision(
            request_id=status.approval_request.request_id, approved=True, reviewer="alice"
        ),
    )


def has_event(name: str) -> Callable[[WorkflowStatus], bool]:
    return lambda status: any(event.event == name for event in status.audit_trail)


def only(trail: list[AuditEvent], name: str) -> AuditEvent:
    (event,) = [event for event in trail if event.event == name]
    return event


@pytest.fixture
def worker_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every record, down to DEBUG, from every logger (the HTTP client's too): a
    program embedding the worker may log anything, and no setting may let a secret out."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx2")
    return caplog


async def test_a_webhook_failing_twice_is_retried_until_delivered_and_the_run_waits(
    runs: TimeSkippingRuns,
    risky_request: str,
    receiver: Receiver,
    worker_logs: pytest.LogCaptureFixture,
) -> None:
    receiver.answer(500, 500)
    async with run_notifying(runs, receiver, WorkflowInput(user_request=risky_request)) as handle:
        await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        # Skip past the retry backoff (1 s, then 2 s) instead of living through it.
        await runs.env.sleep(timedelta(seconds=5))
        status = await wait_until(lambda: status_of(handle), has_event("webhook_delivered"))
        assert status.state == WorkflowState.AWAITING_APPROVAL
        await approve(handle, status)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert len(receiver.requests) == 3
    assert all(
        r.body["approval_request"]["workflow_id"] == runs.workflow_id for r in receiver.requests
    )
    delivered = only(result.audit_trail, "webhook_delivered")
    assert delivered.detail == f"HTTP 200 from {receiver.url.split('/')[2]}"
    assert not [e for e in result.audit_trail if e.event == "notification_failed"]
    assert "answered HTTP 500" in worker_logs.text  # the failed attempts were logged...
    assert_no_secrets(worker_logs.text)  # ...without the secrets
    assert_no_secrets(json.dumps(result.model_dump(mode="json")))


async def test_a_webhook_that_refuses_is_recorded_once_and_the_run_can_still_be_approved(
    runs: TimeSkippingRuns,
    risky_request: str,
    receiver: Receiver,
    worker_logs: pytest.LogCaptureFixture,
) -> None:
    """A broken notice must not strand the request: it stays findable and decidable."""
    receiver.always(404)
    async with run_notifying(runs, receiver, WorkflowInput(user_request=risky_request)) as handle:
        status = await wait_until(lambda: status_of(handle), has_event("notification_failed"))
        assert status.state == WorkflowState.AWAITING_APPROVAL
        await approve(handle, status)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert len(receiver.requests) == 1  # a 404 is not retried
    failed = only(result.audit_trail, "notification_failed")
    assert failed.detail == f"webhook: webhook at {receiver.url.split('/')[2]} answered HTTP 404"
    assert not [e for e in result.audit_trail if e.event == "webhook_delivered"]
    assert "answered HTTP 404" in worker_logs.text
    assert_no_secrets(worker_logs.text)
    assert_no_secrets(json.dumps(result.model_dump(mode="json")))


async def test_a_slow_webhook_does_not_push_the_timeout_past_the_announced_deadline(
    runs: TimeSkippingRuns,
    risky_request: str,
    receiver: Receiver,
) -> None:
    receiver.answer(500, 500)
    run_input = WorkflowInput(user_request=risky_request, approval_timeout_seconds=60)
    async with run_notifying(runs, receiver, run_input) as handle:
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        result = await handle.result()
    assert status.approval_request is not None
    assert result.outcome == Outcome.TIMED_OUT
    assert len(receiver.requests) == 3
    timed_out = only(result.audit_trail, "timed_out")
    late_by = timed_out.at - status.approval_request.deadline
    assert timedelta(0) <= late_by < timedelta(seconds=1)  # not 1 s + 2 s of backoff late


async def test_url_credentials_stay_out_of_the_audit_trail_and_the_worker_logs(
    runs: TimeSkippingRuns,
    risky_request: str,
    receiver: Receiver,
    worker_logs: pytest.LogCaptureFixture,
) -> None:
    """A refused delivery is recorded and logged by host and port, never with the
    ``user:password@`` of the configured URL."""
    receiver.always(403)
    run_input = WorkflowInput(user_request=risky_request)
    async with run_notifying(runs, receiver, run_input, receiver.url_with_credentials) as handle:
        status = await wait_until(lambda: status_of(handle), has_event("notification_failed"))
        await approve(handle, status)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    failed = only(result.audit_trail, "notification_failed")
    assert failed.detail == f"webhook: webhook at {receiver.host} answered HTTP 403"
    assert "answered HTTP 403" in worker_logs.text
    assert_no_secrets(worker_logs.text)
    assert_no_secrets(json.dumps(result.model_dump(mode="json")))


# --- the real worker process ----------------------------------------------------------------


async def test_the_worker_process_logs_no_webhook_secret(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    risky_request: str,
    receiver: Receiver,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
) -> None:
    """``python -m worker`` as users run it (INFO logging), with a webhook whose URL carries
    a secret path, and a bearer token: the notice is delivered, and nothing the worker
    prints contains either."""
    env = script_env(address_of(dev_server), llm_server.url, task_queue)
    env.update({WEBHOOK_URL_ENV: receiver.url, WEBHOOK_TOKEN_ENV: TOKEN})
    async with worker_process(env, tmp_path / "worker.log") as worker:
        handle = await start_run(
            dev_server.client, task_queue, workflow_id, WorkflowInput(user_request=risky_request)
        )
        try:
            await wait_until(lambda: status_of(handle), has_event("webhook_delivered"))
        finally:
            await handle.terminate("end of test")
        output = worker.output()
    assert receiver.requests[0].path == SECRET_PATH
    assert receiver.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert f"Workflow ID: {workflow_id}" in output  # INFO logging and the notice were on
    assert_no_secrets(output)
