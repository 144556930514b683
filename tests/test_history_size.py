"""What an approved run costs in history, against the plain baseline workflow.

Every event is a server write, a replay step and memory in a worker's cache, for as long
as a person takes to decide. The product adds an audit trail, a preview, notices, a
deadline and a status to the baseline's analyse-wait-execute; this keeps what that costs
within 1.3 times the baseline's events, for both ways of deciding. Both run on the dev
server, started as the scripts start them (search attribute included).
"""

import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.propose_action import AnalysisActivities
from benchmarks.baseline_execute_action import execute_action
from benchmarks.baseline_workflow import BaselineApprovalWorkflow
from benchmarks.fake_openai import FakeOpenAIServer, fallback_tool_call, ok
from benchmarks.subjects import BASELINE, PRODUCT, Subject
from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE
from models.models import ApprovalStatus
from tests.helpers import wait_until
from worker_setup import build_worker

MAX_RATIO = 1.3
APPROVAL_STATUS = SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)
PENDING = ApprovalStatus.PENDING.value


async def approved_run_events(
    client: Client, subject: Subject, queue: str, llm: FakeOpenAIServer, path: str
) -> int:
    text = f"Count my events {uuid.uuid4().hex[:8]}"
    call = fallback_tool_call(text)
    llm.on(
        text,
        ok(
            {
                "action_type": "send_email",
                "description": "E-mail ops",
                "reasoning": "requested",
                "risky_action": True,
                "tool_call": call,
            }
        ),
    )
    handle = await subject.start(client, queue, text, f"events-{uuid.uuid4().hex[:8]}")
    await wait_until(lambda: _status(handle), lambda status: status == PENDING)
    decisions = await subject.prepare_decision(handle)
    await (decisions.by_update() if path == "update" else decisions.by_signal())
    assert subject.approved(await handle.result())
    return len((await handle.fetch_history()).events)


async def _status(handle: WorkflowHandle[Any, Any]) -> str | None:
    """The run's ``ApprovalStatus``: both subjects mark themselves Pending once they wait."""
    return (await handle.describe()).typed_search_attributes.get(APPROVAL_STATUS)


@pytest.mark.parametrize("path", ["update", "signal"])
async def test_an_approved_run_records_at_most_1_3x_the_baselines_events(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    record_property: Any,
    path: str,
) -> None:
    client = dev_server.client
    queue = f"events-{uuid.uuid4().hex[:8]}"
    baseline_worker = Worker(
        client,
        task_queue=queue,
        workflows=[BaselineApprovalWorkflow],
        activities=[analysis_activities.analyze_request, execute_action],
    )
    async with baseline_worker:
        baseline = await approved_run_events(client, BASELINE, queue, llm_server, path)
    async with build_worker(client, queue, analysis_activities):
        product = await approved_run_events(client, PRODUCT, queue, llm_server, path)
    record_property("measured", f"approved by {path}: product {product}, baseline {baseline}")
    assert product <= MAX_RATIO * baseline, (product, baseline)
