"""Staged approval end to end: a real dev server, the real worker process, the real CLI.

The approver does exactly what the stage's notice tells them to do: run
``temporal workflow signal --workflow-id <parent>-<stage> --name approve --input true``.
"""

import asyncio
from pathlib import Path

from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from constants import APPROVE_SIGNAL, WORKFLOW_TYPE
from models.models import Outcome, WorkflowInput, WorkflowResult
from tests.fake_openai import FakeOpenAIServer, ok
from tests.helpers import (
    TEMPORAL_CLI,
    background_script,
    script_env,
    wait_for_output,
    wait_until,
)

STARTUP_SECONDS = 60.0


async def is_running(handle: WorkflowHandle) -> bool:
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        return False
    return description.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the Temporal CLI without blocking the event loop; return its code and output."""
    process = await asyncio.create_subprocess_exec(
        str(TEMPORAL_CLI),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_a_stage_approved_with_the_temporal_cli_completes_the_parent(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
) -> None:
    client = dev_server.client
    address = client.service_client.config.target_host
    text = f"Rotate the production database password for {workflow_id}"
    llm_server.on(
        text,
        ok(
            {
                "action_type": "rotate_password",
                "description": text,
                "reasoning": "requested",
                "risky_action": True,
                "parameters": {},
            }
        ),
    )
    env = script_env(address, llm_server.url, task_queue)
    child_id = f"{workflow_id}-manager"
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log, background_script("worker", env=env, log=log) as worker:
        await wait_for_output(log_path, "Worker started", timeout=STARTUP_SECONDS)
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            WorkflowInput(user_request=text, approval_stages=["manager"]),
            id=workflow_id,
            task_queue=task_queue,
            result_type=WorkflowResult,
        )
        await wait_until(lambda: is_running(client.get_workflow_handle(child_id)), bool)
        # The stage's notice, printed by the worker, names the command we are about to run.
        notice = await wait_for_output(log_path, f"--workflow-id {child_id} --name approve")
        assert "Approve or reject stage 'manager'" in notice

        code, output = await run_cli(
            "workflow",
            "signal",
            "--address",
            address,
            "--namespace",
            "default",
            "--workflow-id",
            child_id,
            "--name",
            APPROVE_SIGNAL,
            "--input",
            "true",
            env=env,
        )
        assert code == 0, output
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert worker.poll() is None, log_path.read_text()
    assert result.outcome == Outcome.APPROVED, result.message
    assert [(stage.stage, stage.approved) for stage in result.stages] == [("manager", True)]
    assert result.decision is not None and result.decision.reviewer == "stage manager"
    assert result.execution is not None
