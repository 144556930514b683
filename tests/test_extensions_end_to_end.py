"""Staged approval end to end: a real dev server, the real worker process, the real scripts.

The approver, a member of the stage, does exactly what the stage's notice tells them to do:
run its ``send_approval <run> <request> approve|reject "notes" --stage <stage> --reviewer
MEMBER`` line with their own name.
"""

import asyncio
import shlex
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from benchmarks.fake_openai import FakeOpenAIServer
from models.models import Outcome, WorkflowInput
from tests.e2e import address_of, script, worker_process
from tests.helpers import (
    STAGE_MEMBERS,
    is_running,
    script_env,
    script_risky_proposal,
    start_run,
    wait_for_output,
    wait_until,
)
from tests.record_histories import started_children


def notice_command(notice: str, verdict: str, member: str) -> list[str]:
    """The notice's ``send_approval`` line for ``verdict``, as its member types it: the
    arguments after ``-m send_approval``, MEMBER replaced by their name."""
    line = next(
        line
        for line in notice.splitlines()
        if "-m send_approval" in line and f" {verdict} " in line
    )
    words = shlex.split(line)
    words = words[words.index("send_approval") + 1 :]
    return [member if word == "MEMBER" else word for word in words]


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [("true", Outcome.APPROVED), ("false", Outcome.REJECTED)],
    ids=["approve", "reject"],
)
async def test_a_stage_decided_by_its_member_from_the_notice_decides_the_parent(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
    tmp_path: Path,
    verdict: str,
    outcome: Outcome,
) -> None:
    """The notice's approve line approves the stage and the action runs; its reject line
    rejects it, the parent ends rejected, and nothing executes."""
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
            WorkflowInput(
                user_request=text, approval_stages=["manager"], stage_approvers=STAGE_MEMBERS
            ),
        )
        (child_id,) = await wait_until(lambda: started_children(handle), bool)
        await wait_until(lambda: is_running(client.get_workflow_handle(child_id)), bool)
        # The stage's notice, printed by the worker, names the command we are about to run.
        notice = await wait_for_output(worker.log, "--stage manager --reviewer MEMBER", count=2)
        assert "Approve or reject stage 'manager', as one of its members:" in notice

        command = notice_command(notice, "approve" if verdict == "true" else "reject", "mia")
        sent = await script("send_approval", *command, env=env)
        assert sent.returncode == 0, sent.output
        assert "mia" in sent.stdout and "stage manager" in sent.stdout
        result = await asyncio.wait_for(handle.result(), timeout=60)
        assert worker.process.poll() is None, worker.output()
    approved = outcome == Outcome.APPROVED
    assert result.outcome == outcome, result.message
    assert [(stage.stage, stage.approved) for stage in result.stages] == [("manager", approved)]
    assert result.decision is not None
    assert result.decision.reviewer == "mia (stage manager)"
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
