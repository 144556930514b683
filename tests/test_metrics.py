"""Metrics end to end: a ``python -m worker`` with ``HITL_METRICS_ADDRESS`` serves them, and
each of the sample's counters moves by exactly the runs that should move it."""

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from temporalio.testing import WorkflowEnvironment

from benchmarks.fake_openai import FakeOpenAIServer, http_error
from constants import METRICS_ADDRESS_ENV
from dev_server import free_port
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
from tests.helpers import script_env

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match or match["name"] != name:
            continue
        found = dict(LABEL.findall(match["labels"] or ""))
        if all(found.get(key) == value for key, value in labels.items()):
            total += float(match["value"])
    return total


@pytest.fixture(scope="module")
async def metrics_worker(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkerProcess]:
    env = script_env(address_of(dev_server), llm_server.url, f"metrics-{uuid.uuid4().hex[:12]}")
    env[METRICS_ADDRESS_ENV] = f"127.0.0.1:{free_port()}"
    log = tmp_path_factory.mktemp("metrics") / "worker.log"
    async with worker_process(env, log) as worker:
        yield worker


async def scrape(worker: WorkerProcess) -> str:
    async with httpx2.AsyncClient() as http:
        answer = await http.get(f"http://{worker.env[METRICS_ADDRESS_ENV]}/metrics")
    answer.raise_for_status()
    return answer.text


async def test_each_counter_moves_with_its_runs(
    metrics_worker: WorkerProcess,
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    worker = metrics_worker
    before = await scrape(worker)

    async with started_run(worker, dev_server, tmp_path, unique("Summarise the report")) as run:
        assert (await run.finish()).returncode == 0
    for verdict in ("approve", "reject"):
        async with started_run(worker, dev_server, tmp_path, unique("Delete the cache")) as run:
            notice = await approval_notice(worker, run)
            sent = await send_approval(worker, run, notice.request_id, verdict)
            assert sent.returncode == 0, sent.output
            await run.finish()
    timeout = ("--approval-timeout", "1")
    async with started_run(worker, dev_server, tmp_path, unique("Drop a table"), *timeout) as run:
        assert "timed_out" in (await run.finish()).output
    failing = unique("Summarise the minutes")
    llm_server.on(failing, http_error(400, "no such model"))
    async with started_run(worker, dev_server, tmp_path, failing) as run:
        assert "analysis_failed" in (await run.finish()).output

    after = await scrape(worker)

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("hitl_approvals_requested") == 3
    for outcome in ("auto_approved", "approved", "rejected", "timed_out", "analysis_failed"):
        assert moved("hitl_runs_finished", outcome=outcome) == 1, outcome
    assert moved("hitl_time_to_decision_count", outcome="approved") == 1
    assert moved("hitl_time_to_decision_count", outcome="rejected") == 1
    assert moved("hitl_time_to_decision_count") == 2  # a timeout has no decision
    # Four runs asked the model once each and got an answer; one was refused (HTTP 400).
    assert moved("hitl_model_call_attempts", result="ok") == 4
    assert moved("hitl_model_call_attempts", result="error") == 1
    assert moved("hitl_model_call_latency_count") == 5
    # Buckets fit people (up to a week) and models (up to two minutes), not the SDK's defaults.
    assert re.search(r'hitl_time_to_decision_bucket\{[^}]*le="604800000"', after)
    assert re.search(r'hitl_model_call_latency_bucket\{[^}]*le="120000"', after)
    # The SDK's own metrics come out of the same endpoint.
    assert moved("temporal_workflow_completed") >= 5


async def test_a_bad_metrics_address_stops_the_worker_in_one_line(
    dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer
) -> None:
    env = script_env(address_of(dev_server), llm_server.url, "metrics-unused")
    env[METRICS_ADDRESS_ENV] = "localhost"
    ran = await script("worker", "--offline", env=env)
    assert ran.returncode == 1
    assert "Traceback" not in ran.output
    last = ran.stderr.strip().splitlines()[-1]
    assert last.startswith(f"Cannot serve metrics at {METRICS_ADDRESS_ENV}=localhost"), ran.output
