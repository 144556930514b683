from temporalio.testing import WorkflowEnvironment

from activities.openai_responses import AnalysisActivities
from constants import SUBMIT_DECISION_UPDATE, WORKFLOW_TYPE
from models.models import ApprovalDecision, Outcome, WorkflowInput, WorkflowResult, WorkflowState
from tests.helpers import wait_for_state
from worker import build_worker


async def test_smoke(
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    task_queue: str,
    workflow_id: str,
) -> None:
    client = time_skipping_env.client
    async with build_worker(client, task_queue, analysis_activities):
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            WorkflowInput(user_request="Delete prod db"),
            id=workflow_id,
            task_queue=task_queue,
            result_type=WorkflowResult,
        )
        status = await wait_for_state(handle, WorkflowState.AWAITING_APPROVAL)
        await handle.execute_update(
            SUBMIT_DECISION_UPDATE,
            ApprovalDecision(
                request_id=status.approval_request.request_id, approved=True, reviewer="bob"
            ),
        )
        result = await handle.result()
        assert result.outcome == Outcome.APPROVED
        h2 = await client.start_workflow(
            WORKFLOW_TYPE,
            WorkflowInput(user_request="Delete prod db"),
            id=workflow_id + "2",
            task_queue=task_queue,
            result_type=WorkflowResult,
        )
        assert (await h2.result()).outcome == Outcome.TIMED_OUT


async def test_dev(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    task_queue: str,
    workflow_id: str,
) -> None:
    client = dev_server.client
    async with build_worker(client, task_queue, analysis_activities):
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            WorkflowInput(user_request="Summarise the report"),
            id=workflow_id,
            task_queue=task_queue,
            result_type=WorkflowResult,
        )
        assert (await handle.result()).outcome == Outcome.AUTO_APPROVED
