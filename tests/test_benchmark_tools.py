"""The tool-call benchmark runs at toy size and reports every figure it promises, each from
runs whose outcomes it checked (a wrong outcome stops it)."""

import json
from pathlib import Path

import pytest

from benchmarks import tools
from constants import STATE_DIR_ENV

KINDS = ("read_only_execute_ms", "previewed_execute_ms")


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("processes")
def test_the_tool_benchmark_reports_execute_latency_with_and_without_a_preview(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))  # restored after: the benchmark sets its own
    out = tmp_path / "figures.json"

    assert tools.main(["--runs", "2", "--safe-runs", "3", "--json", str(out)]) == 0

    figures = json.loads(out.read_text())
    for kind in KINDS:
        assert figures[f"{kind}_p50"] > 0
        assert figures[f"{kind}_p99"] >= figures[f"{kind}_p50"]
    assert figures["propose_ms_p50"] > 0  # the proposal with its preview, one activity
    assert figures["previewed_decision_to_result_ms_p50"] > 0
    assert figures["safe_runs"] == 3 and figures["safe_runs_per_s"] > 0
