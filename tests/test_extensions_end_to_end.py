"""Staged approval end to end: a real dev server, the real worker process, the real CLI.

The approver does exactly what the stage's notice tells them to do: run
``temporal workflow signal --workflow-id <parent>-<stage> --name approve --input true``
(or ``false``).
"""

import asyncio
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from constants import APPROVE_SIGNAL
from models.models import Outcome, WorkflowInput
from tests.e2e import address_of, cli_signal, worker_process
from tests.fake_openai import FakeOpenAIServer
from tests.helpers import (
    is_running,
    script_env,
    script_risky_proposal,
    start_run,
    wait_for_output,
    wait_until,
)
from tests.record_histories import started_children


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [("true", Outcome.APPROVED), ("false", Outcome.REJECTED)],
    ids=["approve", "reject"],
)
async def test_a_stage_decided_with_the_temporal_cli_decides_the_parent(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
    verdict: str,
    outcome: Outcome,
) -> None:
    """``--input true`` approves the stage and the action runs; ``--input false`` rejects
    it, the parent ends rejected, and nothing executes."""
    client = dev_server.client
    text = script_risky_proposal(
        llm_server,
        f"Rotate the production database password for {workflow_id}",
        action_type="rotate_password",
    )
    env = script_env(address_of(dev_server), llm_server.url, task_queue)
    async with worker_process(env, tmp_path / "worker.log") as worker:
        handle = await start_run(
            client,
            task_queue,
            workflow_id,
            WorkflowInput(user_request=text, approval_stages=["manager"]),
        )
        (child_id,) = await wait_until(lambda: started_children(handle), bool)
        await wait_until(lambda: is_running(client.get_workflow_handle(child_id)), bool)
        # The stage's notice, printed by the worker, names the command we are about to run.
        notice = await wait_for_output(worker.log, f"--workflow-id {child_id} --name approve")
        assert "Approve or reject stage 'manager'" in notice

        signalled = await cli_signal(worker, child_id, APPROVE_SIGNAL, verdict)
        assert signalled.returncode == 0, signalled.output
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert worker.process.poll() is None, worker.output()
    approved = outcome == Outcome.APPROVED
    assert result.outcome == outcome, result.message
    assert [(stage.stage, stage.approved) for stage in result.stages] == [("manager", approved)]
    assert result.decision is not None
    assert result.decision.reviewer == "temporal-cli (stage manager)"
    assert result.decision.approved is approved
    # The execute activity logs its idempotency key, <workflow id>/<request id>.
    executed = worker.output().count(f"[idempotency key {workflow_id}/")
    if approved:
        assert result.execution is not None
        assert executed == 1
    else:
        assert result.execution is None
        assert executed == 0
        assert "Nothing was executed" in result.message
