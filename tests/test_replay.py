"""Replay tests: the determinism guard for workflows that are already running.

A workflow that waits days for a human is replayed from its history by whatever code the
worker runs by then. The committed histories in ``tests/histories/`` (today's paths,
written by ``python -m tests.record_histories``) must replay on the current code; if a
change makes one fail, that change would break every run in flight on that path: version it
(``workflows/versions.py``) instead. A staged path's stages are ``ApprovalWorkflow``
children with histories of their own, in ``tests/histories/children/<path>/<stage>.json``:
they are guarded the same way. ``tests/histories/1.0/`` keeps, as 1.0 recorded them, the
histories of the paths a live version changed: runs started on 1.0 (no marker) take the old
branches (``workflows/legacy_1_0.py``), and those must replay too.
"""

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.propose_action import AnalysisActivities
from benchmarks.baseline_execute_action import ExecuteActionInput, execute_action
from benchmarks.fake_openai import FakeOpenAIServer, ok
from client.start import INITIAL_SEARCH_ATTRIBUTES
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    EDITS_CHANGE_THE_CALL,
    LIVE_VERSIONS,
    STAGE_APPROVAL_WORKFLOW_TYPE,
    SUBMIT_DECISION_UPDATE,
    WORKFLOW_TYPE,
)
from models.limits import MAX_NOTES_CHARS
from models.models import (
    ApprovalDecision,
    ApprovalStatus,
    ExecutionResult,
    Outcome,
    ProposedAction,
    StageApprovalInput,
    StageOutcome,
    WorkflowInput,
    WorkflowResult,
)
from tests.helpers import start_run
from tests.record_histories import (
    CHILD_HISTORIES_DIR,
    HISTORIES_1_0_DIR,
    HISTORIES_DIR,
    MAIN_PATHS,
    RECORDING_TAG,
    decision_for,
    main_workflow_id,
    pending_request,
    run_main_paths,
    stage_workflow_id,
)
from worker_setup import build_worker
from workflows.approval_workflow import ApprovalWorkflow
from workflows.human_in_the_loop_workflow import HumanInTheLoopWorkflow

HISTORY_FILES = sorted(HISTORIES_DIR.glob("*.json"))
CHILD_HISTORY_FILES = sorted(CHILD_HISTORIES_DIR.glob("*/*.json"))
HISTORY_1_0_FILES = sorted(HISTORIES_1_0_DIR.glob("*.json"))
EVERY_HISTORY_FILE = HISTORY_FILES + CHILD_HISTORY_FILES + HISTORY_1_0_FILES
# The marker name SDK core gives ``workflow.patched``; its details hold the patch ID.
PATCH_MARKER_NAME = "core_patch"


def replayer() -> Replayer:
    """The workflows a worker runs: the request, and each stage's child."""
    return Replayer(
        workflows=[HumanInTheLoopWorkflow, ApprovalWorkflow],
        data_converter=pydantic_data_converter,
    )


def committed_history(path: Path) -> WorkflowHistory:
    """A committed history: a run's, ``<path>.json`` (or ``1.0/<path>.json``), or a
    stage's, ``children/<path>/<stage>.json`` (under the ID its parent gave it)."""
    if path.parent in (HISTORIES_DIR, HISTORIES_1_0_DIR):
        return WorkflowHistory.from_json(
            main_workflow_id(path.stem, RECORDING_TAG), path.read_text()
        )
    parent_id = main_workflow_id(path.parent.name, RECORDING_TAG)
    return WorkflowHistory.from_json(stage_workflow_id(parent_id, path.stem), path.read_text())


def history_id(path: Path) -> str:
    return str(path.relative_to(HISTORIES_DIR).with_suffix(""))


def patch_markers(history: WorkflowHistory) -> list[str]:
    """The patch IDs the run recorded, in order."""
    return [
        json.loads(details.payloads[0].data)["id"]
        for event in history.events
        if event.HasField("marker_recorded_event_attributes")
        and event.marker_recorded_event_attributes.marker_name == PATCH_MARKER_NAME
        for details in event.marker_recorded_event_attributes.details.values()
    ]


def test_every_main_path_has_a_committed_history() -> None:
    """A path without a recorded history is a path the guard does not protect."""
    assert {path.stem for path in HISTORY_FILES} == {path.name for path in MAIN_PATHS}


def test_every_staged_path_has_committed_stage_histories() -> None:
    """The stages run in child workflows: a change to the child breaks its runs in flight
    just as a change to the parent does, so every staged path records its stages too."""
    staged = {path.name: set(path.approval_stages) for path in MAIN_PATHS if path.approval_stages}
    recorded: dict[str, set[str]] = {}
    for path in CHILD_HISTORY_FILES:
        recorded.setdefault(path.parent.name, set()).add(path.stem)
    assert recorded == staged


@pytest.mark.parametrize("history_file", EVERY_HISTORY_FILE, ids=history_id)
async def test_committed_history_replays_on_current_code(history_file: Path) -> None:
    """Fails when a code change would make a run (or a stage) in flight on this path
    nondeterministic."""
    await replayer().replay_workflow(committed_history(history_file))


@pytest.mark.parametrize("history_file", EVERY_HISTORY_FILE, ids=history_id)
def test_a_history_holds_only_live_version_markers(history_file: Path) -> None:
    """A patch marker names a version of the workflow's code; only those still live
    (``constants.LIVE_VERSIONS``) may be in a history the guard replays."""
    assert set(patch_markers(committed_history(history_file))) <= set(LIVE_VERSIONS)


def test_recorded_runs_took_todays_path_and_1_0_runs_the_old_one() -> None:
    """Each run recorded today holds the live version's marker, so its replay takes the new
    path; a 1.0 history holds none, so its replay takes 1.0's (a stage asks no version)."""
    for history_file in HISTORY_FILES:
        markers = patch_markers(committed_history(history_file))
        assert markers == [EDITS_CHANGE_THE_CALL], history_file.name
    for history_file in CHILD_HISTORY_FILES + HISTORY_1_0_FILES:
        assert patch_markers(committed_history(history_file)) == [], history_id(history_file)


def test_the_marker_check_reads_markers() -> None:
    """The check above must see a marker where there is one, or it guards nothing."""
    history = committed_history(HISTORIES_DIR / "approved.json")
    marked = history.events[0].__class__()
    marked.marker_recorded_event_attributes.marker_name = PATCH_MARKER_NAME
    payload = marked.marker_recorded_event_attributes.details["patch_data"].payloads.add()
    payload.data = json.dumps({"id": "hitl-gone", "deprecated": False}).encode()
    events = [*history.events, marked]
    marked_history = WorkflowHistory(history.workflow_id, events)
    assert patch_markers(marked_history) == [EDITS_CHANGE_THE_CALL, "hitl-gone"]


def approval_statuses(history: WorkflowHistory) -> list[str]:
    """Each ``ApprovalStatus`` value the run upserted, in order."""
    return [
        json.loads(field.data)
        for event in history.events
        if event.HasField("upsert_workflow_search_attributes_event_attributes")
        for name, field in (
            event.upsert_workflow_search_attributes_event_attributes.search_attributes
        ).indexed_fields.items()
        if name == APPROVAL_STATUS_SEARCH_ATTRIBUTE
    ]


def proposal(tool: str, **arguments: object) -> dict[str, object]:
    """The model's answer: this tool call (a model that calls everything safe)."""
    return {
        "action_type": tool,
        "description": f"Use {tool}",
        "reasoning": "requested",
        "risky_action": False,
        "tool_call": {"tool": tool, "arguments": arguments},
    }


@pytest.mark.timeout(240)  # a real server, on a loaded machine
async def test_a_new_run_upserts_its_status_only_when_it_changes_and_replays(
    dev_client: Client,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> None:
    """On a server with ``ApprovalStatus`` registered (the recordings above have none): a
    safe run sets its final status once; an approved one sets Pending, then Approved at the
    decision, and does not repeat it at the end. Both replay."""
    look_up = f"Count the customers ({workflow_id})"
    llm_server.on(
        look_up, ok(proposal("summarize_records", table="customers", filters=[], group_by=None))
    )
    write = f"E-mail Ada the agenda ({workflow_id})"
    email = proposal(
        "send_email", to="ada@example.com", mailing_list=None, subject="Agenda", body="Attached."
    )
    llm_server.on(write, ok(email))
    async with build_worker(dev_client, task_queue, analysis_activities):
        safe = await start_run(
            dev_client,
            task_queue,
            f"{workflow_id}-safe",
            WorkflowInput(user_request=look_up),
            search_attributes=INITIAL_SEARCH_ATTRIBUTES,
        )
        assert (await safe.result()).outcome == Outcome.AUTO_APPROVED
        approved = await start_run(
            dev_client,
            task_queue,
            workflow_id,
            WorkflowInput(user_request=write),
            search_attributes=INITIAL_SEARCH_ATTRIBUTES,
        )
        request = await pending_request(approved)
        await approved.execute_update(
            SUBMIT_DECISION_UPDATE, decision_for(request, approved=True, reviewer="alice")
        )
        assert (await approved.result()).outcome == Outcome.APPROVED
    expected = {
        safe: [ApprovalStatus.AUTO_APPROVED],
        approved: [ApprovalStatus.PENDING, ApprovalStatus.APPROVED],
    }
    for handle, statuses in expected.items():
        history = await handle.fetch_history()
        assert approval_statuses(history) == statuses
        assert patch_markers(history) == [EDITS_CHANGE_THE_CALL]
        await replayer().replay_workflow(history)


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


@workflow.defn(name=STAGE_APPROVAL_WORKFLOW_TYPE, sandboxed=False)
class StageWithoutNotice:
    """An incompatible "new version" of a stage: it approves at once, sending no notice."""

    @workflow.run
    async def run(self, stage_input: StageApprovalInput) -> StageOutcome:
        return StageOutcome(stage=stage_input.stage, approved=True)


async def test_replayer_rejects_stage_code_that_would_break_running_stages() -> None:
    """The child guard must bite too, or the stage histories guard nothing."""
    incompatible = Replayer(workflows=[StageWithoutNotice], data_converter=pydantic_data_converter)
    (history_file, *_) = CHILD_HISTORY_FILES
    with pytest.raises(workflow.NondeterminismError):
        await incompatible.replay_workflow(committed_history(history_file))


async def test_fresh_run_of_every_main_path_replays(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
) -> None:
    """Histories made by today's code replay on today's code (no hidden nondeterminism,
    e.g. wall-clock time, random IDs or I/O in workflow code), and record the live
    version's marker (a stage's child records none)."""
    runs = await run_main_paths(
        time_skipping_env, task_queue, analysis_activities, llm_server, uuid.uuid4().hex
    )
    assert [run.path.name for run in runs] == [path.name for path in MAIN_PATHS]
    for run in runs:
        assert run.result.outcome == run.path.outcome
        assert list(run.stage_histories) == [stage.stage for stage in run.result.stages]
        assert patch_markers(run.history) == [EDITS_CHANGE_THE_CALL], run.path.name
        for history in (run.history, *run.stage_histories.values()):
            await replayer().replay_workflow(history)
        assert all(patch_markers(child) == [] for child in run.stage_histories.values())


async def test_a_decision_sent_with_the_start_is_refused_and_the_run_replays(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    task_queue: str,
    workflow_id: str,
) -> None:
    """Signal-with-start delivers the signal in the run's first workflow task, before any
    request exists: the decision (over a limit too) is refused and recorded, the run goes
    on, and its history replays."""
    too_long = "n" * (MAX_NOTES_CHARS + 1)
    decision = ApprovalDecision(
        request_id="not-yet", approved=True, reviewer="alice", reviewer_notes=too_long
    )
    async with build_worker(time_skipping_env.client, task_queue, analysis_activities):
        handle = await time_skipping_env.client.start_workflow(
            WORKFLOW_TYPE,
            WorkflowInput(user_request=f"Summarise last week's tickets ({workflow_id})"),
            id=workflow_id,
            task_queue=task_queue,
            start_signal=APPROVAL_DECISION_SIGNAL,
            start_signal_args=[decision],
            result_type=WorkflowResult,
        )
        result = await handle.result()
    assert result.outcome == Outcome.AUTO_APPROVED
    assert "decision_refused" in [entry.event for entry in result.audit_trail]
    history = await handle.fetch_history()
    assert patch_markers(history) == [EDITS_CHANGE_THE_CALL]
    await replayer().replay_workflow(history)
