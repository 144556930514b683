"""Version ``hitl-2026-12-07-edits-change-the-call``: a new run records its marker and takes
the new rule (an edit changes the call, and is asked about again); a run started on 1.0
keeps 1.0's (any amendment counts, and one that adds no risk runs at once), on today's
workers, across continue-as-new too.

A run "started on 1.0" comes from a worker whose patch activation callback leaves the
version off when a run first asks: its history holds no marker, like a 1.0 worker's, and
every later replay takes the old branch (``workflows/legacy_1_0.py``).
"""

import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import PatchActivationInput, Worker

import worker_setup
from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer, fallback_tool_call, ok
from constants import APPROVAL_DECISION_SIGNAL, EDITS_CHANGE_THE_CALL, SUBMIT_DECISION_UPDATE
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    CarriedRun,
    Outcome,
    VotingPolicy,
    WorkflowInput,
    WorkflowResult,
)
from tests.helpers import Run, start_run, status_of, wait_until
from tests.record_histories import decision_for, pending_request, recorded
from tests.test_replay import patch_markers, replayer
from worker_setup import build_worker

pytestmark = pytest.mark.timeout(180)

WORDS_ONLY = "an edit changes only the tool call's arguments, not the words about it"
OnFirstAsk = Callable[[PatchActivationInput], bool]


def on_1_0(asking: PatchActivationInput) -> bool:
    """A run takes no version when it first asks: as if a 1.0 worker had started it."""
    return False


def only_continued_runs(asking: PatchActivationInput) -> bool:
    """1.0 started the run; a run it continued into would take the version, if it asked."""
    return asking.workflow_info.continued_run_id is not None


def worker(
    client: Client, queue: str, analysis: AnalysisActivities, on_first_ask: OnFirstAsk | None
) -> Worker:
    """The project's worker, or one that decides, with ``on_first_ask``, whether a run that
    asks about a version for the first time takes it (a worker's option, not the wiring's)."""
    if on_first_ask is None:
        return build_worker(client, queue, analysis)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            worker_setup, "Worker", partial(Worker, patch_activation_callback=on_first_ask)
        )
        return build_worker(client, queue, analysis)


async def start(client: Client, queue: str, llm: FakeOpenAIServer, **fields: Any) -> Run:
    """A run whose model proposes an e-mail (a risky one: it is asked about)."""
    text = f"E-mail the agenda {uuid.uuid4().hex[:8]}"
    call = fallback_tool_call(text)
    proposal = {
        "action_type": call["tool"],
        "description": "E-mail the agenda",
        "reasoning": "requested",
        "risky_action": True,
        "tool_call": call,
    }
    llm.on(text, ok(proposal))
    run_input = WorkflowInput(user_request=text, **fields)
    return await start_run(client, queue, f"version-{uuid.uuid4().hex[:10]}", run_input)


def reworded(request: ApprovalRequest, reviewer: str = "dana") -> ApprovalDecision:
    """An approval that edits the words and keeps the call: what 1.0 took and ran."""
    amended = request.proposed_action.model_copy(update={"description": "Only the agenda"})
    return decision_for(request, approved=True, reviewer=reviewer, amended_action=amended)


def events(result: WorkflowResult) -> list[str]:
    return [entry.event for entry in result.audit_trail]


async def listed(client: Client, handle: Run, version_query: str) -> int:
    """How many open runs with ``handle``'s ID the server lists for ``version_query``: the
    drain check of ``docs/versioning.md``, narrowed to this run."""
    query = f'ExecutionStatus="Running" AND WorkflowId="{handle.id}" AND {version_query}'
    return (await client.count_workflows(query)).count


def test_a_run_carried_by_1_0_code_keeps_1_0s_path() -> None:
    """1.0 carried no path into a continued run: one without it is a 1.0 run."""
    assert CarriedRun.model_fields["edits_change_the_call"].default is False


async def test_a_new_run_records_the_version_and_refuses_an_edit_of_words_only(
    dev_client: Client,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
) -> None:
    async with worker(dev_client, task_queue, analysis_activities, None):
        handle = await start(dev_client, task_queue, llm_server)
        request = await pending_request(handle)
        version = f'TemporalChangeVersion="{EDITS_CHANGE_THE_CALL}"'
        await wait_until(lambda: listed(dev_client, handle, version), lambda n: n == 1)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(SUBMIT_DECISION_UPDATE, reworded(request))
        assert refused.value.cause.message == WORDS_ONLY
        await handle.signal(APPROVAL_DECISION_SIGNAL, reworded(request))
        status = await wait_until(
            lambda: status_of(handle), lambda s: recorded(s, "decision_refused") > 0
        )
        assert status.audit_trail[-1].detail == f"from dana: {WORDS_ONLY}"
        await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(request, approved=False))
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    history = await handle.fetch_history()
    assert patch_markers(history) == [EDITS_CHANGE_THE_CALL]
    await replayer().replay_workflow(history)


async def test_a_run_started_on_1_0_keeps_1_0s_edits_on_todays_worker(
    dev_client: Client,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
) -> None:
    """Started by "1.0", decided on today's worker: the reworded approval counts and the
    call runs at once, on that approval, as 1.0 promised the run."""
    async with worker(dev_client, task_queue, analysis_activities, on_1_0):
        handle = await start(dev_client, task_queue, llm_server)
        request = await pending_request(handle)
    # What the drain check lists: a run still on 1.0.
    unversioned = "TemporalChangeVersion IS NULL"
    await wait_until(lambda: listed(dev_client, handle, unversioned), lambda n: n == 1)
    async with worker(dev_client, task_queue, analysis_activities, None):
        await handle.execute_update(SUBMIT_DECISION_UPDATE, reworded(request))
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED, result.message
    assert result.decision is not None and result.decision.reviewer == "dana"
    assert "amendment_assessed" in events(result)
    assert "approval_reopened" not in events(result)
    history = await handle.fetch_history()
    assert patch_markers(history) == []
    await replayer().replay_workflow(history)


async def test_a_run_started_on_1_0_previews_an_edited_call_and_asks_again(
    dev_client: Client,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
) -> None:
    """1.0's other branch: an amendment that changes the call gets its effect worked out,
    and that new effect is asked about again; whoever amended it may not approve it."""
    async with worker(dev_client, task_queue, analysis_activities, on_1_0):
        handle = await start(dev_client, task_queue, llm_server)
        request = await pending_request(handle)
        call = request.proposed_action.tool_call
        assert call is not None
        edited = request.proposed_action.with_arguments(call.arguments | {"subject": "Agenda"})
        amend = decision_for(request, approved=True, reviewer="dana", amended_action=edited)
        await handle.execute_update(SUBMIT_DECISION_UPDATE, amend)
        again = await wait_until(
            lambda: pending_request(handle), lambda r: r.request_id != request.request_id
        )
        assert again.proposed_action == edited
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE, decision_for(again, approved=True, reviewer="erin")
        )
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED, result.message
    reopened = [entry.detail for entry in result.audit_trail if entry.event == "approval_reopened"]
    assert len(reopened) == 1 and reopened[0].startswith("the amended action adds: a new effect")
    history = await handle.fetch_history()
    assert patch_markers(history) == []
    await replayer().replay_workflow(history)


@pytest.mark.parametrize(
    ("on_first_ask", "markers"),
    [(None, [EDITS_CHANGE_THE_CALL]), (only_continued_runs, [])],
    ids=["started today", "started on 1.0"],
)
async def test_a_run_continued_as_new_keeps_the_path_its_first_run_took(
    small_history_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    on_first_ask: OnFirstAsk | None,
    markers: list[str],
) -> None:
    """Refused signals move the waiting request to a new run. That run asks about the
    version only if its first run took it; one continued from 1.0 asks nothing (it would
    be given the version here) and keeps 1.0's rule."""
    client, queue = small_history_server.client, f"version-{uuid.uuid4().hex[:8]}"
    async with worker(client, queue, analysis_activities, on_first_ask):
        handle = await start(
            client,
            queue,
            llm_server,
            approvers=["alice", "dana", "erin"],
            voting=VotingPolicy(required_approvals=2),
        )
        request = await pending_request(handle)
        await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))
        for _ in range(40):
            await handle.signal(APPROVAL_DECISION_SIGNAL, reworded(request, reviewer="mallory"))
        latest = client.get_workflow_handle(handle.id, result_type=WorkflowResult)
        await wait_until(lambda: status_of(latest), lambda s: recorded(s, "continued_as_new") > 0)
        if markers:  # today's rule, in the new run too
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await latest.execute_update(SUBMIT_DECISION_UPDATE, reworded(request))
            assert refused.value.cause.message == WORDS_ONLY
        else:  # 1.0's rule: the reworded approval counts (and resets alice's vote)
            await latest.execute_update(SUBMIT_DECISION_UPDATE, reworded(request))
        erin = decision_for(request, approved=True, reviewer="erin")
        await latest.execute_update(SUBMIT_DECISION_UPDATE, erin)
        result = await latest.result()
    assert result.outcome == Outcome.APPROVED, result.message
    voters = ["alice", "erin"] if markers else ["dana", "erin"]
    assert [vote.reviewer for vote in result.votes] == voters
    assert ("amendment_assessed" in events(result)) == (not markers)  # ran on that quorum
    first_run = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    first, continued = await first_run.fetch_history(), await latest.fetch_history()
    assert first.run_id != continued.run_id
    for run_history in (first, continued):
        assert patch_markers(run_history) == markers
        await replayer().replay_workflow(run_history)
