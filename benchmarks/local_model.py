"""What a real local model proposes, and what it costs: right tool and right target on a
fixed set of requests, load time and analysis time, beside the stand-in.

uv run python -m benchmarks.local_model [--requests N] [--loads L] [--model-path F] [--json PATH]

Needs the local-llm group (``uv sync --group local-llm``). Starts llama.cpp's server
(``local_llm``) ``L`` times to time the model load, then runs the real analysis activity
(schema-constrained Chat Completions, parsing included) on each request of
``benchmarks/proposal_cases.py`` (``N``: the first N, cycling past the end) and scores the
tool call it proposes: the right tool, and the right target (the rows it selects on the
seeded database, the invoice, account, amount, user or list). The same requests go to the
tests' stand-in server for comparison of time only. Prints the counts with the model named,
and p50 and p95 of each time; a malformed answer is wrong and is not timed.
"""

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from openai import AsyncOpenAI
from temporalio.testing import ActivityEnvironment

from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer
from benchmarks.phases import percentile
from benchmarks.proposal_cases import CASES, Case
from benchmarks.proposal_score import Score, score, seeded_database
from console_format import terminal_safe
from local_llm.model_file import ModelFileError, checked_model, model_name, packaged_model
from local_llm.server import LocalModelError, serving
from models.models import AnalysisRequest, ProposedAction

# Far above any answer, so a slow one is measured rather than cut off.
REQUEST_TIMEOUT_SECONDS = 600


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks.local_model", description=__doc__)
    parser.add_argument("--requests", type=int, default=len(CASES), metavar="N")
    parser.add_argument("--loads", type=int, default=3, metavar="L")
    parser.add_argument("--model-path", type=Path, metavar="FILE")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.loads < 1:
        parser.error("--requests and --loads must be at least 1")
    return args


@dataclass
class Analyses:
    """Each request's answer (None: malformed or failed) and the time of each good one."""

    answers: list[tuple[Case, ProposedAction | None]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(action is None for _, action in self.answers)


async def analyses(base_url: str, model: str, count: int) -> Analyses:
    """Run the real activity on ``count`` requests of the fixed set, timing each."""
    client = AsyncOpenAI(
        base_url=base_url, api_key="unused", max_retries=0, timeout=REQUEST_TIMEOUT_SECONDS
    )
    activities = AnalysisActivities(client, model, chat_completions=True)
    done = Analyses()
    try:
        for index in range(count):
            case = CASES[index % len(CASES)]
            started = time.monotonic()
            try:
                action = await ActivityEnvironment().run(
                    activities.analyze_request, AnalysisRequest(user_request=case.request)
                )
            except Exception as err:  # a malformed answer or a server error: counted, shown
                done.answers.append((case, None))
                print(terminal_safe(f"  failed: {case.request!r}: {err}"), file=sys.stderr)
                continue
            done.seconds.append(time.monotonic() - started)
            done.answers.append((case, action))
    finally:
        await client.close()
    return done


def scored(answers: list[tuple[Case, ProposedAction | None]]) -> list[dict[str, object]]:
    """Each answer's score, with what was proposed, as the report shows it."""
    results = []
    with seeded_database() as db:
        for case, action in answers:
            call = action.tool_call if action else None
            result: Score = score(case, call, db)
            results.append(
                {
                    "request": case.request,
                    "expected_tool": case.tool,
                    "proposed": call.model_dump(mode="json") if call else None,
                    "right_tool": result.right_tool,
                    "right_target": result.right_target,
                    "why": result.why,
                }
            )
    return results


def summary(prefix: str, seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    return {
        f"{prefix}_p50_ms": 1000 * percentile(seconds, 50),
        f"{prefix}_p95_ms": 1000 * percentile(seconds, 95),
    }


def measure(args: argparse.Namespace, model_path: Path) -> tuple[dict[str, float], list]:
    loads: list[float] = []
    for _ in range(args.loads - 1):  # the last load serves the analyses below
        with serving(model_path) as model:
            loads.append(model.load_seconds)
    with serving(model_path) as model:
        loads.append(model.load_seconds)
        local = asyncio.run(analyses(model.base_url, model.name, args.requests))
    stand_in_server = FakeOpenAIServer().start()
    try:
        stand_in = asyncio.run(analyses(stand_in_server.url, "stand-in", args.requests))
    finally:
        stand_in_server.stop()
    results = scored(local.answers)
    stand_in_results = scored(stand_in.answers)
    figures = {
        "requests": len(results),
        "right_tool": sum(bool(r["right_tool"]) for r in results),
        "right_tool_and_target": sum(bool(r["right_target"]) for r in results),
        "stand_in_right_tool_and_target": sum(bool(r["right_target"]) for r in stand_in_results),
        **summary("model_load", loads),
        **summary("local_analysis", local.seconds),
        "local_analysis_failed": local.failed,
        **summary("stand_in_analysis", stand_in.seconds),
    }
    return figures, results


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
        figures, results = measure(args, model_path)
    except (ModelFileError, LocalModelError) as err:
        print(err, file=sys.stderr)
        return 1
    name = model_name(model_path)
    for result in results:
        for line in _result_lines(result):
            print(terminal_safe(line))
    print(
        f"{name}: right tool {figures['right_tool']}/{figures['requests']}, "
        f"right tool and target {figures['right_tool_and_target']}/{figures['requests']}"
    )
    print(
        f"(the stand-in, the offline rules: right tool and target "
        f"{figures['stand_in_right_tool_and_target']}/{figures['requests']})"
    )
    print(f"{name}: {args.loads} loads, {args.requests} requests each")
    for key, label in ROWS:
        if key in figures:
            print(f"  {label:<45} {figures[key]:>10.0f}")
    if args.json:
        report = {"model": name, "model_file": model_path.name, **figures, "answers": results}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _result_lines(result: dict) -> tuple[str, str]:
    mark = "ok " if result["right_target"] else ("tool" if result["right_tool"] else "no ")
    proposed = result["proposed"]
    call = f"{proposed['tool']} {json.dumps(proposed['arguments'])}" if proposed else "nothing"
    why = f"  ({result['why']})" if result["why"] else ""
    return f"  [{mark}] {result['request']}", f"         -> {call}{why}"


if __name__ == "__main__":
    sys.exit(main())
