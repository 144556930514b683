"""An approved action must happen once, however often Temporal runs the execute activity:
retries after a lost reply, a second worker, a worker restarted in between. The simulation
keeps a ledger of executed idempotency keys; these tests pin what it promises.

Every test points ``HITL_STATE_DIR`` at its own temporary directory, so nothing is
written into the checkout.
"""

import asyncio
import logging
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

import activities.execute_action as execute_module
from activities.execute_action import (
    DEFAULT_STATE_DIR,
    LEDGER_FILE,
    execute_action,
    ledger_path,
)
from constants import STATE_DIR_ENV
from models.models import ExecuteActionInput, ExecutionResult, ProposedAction

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


def test_the_default_state_folder_is_not_committed() -> None:
    """The default ledger sits in the project folder: git must ignore it."""
    gitignore = DEFAULT_STATE_DIR.parent / ".gitignore"

    assert f"{DEFAULT_STATE_DIR.name}/" in gitignore.read_text().splitlines()
