"""``python -m worker``'s capacity options reach the worker it builds, and bad values are
refused with a message: the fault-tolerance tests build their workers in process, so
without this nothing would notice a flag parsed and then dropped."""

import signal
from typing import Any

import pytest

import worker
from activities.propose_action import AnalysisActivities
from activities.send_webhook_notice import WebhookNotifier


async def test_the_capacity_flags_reach_the_worker(
    monkeypatch: pytest.MonkeyPatch, analysis_activities: AnalysisActivities
) -> None:
    built: dict[str, Any] = {}

    async def connect(_runtime: object) -> object:
        return object()

    async def check_namespace(_client: object) -> None:
        return None

    def build_worker(_client: object, _queue: str, _analysis: object, **options: Any) -> str:
        built.update(options)
        return "the worker"

    async def serve_until_stopped(built_worker: str) -> signal.Signals:
        assert built_worker == "the worker"
        return signal.SIGTERM

    for name, stand_in in {
        "connect": connect,
        "check_namespace": check_namespace,
        "build_worker": build_worker,
        "serve_until_stopped": serve_until_stopped,
    }.items():
        monkeypatch.setattr(worker, name, stand_in)
    args = worker.parse_args(["--max-cached-workflows", "1", "--max-concurrent-activities", "3"])

    notifier = WebhookNotifier.from_env()  # no webhook set in tests: nothing is sent

    stopped = await worker.run_worker(args, analysis_activities, notifier)

    assert stopped == signal.SIGTERM
    assert built["max_cached_workflows"] == 1
    assert built["max_concurrent_activities"] == 3


@pytest.mark.parametrize(
    "argv", [["--max-cached-workflows", "-1"], ["--max-concurrent-activities", "0"]]
)
def test_a_capacity_out_of_range_is_refused_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        worker.parse_args(argv)
    assert exited.value.code == 2
    assert "cache size must be >= 0 and concurrency >= 1" in capsys.readouterr().err
