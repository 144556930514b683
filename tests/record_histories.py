"""Record one workflow history per main path, for the replay (determinism) tests.

    uv run python -m tests.record_histories

runs every main path on a time-skipping test server with the local LLM, through the real
worker wiring, and writes each history to ``tests/histories/<path>.json``. Re-record (and
commit) after a deliberate, versioned change to the workflow; ``tests/test_replay.py``
replays the committed files so that an accidental change that would break running
workflows fails the build. The path-running code is shared with the tests.
"""

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from openai import AsyncOpenAI
from temporalio.client import Client, WorkflowHandle, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.openai_responses import AnalysisActivities
from activities.webhook_notifier import WebhookNotifier
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVE_SIGNAL,
    STATUS_QUERY,
    SUBMIT_DECISION_UPDATE,
    WORKFLOW_ID_PREFIX,
    WORKFLOW_TYPE,
)
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    Outcome,
    ProposedAction,
    WorkflowInput,
    WorkflowResult,
    WorkflowState,
    WorkflowStatus,
)
from tests.fake_openai import FakeOpenAIServer, Reply, ok
from tests.helpers import TEMPORAL_TEST_SERVER, TEST_MODEL, wait_until
from worker import build_worker

HISTORIES_DIR = Path(__file__).resolve().parent / "histories"
RECORDING_TAG = "recorded"
APPROVAL_TIMEOUT_SECONDS = 300

Run = WorkflowHandle[Any, WorkflowResult]
Decide = Callable[[Run], Awaitable[None]]


async def start_run(
    client: Client, task_queue: str, workflow_id: str, run_input: WorkflowInput
) -> Run:
    """Start the workflow by its type name, as users do, typed to return a WorkflowResult."""
    return await client.start_workflow(
        WORKFLOW_TYPE,
        run_input,
        id=workflow_id,
        task_queue=task_queue,
        result_type=WorkflowResult,
    )


async def status_of(handle: Run) -> WorkflowStatus:
    return await handle.query(STATUS_QUERY, result_type=WorkflowStatus)


def recorded(status: WorkflowStatus, event: str) -> int:
    """How many times ``event`` is in the run's audit trail."""
    return [entry.event for entry in status.audit_trail].count(event)


async def pending_request(handle: Run) -> ApprovalRequest:
    """Wait until the run has asked for a decision and return what the approver is shown.

    Waits for the notice to be recorded too: a decision that arrives while the notice is
    still being sent is valid, but would land before ``approval_requested`` in the trail.
    """
    status = await wait_until(
        lambda: status_of(handle),
        lambda s: (
            s.state == WorkflowState.AWAITING_APPROVAL and recorded(s, "approval_requested") > 0
        ),
    )
    assert status.approval_request is not None, status
    return status.approval_request


async def wait_for_refusals(handle: Run, count: int) -> WorkflowStatus:
    """Signals are fire-and-forget: wait until the run has recorded ``count`` refusals."""
    return await wait_until(
        lambda: status_of(handle), lambda s: recorded(s, "decision_refused") >= count
    )


def decision_for(
    request: ApprovalRequest,
    *,
    approved: bool,
    reviewer: str = "alice",
    notes: str = "",
    amended_action: ProposedAction | None = None,
) -> ApprovalDecision:
    return ApprovalDecision(
        request_id=request.request_id,
        approved=approved,
        reviewer=reviewer,
        reviewer_notes=notes,
        amended_action=amended_action,
    )


async def _approve_by_update(handle: Run) -> None:
    request = await pending_request(handle)
    decision = decision_for(request, approved=True, notes="Looks good")
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)


async def _reject_by_update(handle: Run) -> None:
    request = await pending_request(handle)
    decision = decision_for(request, approved=False, notes="Not during the sale")
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)


async def _refuse_then_approve(handle: Run) -> None:
    """A decision for another request and an undecodable signal, then a valid signal."""
    request = await pending_request(handle)
    wrong = decision_for(request, approved=True).model_copy(update={"request_id": "not-it"})
    try:
        await handle.execute_update(SUBMIT_DECISION_UPDATE, wrong)
    except WorkflowUpdateFailedError:
        pass
    else:
        raise RuntimeError("a decision for another request was applied")
    await handle.signal(APPROVAL_DECISION_SIGNAL, True)
    await wait_for_refusals(handle, 2)
    await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(request, approved=True))


async def _approve_with_edits(handle: Run) -> None:
    request = await pending_request(handle)
    amended = request.proposed_action.model_copy(
        update={"description": "Carry out the request on the staging copy only"}
    )
    decision = decision_for(request, approved=True, amended_action=amended)
    await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)


async def _approve_by_shorthand(handle: Run) -> None:
    await pending_request(handle)
    await handle.signal(APPROVE_SIGNAL, True)


@dataclass(frozen=True)
class MainPath:
    """One way a run can go: the request, how a person decides (if at all), the outcome."""

    name: str
    user_request: str
    outcome: Outcome
    decide: Decide | None = None
    llm_replies: tuple[Reply, ...] = ()


# The LLM is the local server's default offline analyser unless ``llm_replies`` says otherwise.
MAIN_PATHS: tuple[MainPath, ...] = (
    MainPath("auto_approved", "Summarise last week's support tickets", Outcome.AUTO_APPROVED),
    MainPath(
        "approved", "Delete the stale feature flags", Outcome.APPROVED, decide=_approve_by_update
    ),
    MainPath(
        "rejected", "Refund every order from March", Outcome.REJECTED, decide=_reject_by_update
    ),
    MainPath("timed_out", "Drop the analytics staging table", Outcome.TIMED_OUT),
    MainPath(
        "analysis_failed",
        "Tidy up the shared drive",
        Outcome.ANALYSIS_FAILED,
        llm_replies=(ok("Sure! I would tidy it up."),) * 3,
    ),
    MainPath(
        "refused_then_approved",
        "Revoke the intern's VPN access",
        Outcome.APPROVED,
        decide=_refuse_then_approve,
    ),
    MainPath(
        "approve_with_edits",
        "Wipe the cache on the production web servers",
        Outcome.APPROVED,
        decide=_approve_with_edits,
    ),
    MainPath(
        "shorthand_approve",
        "Reset the build server",
        Outcome.APPROVED,
        decide=_approve_by_shorthand,
    ),
)


@dataclass(frozen=True)
class RecordedRun:
    path: MainPath
    result: WorkflowResult
    history: WorkflowHistory


async def run_main_paths(
    client: Client,
    task_queue: str,
    analysis: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    tag: str,
) -> list[RecordedRun]:
    """Run every main path, one after another, and return each result and history.

    One at a time on purpose: waiting for a result lets the time-skipping server jump
    ahead, which would time out any other run still waiting for its decision. ``tag``
    makes request texts and workflow IDs unique, so LLM scripts never collide.
    """
    runs: list[RecordedRun] = []
    # No webhook, whatever the environment says: the recorded histories must not depend on it.
    async with (
        httpx2.AsyncClient() as http,
        build_worker(client, task_queue, analysis, notifier=WebhookNotifier(None, None, http)),
    ):
        for path in MAIN_PATHS:
            user_request = f"{path.user_request} ({tag})"
            llm_server.on(user_request, *path.llm_replies)
            handle = await start_run(
                client,
                task_queue,
                f"{WORKFLOW_ID_PREFIX}-{path.name}-{tag}",
                WorkflowInput(
                    user_request=user_request, approval_timeout_seconds=APPROVAL_TIMEOUT_SECONDS
                ),
            )
            if path.decide is not None:
                await path.decide(handle)
            result = await handle.result()
            if result.outcome != path.outcome:
                raise RuntimeError(f"path {path.name} ended {result.outcome}: {result.message}")
            runs.append(RecordedRun(path, result, await handle.fetch_history()))
    return runs


def history_file(path_name: str, directory: Path = HISTORIES_DIR) -> Path:
    return directory / f"{path_name}.json"


async def record(directory: Path = HISTORIES_DIR) -> list[Path]:
    """Start a local LLM and a time-skipping server, run every path, write the histories."""
    llm_server = FakeOpenAIServer().start()
    try:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(TEMPORAL_TEST_SERVER),
            data_converter=pydantic_data_converter,
        )
        try:
            llm = AsyncOpenAI(base_url=llm_server.url, api_key="test-key", max_retries=0)
            analysis = AnalysisActivities(llm, TEST_MODEL)
            runs = await run_main_paths(
                env.client, "record-histories", analysis, llm_server, RECORDING_TAG
            )
        finally:
            await env.shutdown()
    finally:
        llm_server.stop()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for run in runs:
        target = history_file(run.path.name, directory)
        target.write_text(run.history.to_json() + "\n")
        written.append(target)
    return written


def main() -> int:
    # The analysis_failed path fails on purpose; its warnings and tracebacks are expected.
    logging.basicConfig(level=logging.ERROR)
    for path in asyncio.run(record()):
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
