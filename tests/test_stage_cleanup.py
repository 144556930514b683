"""A stage never outlives its request, however the request ends.

Each stage runs as a child workflow started with ``ParentClosePolicy.TERMINATE``. Cancelling
the parent (``tests/test_staged_approval.py``) would also end a child started with ABANDON,
since the parent cancels what it awaits; terminating the parent runs none of its code, so
only the server's parent-close policy can end the child. Runs on the real dev server: the
time-skipping test server does not apply parent-close policies on termination.
"""

import contextlib

from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import WorkflowExecutionDescription
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer
from models.models import WorkflowInput
from tests.helpers import STAGE_MEMBERS, is_running, script_risky_proposal, started, wait_until
from tests.record_histories import started_children
from worker_setup import build_worker

TERMINATED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


async def test_terminating_the_parent_terminates_the_waiting_stage(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> None:
    client = dev_server.client
    text = script_risky_proposal(llm_server, f"Renew the contract of {workflow_id}")
    run_input = WorkflowInput(
        user_request=text, approval_stages=["manager"], stage_approvers=STAGE_MEMBERS
    )
    children: list[str] = []

    async def stage() -> WorkflowExecutionDescription:
        return await client.get_workflow_handle(children[0]).describe()

    try:
        async with (
            build_worker(client, task_queue, analysis_activities),
            started(client, task_queue, workflow_id, run_input) as handle,
        ):
            children += await wait_until(lambda: started_children(handle), bool)
            await wait_until(lambda: is_running(client.get_workflow_handle(children[0])), bool)
            await handle.terminate("the request was withdrawn")
            parent = await handle.describe()
            described = await wait_until(stage, lambda d: d.status != RUNNING)
    finally:
        # Were the policy ABANDON, the stage would wait on after the test.
        for child_id in children:
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(child_id).terminate("test finished")
    assert parent.status == TERMINATED
    assert described.status == TERMINATED
    assert described.parent_id == workflow_id
