"""How fast the approval inbox answers with many runs waiting, beside send_approval.

uv run python -m benchmarks.inbox [--waiting-runs N] [--samples K] [--json PATH]

Starts its own in-memory dev server, a worker in this process (offline analysis, notices
to /dev/null) and the inbox in a thread; parks N runs waiting for a decision; then times
the pending page and ``GET /api/requests?status=pending`` (K each), decisions through the
API, and the same decisions through ``send_approval``'s ``submit`` (K each). Targets: the
list p50 < 300 ms, an API decision p50 < 100 ms.
"""

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.openai_responses import OfflineAnalysisActivities
from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE, WORKFLOW_TYPE
from dev_server import TEMPORAL_CLI
from inbox.accounts import new_token, set_password
from inbox.app import create_app
from inbox.background import serve_in_background
from inbox.service import LIST_LIMIT, PENDING_QUERY, TemporalService
from inbox.settings import InboxSettings
from models.models import ApprovalDecision, WorkflowInput, WorkflowResult
from send_approval import submit
from start_workflow import INITIAL_SEARCH_ATTRIBUTES
from worker import build_worker

LIST_TARGET_MS = 300.0
DECISION_TARGET_MS = 100.0
START_CONCURRENCY = 50


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.inbox", description=__doc__.splitlines()[0])
    parser.add_argument("--waiting-runs", type=int, default=1000, metavar="N")
    parser.add_argument("--samples", type=int, default=20, metavar="K")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    return parser.parse_args(argv)


async def timed(call: Callable[[], Awaitable[Any]], samples: int) -> list[float]:
    """Milliseconds of each of ``samples`` sequential calls."""
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        await call()
        durations.append((time.perf_counter() - started) * 1000)
    return durations


async def park_runs(client: Client, queue: str, count: int) -> list[WorkflowHandle[Any, Any]]:
    """Start ``count`` runs that must wait for a person; return once all of them wait."""
    gate = asyncio.Semaphore(START_CONCURRENCY)
    prefix = f"bench-inbox-{uuid.uuid4().hex[:6]}"

    async def start(number: int) -> WorkflowHandle[Any, Any]:
        async with gate:
            return await client.start_workflow(
                WORKFLOW_TYPE,
                WorkflowInput(user_request=f"Delete test rows {number}", require_approval=True),
                id=f"{prefix}-{number}",
                task_queue=queue,
                result_type=WorkflowResult,
                search_attributes=INITIAL_SEARCH_ATTRIBUTES,
            )

    handles = await asyncio.gather(*(start(n) for n in range(count)))
    while (await client.count_workflows(PENDING_QUERY)).count < count:
        await asyncio.sleep(0.5)  # visibility catches up: polled, not a fixed wait
    return handles


async def list_pending(client: Client) -> int:
    """What every pending list costs at least: the visibility query itself."""
    return len([e async for e in client.list_workflows(PENDING_QUERY, limit=LIST_LIMIT)])


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI),
        data_converter=pydantic_data_converter,
        search_attributes=[SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)],
        dev_server_log_level="error",
    )
    address = env.client.service_client.config.target_host
    users = workdir / "users.json"
    set_password(users, "bench", "bench-password")
    token = new_token(users, "bench")

    async def connect() -> Client:
        return await Client.connect(address, data_converter=pydantic_data_converter)

    inbox = serve_in_background(
        create_app(InboxSettings(users_file=users), TemporalService(connect))
    )
    queue = f"bench-inbox-{uuid.uuid4().hex[:6]}"
    worker = build_worker(
        env.client,
        queue,
        OfflineAnalysisActivities(),
        max_cached_workflows=args.waiting_runs + 100,
    )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            worker,
            httpx2.AsyncClient(base_url=inbox.url, headers=headers, timeout=120) as http,
        ):
            handles = await park_runs(env.client, queue, args.waiting_runs)
            listing = await timed(lambda: list_pending(env.client), args.samples)
            api_list = await timed(lambda: http.get("/api/requests?status=pending"), args.samples)
            page = await page_client(inbox.url)
            try:
                page_list = await timed(lambda: page.get("/"), args.samples)
            finally:
                await page.aclose()
            to_decide = iter(handles)

            async def api_decision() -> None:
                answer = await http.post(
                    f"/api/requests/{next(to_decide).id}/decision", json={"approved": False}
                )
                answer.raise_for_status()

            async def cli_decision() -> None:
                handle = next(to_decide)
                status = await handle.query("get_status")
                decision = ApprovalDecision(
                    request_id=status["approval_request"]["request_id"],
                    approved=False,
                    reviewer="bench",
                    decided_at=datetime.now(UTC),
                )
                await submit(env.client, handle.id, decision)

            api_decisions = await timed(api_decision, args.samples)
            cli_decisions = await timed(cli_decision, args.samples)
    finally:
        inbox.stop()
        await env.shutdown()
    return {
        "waiting_runs": args.waiting_runs,
        "visibility_list_p50_ms": statistics.median(listing),
        "pending_page_p50_ms": statistics.median(page_list),
        "pending_api_p50_ms": statistics.median(api_list),
        "api_decision_p50_ms": statistics.median(api_decisions),
        "send_approval_submit_p50_ms": statistics.median(cli_decisions),
    }


async def page_client(url: str) -> httpx2.AsyncClient:
    """A signed-in browser-like client for the pages."""
    import re

    client = httpx2.AsyncClient(base_url=url, timeout=120, headers={"Origin": url})
    form = (await client.get("/signin")).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None
    await client.post(
        "/signin",
        data={"username": "bench", "password": "bench-password", "csrf_token": token[1]},
    )
    return client


def report(figures: dict[str, Any]) -> str:
    def verdict(value: float, target: float) -> str:
        return f"target < {target:g} ms: {'met' if value < target else 'MISSED'}"

    return "\n".join(
        [
            f"approval inbox with {figures['waiting_runs']} runs waiting (p50)",
            f"  the visibility query alone            {figures['visibility_list_p50_ms']:8.1f} ms",
            f"  pending page (GET /)                  {figures['pending_page_p50_ms']:8.1f} ms"
            f"  ({verdict(figures['pending_page_p50_ms'], LIST_TARGET_MS)})",
            f"  GET /api/requests?status=pending      {figures['pending_api_p50_ms']:8.1f} ms"
            f"  ({verdict(figures['pending_api_p50_ms'], LIST_TARGET_MS)})",
            f"  decision through the API              {figures['api_decision_p50_ms']:8.1f} ms"
            f"  ({verdict(figures['api_decision_p50_ms'], DECISION_TARGET_MS)})",
            "  decision through send_approval.submit "
            f"{figures['send_approval_submit_p50_ms']:8.1f} ms",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as workdir,
        open(os.devnull, "w") as quiet,
        contextlib.redirect_stdout(quiet),  # a thousand approval notices
    ):
        figures = asyncio.run(measure(args, Path(workdir)))
    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
