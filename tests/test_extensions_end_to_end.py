"""Staged approval end to end: a real dev server, the real worker process, the real CLI.

The approver does exactly what the stage's notice tells them to do: run
``temporal workflow signal --workflow-id <parent>-<stage> --name approve --input true``.
"""

import asyncio
from pathlib import Path

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


async def test_a_stage_approved_with_the_temporal_cli_completes_the_parent(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
) -> None:
    client = dev_server.client
    text = script_risky_proposal(
        llm_server,
        f"Rotate the production database password for {workflow_id}",
        action_type="rotate_password",
    )
    env = script_env(address_of(dev_server), llm_server.url, task_queue)
    child_id = f"{workflow_id}-manager"
    async with worker_process(env, tmp_path / "worker.log") as worker:
        handle = await start_run(
            client,
            task_queue,
            workflow_id,
            WorkflowInput(user_request=text, approval_stages=["manager"]),
        )
        await wait_until(lambda: is_running(client.get_workflow_handle(child_id)), bool)
        # The stage's notice, printed by the worker, names the command we are about to run.
        notice = await wait_for_output(worker.log, f"--workflow-id {child_id} --name approve")
        assert "Approve or reject stage 'manager'" in notice

        signalled = await cli_signal(worker, child_id, APPROVE_SIGNAL, "true")
        assert signalled.returncode == 0, signalled.output
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert worker.process.poll() is None, worker.output()
    assert result.outcome == Outcome.APPROVED, result.message
    assert [(stage.stage, stage.approved) for stage in result.stages] == [("manager", True)]
    assert result.decision is not None and result.decision.reviewer == "stage manager"
    assert result.execution is not None
