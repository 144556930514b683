"""How fast the approval inbox answers with many runs waiting, beside send_approval.

uv run python -m benchmarks.inbox [--waiting-runs N] [--samples K] [--json PATH]

Starts its own in-memory dev server, a worker in this process (offline analysis, notices
to /dev/null) and the inbox in a thread; parks N runs waiting for a decision; then times
the pending page and ``GET /api/requests?status=pending`` (K each, a page of 25 runs),
decisions through the API, and the same decisions through ``client.decide.submit``
(K each). Targets: the list p50 < 300 ms, an API decision p50 < 100 ms.
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

from activities.propose_action import OfflineAnalysisActivities
from client.decide import submit
from client.listing import PENDING_RUNS_QUERY
from client.start import INITIAL_SEARCH_ATTRIBUTES
from client.status import query_status
from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE, WORKFLOW_TYPE
from dev_server import TEMPORAL_CLI
from inbox.accounts import new_token, set_password
from inbox.app import create_app
from inbox.background import serve_in_background
from inbox.service import MAX_PAGE_SIZE, PAGE_SIZE, TemporalService
from inbox.settings import InboxSettings
from models.models import ApprovalDecision, WorkflowInput, WorkflowResult
from worker_setup import build_worker

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
    while (await client.count_workflows(PENDING_RUNS_QUERY)).count < count:
        await asyncio.sleep(0.5)  # visibility catches up: polled, not a fixed wait
    return handles


async def visibility_page(client: Client) -> int:
    """What every pending list costs at least: one page of the visibility query."""
    executions = client.list_workflows(PENDING_RUNS_QUERY, page_size=PAGE_SIZE)
    await executions.fetch_next_page()
    return len(executions.current_page or [])


async def visibility_all(client: Client) -> int:
    """Every waiting run in one visibility list: what a list without pages reads."""
    return len([e async for e in client.list_workflows(PENDING_RUNS_QUERY)])


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


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
            loads = {"parked": load_average()}
            listing = await timed(lambda: visibility_page(env.client), args.samples)
            listing_all = await timed(lambda: visibility_all(env.client), min(args.samples, 5))
            one_status = await timed(lambda: query_status(env.client, handles[0].id), args.samples)
            loads["lists"] = load_average()
            api_list = await timed(lambda: http.get("/api/requests?status=pending"), args.samples)
            api_list_max = await timed(
                lambda: http.get(f"/api/requests?status=pending&page_size={MAX_PAGE_SIZE}"),
                args.samples,
            )
            page = await page_client(inbox.url)
            try:
                page_list = await timed(lambda: page.get("/"), args.samples)
            finally:
                await page.aclose()
            loads["decisions"] = load_average()
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
            loads["end"] = load_average()
    finally:
        inbox.stop()
        await env.shutdown()
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "waiting_runs": args.waiting_runs,
        "samples": args.samples,
        "page_size": PAGE_SIZE,
        "cpus": os.cpu_count(),
        "load_average": loads,
        "visibility_page_p50_ms": statistics.median(listing),
        "visibility_all_p50_ms": statistics.median(listing_all),
        "status_query_p50_ms": statistics.median(one_status),
        "pending_page_p50_ms": statistics.median(page_list),
        "pending_api_p50_ms": statistics.median(api_list),
        # The very first list: no status known yet, so one status query per row.
        "pending_api_first_load_ms": api_list[0],
        "pending_api_max_page_p50_ms": statistics.median(api_list_max),
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

    size = figures["page_size"]
    return "\n".join(
        [
            f"approval inbox with {figures['waiting_runs']} runs waiting, pages of {size} (p50)",
            f"  load average (1 min) at the lists     {figures['load_average']['lists'][0]:8.2f}",
            f"  one visibility page                   {figures['visibility_page_p50_ms']:8.1f} ms",
            f"  every waiting run in one list         {figures['visibility_all_p50_ms']:8.1f} ms",
            f"  one status query                      {figures['status_query_p50_ms']:8.1f} ms",
            f"  pending page (GET /)                  {figures['pending_page_p50_ms']:8.1f} ms"
            f"  ({verdict(figures['pending_page_p50_ms'], LIST_TARGET_MS)})",
            f"  GET /api/requests?status=pending      {figures['pending_api_p50_ms']:8.1f} ms"
            f"  ({verdict(figures['pending_api_p50_ms'], LIST_TARGET_MS)})",
            "  the same, first load (a query per row)"
            f"{figures['pending_api_first_load_ms']:8.1f} ms",
            f"  the same, pages of {MAX_PAGE_SIZE}                 "
            f"{figures['pending_api_max_page_p50_ms']:8.1f} ms",
            f"  decision through the API              {figures['api_decision_p50_ms']:8.1f} ms"
            f"  ({verdict(figures['api_decision_p50_ms'], DECISION_TARGET_MS)})",
            "  decision through client.decide.submit "
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
