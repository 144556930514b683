"""What a real local model costs: load time and analysis time per request, beside the stand-in.

uv run python -m benchmarks.local_model [--requests N] [--loads L] [--model-path F] [--json PATH]

Needs the local-llm group (``uv sync --group local-llm``). Starts llama.cpp's server
(``local_llm``) ``L`` times to time the model load, then runs the real analysis activity
(schema-constrained Chat Completions, parsing included) ``N`` times against it and ``N``
times against the tests' stand-in server, cycling through safe and risky requests. Prints
p50 and p95 of each; a malformed answer counts as a failure and is not timed.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from openai import AsyncOpenAI
from temporalio.testing import ActivityEnvironment

from activities.openai_responses import AnalysisActivities
from benchmarks.phases import percentile
from console_format import terminal_safe
from local_llm.model_file import ModelFileError, checked_model, packaged_model
from local_llm.server import LocalModelError, serving
from models.models import AnalysisRequest
from tests.fake_openai import FakeOpenAIServer

REQUESTS = (
    "Summarise the weekly sales report",
    "Delete all inactive users from the production database",
    "List the open support tickets",
    "Send the newsletter to all subscribers",
    "Check the disk usage of the build server",
    "Transfer 500 dollars to ACME",
)
# Far above any answer, so a slow one is measured rather than cut off.
REQUEST_TIMEOUT_SECONDS = 600


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.local_model", description=__doc__)
    parser.add_argument("--requests", type=int, default=12, metavar="N")
    parser.add_argument("--loads", type=int, default=3, metavar="L")
    parser.add_argument("--model-path", type=Path, metavar="FILE")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.loads < 1:
        parser.error("--requests and --loads must be at least 1")
    return args


async def analysis_seconds(base_url: str, model: str, count: int) -> tuple[list[float], int]:
    """Time ``count`` analyses through the real activity; also count the failed ones."""
    client = AsyncOpenAI(
        base_url=base_url, api_key="unused", max_retries=0, timeout=REQUEST_TIMEOUT_SECONDS
    )
    activities = AnalysisActivities(client, model, chat_completions=True)
    times, failures = [], 0
    try:
        for index in range(count):
            request = AnalysisRequest(user_request=REQUESTS[index % len(REQUESTS)])
            started = time.monotonic()
            try:
                await ActivityEnvironment().run(activities.analyze_request, request)
            except Exception as err:  # a malformed answer or a server error: counted, shown
                failures += 1
                print(terminal_safe(f"  failed: {request.user_request!r}: {err}"), file=sys.stderr)
                continue
            times.append(time.monotonic() - started)
    finally:
        await client.close()
    return times, failures


def summary(prefix: str, seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    return {
        f"{prefix}_p50_ms": 1000 * percentile(seconds, 50),
        f"{prefix}_p95_ms": 1000 * percentile(seconds, 95),
    }


def measure(args: argparse.Namespace, model_path: Path) -> dict[str, float]:
    loads: list[float] = []
    for _ in range(args.loads - 1):  # the last load serves the analyses below
        with serving(model_path) as model:
            loads.append(model.load_seconds)
    with serving(model_path) as model:
        loads.append(model.load_seconds)
        timed = analysis_seconds(model.base_url, model.name, args.requests)
        local, local_failed = asyncio.run(timed)
    stand_in_server = FakeOpenAIServer().start()
    try:
        stand_in, _ = asyncio.run(analysis_seconds(stand_in_server.url, "stand-in", args.requests))
    finally:
        stand_in_server.stop()
    return {
        **summary("model_load", loads),
        **summary("local_analysis", local),
        "local_analysis_failed": local_failed,
        **summary("stand_in_analysis", stand_in),
    }


ROWS: tuple[tuple[str, str], ...] = (
    ("model_load_p50_ms", "model load p50, ms"),
    ("model_load_p95_ms", "model load p95, ms"),
    ("local_analysis_p50_ms", "analysis p50, ms (local model)"),
    ("local_analysis_p95_ms", "analysis p95, ms (local model)"),
    ("local_analysis_failed", "malformed or failed answers (local model)"),
    ("stand_in_analysis_p50_ms", "analysis p50, ms (stand-in)"),
    ("stand_in_analysis_p95_ms", "analysis p95, ms (stand-in)"),
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model_path = checked_model(args.model_path) if args.model_path else packaged_model()
        figures = measure(args, model_path)
    except (ModelFileError, LocalModelError) as err:
        print(err, file=sys.stderr)
        return 1
    print(f"{model_path.name}: {args.loads} loads, {args.requests} requests each")
    for key, label in ROWS:
        if key in figures:
            print(f"  {label:<45} {figures[key]:>10.0f}")
    if args.json:
        args.json.write_text(json.dumps({"model": model_path.name, **figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
