"""An approved action must happen once, however often Temporal runs the execute activity:
retries after a lost reply, a second worker, a worker restarted in between. The simulation
keeps a ledger of executed idempotency keys; these tests pin what it promises.

The workflow no longer runs this simulated ``execute_action`` (it executes only through a
tool, and the analysis refuses proposals without one); the benchmarks' baseline workflow
still does, so its once-only promise still holds.

Every test points ``HITL_STATE_DIR`` at its own temporary directory, so nothing is
written into the checkout.
"""

import asyncio
import logging
import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import benchmarks.baseline_execute_action as execute_module
from benchmarks.baseline_execute_action import (
    DEFAULT_STATE_DIR,
    LEDGER_FILE,
    PROJECT_DIR,
    ExecuteActionInput,
    execute_action,
    ledger_path,
)
from constants import STATE_DIR_ENV
from models.models import ExecutionResult, ProposedAction

ACTION = ProposedAction(
    action_type="refund_order",
    description="Refund order 1234 to the customer",
    reasoning="The user asked for the refund",
    risky_action=True,
    parameters={"order": "1234", "amount": "$40"},
)
KEY = "hitl-3b9c2e/0f6d7c1e-5a4b-4c3d-9e8f-1a2b3c4d5e6f"
SLOW_ACT_SECONDS = 0.2  # long enough that concurrent executions overlap inside it


@pytest.fixture
def ledger_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path))
    return tmp_path


@pytest.fixture
def acts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The idempotency keys the simulation actually acted on, in order."""
    acted: list[str] = []
    act = execute_module._act

    def counting_act(request: ExecuteActionInput) -> ExecutionResult:
        acted.append(request.idempotency_key)
        return act(request)

    monkeypatch.setattr(execute_module, "_act", counting_act)
    return acted


async def execute(key: str = KEY, action: ProposedAction = ACTION) -> ExecutionResult:
    return await ActivityEnvironment().run(
        execute_action, ExecuteActionInput(idempotency_key=key, action=action)
    )


async def test_a_repeated_key_acts_once_and_returns_the_first_result(
    ledger_dir: Path, acts: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    first = await execute()
    second = await execute()

    assert acts == [KEY]
    assert second == first
    assert first.idempotency_key == KEY
    assert first.simulated is True
    assert ACTION.description in first.summary
    repeats = [r.getMessage() for r in caplog.records if "Repeated execution" in r.getMessage()]
    assert len(repeats) == 1
    assert KEY in repeats[0]
    assert "without acting again" in repeats[0]


async def test_different_keys_act_separately(ledger_dir: Path, acts: list[str]) -> None:
    """Two approved requests are two actions, even when they propose the same thing."""
    other = "hitl-3b9c2e/another-request"

    first = await execute(KEY)
    second = await execute(other)

    assert acts == [KEY, other]
    assert (first.idempotency_key, second.idempotency_key) == (KEY, other)


async def test_concurrent_executions_of_one_key_act_once(
    ledger_dir: Path, acts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overlapping attempts (a retry while the first still runs) must not both act."""
    counting_act = execute_module._act

    def slow_act(request: ExecuteActionInput) -> ExecutionResult:
        time.sleep(SLOW_ACT_SECONDS)
        return counting_act(request)

    monkeypatch.setattr(execute_module, "_act", slow_act)

    results = await asyncio.gather(*(execute() for _ in range(8)), execute("other-key"))

    assert sorted(acts) == [KEY, "other-key"]
    assert len({result.model_dump_json() for result in results[:-1]}) == 1


def _execute_in_process(ledger: str, acts_file: str, out_file: str, barrier: Any) -> None:
    """A separate worker process: its own interpreter, connection and (slow) action, the
    same ledger directory. Records each act as a line in ``acts_file``."""
    os.environ[STATE_DIR_ENV] = ledger
    act = execute_module._act

    def recording_act(request: ExecuteActionInput) -> ExecutionResult:
        with open(acts_file, "a") as acted:
            acted.write(f"{os.getpid()}\n")
        time.sleep(SLOW_ACT_SECONDS)
        return act(request)

    execute_module._act = recording_act
    barrier.wait(timeout=60)
    Path(out_file).write_text(asyncio.run(execute()).model_dump_json())


def test_workers_in_separate_processes_act_once_between_them(tmp_path: Path) -> None:
    """What a process-local lock cannot do: several workers, or one restarted, share the
    ledger on disk, and only the first to take it acts."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    acts_file = tmp_path / "acts.txt"
    outputs = [tmp_path / f"result-{n}.json" for n in range(4)]
    workers = [
        context.Process(
            target=_execute_in_process, args=(str(tmp_path), str(acts_file), str(out), barrier)
        )
        for out in outputs
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=90)

    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert len(acts_file.read_text().splitlines()) == 1
    assert len({out.read_text() for out in outputs}) == 1


async def test_a_key_reused_for_another_action_is_refused_without_acting(
    ledger_dir: Path, acts: list[str]
) -> None:
    """A reused workflow ID must neither act again nor pass the old result off as the new."""
    await execute()
    other_action = ACTION.model_copy(update={"description": "Refund order 9999 in full"})

    with pytest.raises(ApplicationError) as refused:
        await execute(action=other_action)

    assert refused.value.type == "IdempotencyKeyReused"
    assert refused.value.non_retryable is True
    assert acts == [KEY]


async def test_a_repeat_ignores_the_llm_reasoning_and_risk_flag(
    ledger_dir: Path, acts: list[str]
) -> None:
    """Only what the action does identifies it; workers of a newer version may describe
    the same retry with other metadata."""
    first = await execute()
    again = await execute(
        action=ACTION.model_copy(update={"reasoning": "rephrased", "risky_action": False})
    )

    assert acts == [KEY]
    assert again == first


def test_the_ledger_lives_where_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    assert ledger_path() == tmp_path / "state" / LEDGER_FILE

    monkeypatch.delenv(STATE_DIR_ENV)
    assert ledger_path() == DEFAULT_STATE_DIR / LEDGER_FILE


def test_a_relative_state_folder_is_the_projects_not_the_current_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker started from another folder (a service manager, a container) must find the
    same ledger, or it would act again on keys executed before."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(STATE_DIR_ENV, "state/ledger")
    assert ledger_path() == PROJECT_DIR / "state" / "ledger" / LEDGER_FILE


async def test_the_ledger_is_readable_by_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It holds every action's parameters."""
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    await execute()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / LEDGER_FILE).stat().st_mode) == 0o600


async def test_a_slow_action_does_not_hold_up_other_executions(
    ledger_dir: Path, acts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ledger lock is held while acting: another key executes while one action runs."""
    acting, release = threading.Event(), threading.Event()
    counting_act = execute_module._act

    def held_act(request: ExecuteActionInput) -> ExecutionResult:
        if request.idempotency_key == KEY:
            acting.set()
            assert release.wait(timeout=60), "never released"
        return counting_act(request)

    monkeypatch.setattr(execute_module, "_act", held_act)
    slow = asyncio.ensure_future(execute())
    try:
        assert await asyncio.to_thread(acting.wait, 60)
        # Bounded only so that a regression fails instead of hanging: it takes milliseconds.
        other = await asyncio.wait_for(execute("other-key"), timeout=20)
        assert other.idempotency_key == "other-key"
        assert not slow.done()
    finally:
        release.set()
    await slow
    assert acts == ["other-key", KEY]


def _act_then_die(ledger: str, acts_file: str) -> None:
    """A worker that acts and dies before recording the result (SIGKILL, power loss)."""
    os.environ[STATE_DIR_ENV] = ledger

    def act_and_crash(request: ExecuteActionInput) -> ExecutionResult:
        with open(acts_file, "a") as acted:
            acted.write("acted\n")
        os._exit(9)

    execute_module._act = act_and_crash
    asyncio.run(execute())


async def test_a_crash_between_acting_and_recording_is_not_acted_on_again(
    ledger_dir: Path, acts: list[str]
) -> None:
    """Once-only over guessing: the retry cannot know whether the action happened, so it
    says so and does not act; the caller's run then fails with that message."""
    acts_file = ledger_dir / "acts.txt"
    crashed = multiprocessing.get_context("spawn").Process(
        target=_act_then_die, args=(str(ledger_dir), str(acts_file))
    )
    crashed.start()
    await asyncio.to_thread(crashed.join, 90)
    assert crashed.exitcode == 9
    assert acts_file.read_text() == "acted\n"

    with pytest.raises(ApplicationError) as unknown:
        await execute()

    assert unknown.value.type == "ExecutionOutcomeUnknown"
    assert unknown.value.non_retryable is True
    assert "may or may not have happened" in str(unknown.value)
    assert acts == []
    assert (await execute("other-key")).idempotency_key == "other-key"  # the rest goes on


async def test_an_action_that_fails_can_be_retried(
    ledger_dir: Path, acts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure raised by the action means it did not happen: its claim is dropped."""
    counting_act = execute_module._act
    failures = [RuntimeError("target system unavailable")]

    def failing_once(request: ExecuteActionInput) -> ExecutionResult:
        if failures:
            raise failures.pop()
        return counting_act(request)

    monkeypatch.setattr(execute_module, "_act", failing_once)
    with pytest.raises(RuntimeError):
        await execute()
    assert (await execute()).idempotency_key == KEY
    assert acts == [KEY]


def test_the_default_state_folder_is_not_committed() -> None:
    """The default ledger sits in the project folder: git must ignore it."""
    gitignore = DEFAULT_STATE_DIR.parent / ".gitignore"

    assert f"{DEFAULT_STATE_DIR.name}/" in gitignore.read_text().splitlines()
