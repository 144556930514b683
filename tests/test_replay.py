"""Replay tests: the determinism guard for workflows that are already running.

A workflow that waits days for a human is replayed from its history by whatever code the
worker runs by then. The committed histories in ``tests/histories/`` (written by
``python -m tests.record_histories``) must replay on the current code; if a change makes
one fail, that change would break every run in flight on that path. Version it
(``workflow.patched``) instead, or re-record only when no old run can still exist.
"""

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.execute_action import execute_action
from activities.openai_responses import AnalysisActivities
from constants import WORKFLOW_ID_PREFIX, WORKFLOW_TYPE
from models.models import ExecuteActionInput, ExecutionResult, ProposedAction, WorkflowInput
from tests.fake_openai import FakeOpenAIServer
from tests.record_histories import HISTORIES_DIR, MAIN_PATHS, RECORDING_TAG, run_main_paths
from workflows.human_in_the_loop_workflow import HumanInTheLoopWorkflow

HISTORY_FILES = sorted(HISTORIES_DIR.glob("*.json"))


def replayer() -> Replayer:
    return Replayer(workflows=[HumanInTheLoopWorkflow], data_converter=pydantic_data_converter)


def committed_history(path: Path) -> WorkflowHistory:
    workflow_id = f"{WORKFLOW_ID_PREFIX}-{path.stem}-{RECORDING_TAG}"
    return WorkflowHistory.from_json(workflow_id, path.read_text())


def test_every_main_path_has_a_committed_history() -> None:
    """A path without a recorded history is a path the guard does not protect."""
    assert {path.stem for path in HISTORY_FILES} == {path.name for path in MAIN_PATHS}


@pytest.mark.parametrize("history_file", HISTORY_FILES, ids=lambda path: path.stem)
async def test_committed_history_replays_on_current_code(history_file: Path) -> None:
    """Fails when a code change would make a run in flight on this path nondeterministic."""
    await replayer().replay_workflow(committed_history(history_file))


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class ExecutesWithoutAsking:
    """An incompatible "new version": it skips analysis and approval and just executes."""

    @workflow.run
    async def run(self, run_input: WorkflowInput) -> ExecutionResult:
        action = ProposedAction(
            action_type="noop", description="skip", reasoning="", risky_action=False
        )
        return await workflow.execute_activity(
            execute_action,
            ExecuteActionInput(idempotency_key="changed", action=action),
            start_to_close_timeout=timedelta(seconds=10),
        )


async def test_replayer_rejects_code_that_would_break_running_workflows() -> None:
    """The guard must actually bite: replaying on incompatible code has to fail."""
    incompatible = Replayer(
        workflows=[ExecutesWithoutAsking], data_converter=pydantic_data_converter
    )
    with pytest.raises(workflow.NondeterminismError):
        await incompatible.replay_workflow(committed_history(HISTORIES_DIR / "approved.json"))


async def test_fresh_run_of_every_main_path_replays(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
) -> None:
    """Histories made by today's code replay on today's code (no hidden nondeterminism,
    e.g. wall-clock time, random IDs or I/O in workflow code)."""
    runs = await run_main_paths(
        time_skipping_env.client, task_queue, analysis_activities, llm_server, uuid.uuid4().hex
    )
    assert [run.path.name for run in runs] == [path.name for path in MAIN_PATHS]
    for run in runs:
        assert run.result.outcome == run.path.outcome
        await replayer().replay_workflow(run.history)
