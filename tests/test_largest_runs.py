"""The largest runs the limits allow complete, on every path, on a real dev server.

Every text is at its limit and made of JSON's costliest character (a control character,
written ``\\u0001``: 6 bytes), so these are the heaviest payloads a user, a reviewer or the
model can make the workflow build: the request, the model's proposal, notes and names,
an amendment, a trail full of refusals. Each run's history size and its largest payloads
(status answer, result) are reported under "measured". And the note that used to wedge a
run, just under Temporal's own payload limit, is refused while the run carries on.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer, ok
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVE_SIGNAL,
    DECISION_REFUSED_ERROR,
    SUBMIT_DECISION_UPDATE,
)
from models.limits import (
    MAX_APPROVERS,
    MAX_ITEMISED_REFUSALS,
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    MAX_REQUEST_CHARS,
    MAX_STAGES,
)
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    EscalationPolicy,
    Outcome,
    VotingPolicy,
    WorkflowInput,
)
from tests.helpers import Run, decide_stage_as_member, is_running, started, wait_until
from tests.record_histories import pending_request, status_of, wait_for_refusals
from tests.test_limits import (
    COSTLY,
    PAYLOAD_LIMIT_BYTES,
    largest_action,
    largest_tool_call,
    text,
)
from worker_setup import build_worker

ESCALATE_AFTER_SECONDS = 2
OTHER_COSTLY = "\u0002"  # as costly in JSON as COSTLY: an edit as large as the call
STAGE_NAME_CHARS = 40  # stage names become child workflow IDs: kept short and plain
LARGEST_STAGES = [f"stage-{n:02d}-".ljust(STAGE_NAME_CHARS, "s") for n in range(MAX_STAGES)]
# Each stage's members, the longest names, one person a stage (one approves one stage);
# every stage's request names them, so they count in each child's input.
LARGEST_MEMBERS = {
    stage: [text(MAX_NAME_CHARS, f"member-{n}-", COSTLY)] for n, stage in enumerate(LARGEST_STAGES)
}

Decide = Callable[[Client, Run, ApprovalRequest], Awaitable[None]]


@dataclass(frozen=True)
class LargestRun:
    """The dev server, the real worker wiring, and this test's queue and workflow ID."""

    client: Client
    analysis: AnalysisActivities
    llm_server: FakeOpenAIServer
    task_queue: str
    workflow_id: str

    async def complete(self, decide: Decide, **fields: object) -> tuple[Run, str]:
        """Run a request at the limit, with the largest proposal, decided by ``decide``;
        return the handle and what was measured."""
        request = "Delete " + text(MAX_REQUEST_CHARS - 7, self.workflow_id, COSTLY)
        self.llm_server.on(request, ok(largest_action(COSTLY).model_dump(mode="json")))
        run_input = WorkflowInput(user_request=request, approval_timeout_seconds=600, **fields)
        async with (
            build_worker(self.client, self.task_queue, self.analysis),
            started(self.client, self.task_queue, self.workflow_id, run_input) as handle,
        ):
            pending = await pending_request(handle)
            await refuse_until_counted(handle, pending)
            await decide(self.client, handle, pending)
            result = await handle.result()
            status = await status_of(handle)
        assert result.outcome == Outcome.APPROVED, result.message
        description = (await handle.describe()).raw_description.workflow_execution_info
        status_bytes = len(status.model_dump_json().encode())
        assert status_bytes < PAYLOAD_LIMIT_BYTES / 2
        return handle, (
            f"history {description.history_size_bytes:,} bytes in "
            f"{description.history_length:,} events; status answer {status_bytes:,} bytes, "
            f"result {len(result.model_dump_json().encode()):,} bytes "
            f"(Temporal's payload limit: {PAYLOAD_LIMIT_BYTES:,})"
        )


@pytest.fixture
async def largest(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> AsyncIterator[LargestRun]:
    yield LargestRun(dev_server.client, analysis_activities, llm_server, task_queue, workflow_id)


def name(n: int) -> str:
    return text(MAX_NAME_CHARS, f"voter-{n}-", COSTLY)


def longest_vote(pending: ApprovalRequest, reviewer: str, **fields: object) -> ApprovalDecision:
    return ApprovalDecision(
        request_id=pending.request_id,
        approved=True,
        reviewer=reviewer,
        reviewer_notes=text(MAX_NOTES_CHARS, fill=COSTLY),
        **fields,
    )


async def refuse_until_counted(handle: Run, pending: ApprovalRequest) -> None:
    """Fill the trail's itemised refusals with the longest ones, and start counting."""
    refused = longest_vote(pending, text(MAX_NAME_CHARS, "mallory", COSTLY)).model_copy(
        update={"request_id": text(MAX_NAME_CHARS, fill=COSTLY)}
    )
    for _ in range(MAX_ITEMISED_REFUSALS + 5):
        await handle.signal(APPROVAL_DECISION_SIGNAL, refused)
    await wait_for_refusals(handle, MAX_ITEMISED_REFUSALS)


async def approve_with_the_largest_edit(_: Client, handle: Run, pending: ApprovalRequest) -> None:
    """The largest call, edited into another as large, is asked about again: the second
    approver approves the edit (the first, who edited it, may not)."""
    edit = largest_action(COSTLY).with_arguments(largest_tool_call(OTHER_COSTLY).arguments)
    await handle.execute_update(
        SUBMIT_DECISION_UPDATE, longest_vote(pending, name(0), amended_action=edit)
    )
    again = await wait_until(
        lambda: pending_request(handle), lambda request: request.request_id != pending.request_id
    )
    await handle.execute_update(SUBMIT_DECISION_UPDATE, longest_vote(again, name(1)))


async def every_approver_votes(_: Client, handle: Run, pending: ApprovalRequest) -> None:
    for n in range(MAX_APPROVERS):
        await handle.execute_update(SUBMIT_DECISION_UPDATE, longest_vote(pending, name(n)))


async def everyone_votes_once_escalated(
    client: Client, handle: Run, pending: ApprovalRequest
) -> None:
    await wait_until(
        lambda: status_of(handle),
        lambda s: s.approval_request is not None and s.approval_request.escalated,
    )
    await every_approver_votes(client, handle, pending)


async def approve_every_stage(client: Client, handle: Run, pending: ApprovalRequest) -> None:
    for position in range(1, MAX_STAGES + 1):
        status = await wait_until(
            lambda: status_of(handle),
            lambda s, at=position: s.current_stage is not None and s.current_stage.position == at,
        )
        assert status.current_stage is not None
        child_id = status.current_stage.child_workflow_id
        child = client.get_workflow_handle(child_id)
        await wait_until(lambda c=child: is_running(c), bool)
        await decide_stage_as_member(client, child_id, members=LARGEST_MEMBERS)


async def test_the_largest_approval_with_edits_completes(
    largest: LargestRun, record_property: Callable[[str, object], None]
) -> None:
    _, measured = await largest.complete(
        approve_with_the_largest_edit, approvers=[name(0), name(1)]
    )
    record_property("measured", f"largest approve-with-edits run: {measured}")


async def test_the_largest_quorum_with_every_approver_voting_completes(
    largest: LargestRun, record_property: Callable[[str, object], None]
) -> None:
    voters = [name(n) for n in range(MAX_APPROVERS)]
    voting = VotingPolicy(required_approvals=MAX_APPROVERS)
    _, measured = await largest.complete(every_approver_votes, approvers=voters, voting=voting)
    record_property("measured", f"largest quorum run ({MAX_APPROVERS} votes): {measured}")


async def test_the_largest_escalation_completes(
    largest: LargestRun, record_property: Callable[[str, object], None]
) -> None:
    half = MAX_APPROVERS // 2
    escalation = EscalationPolicy(
        after_seconds=ESCALATE_AFTER_SECONDS,
        approvers=[name(n) for n in range(half, MAX_APPROVERS)],
    )
    _, measured = await largest.complete(
        everyone_votes_once_escalated,
        approvers=[name(n) for n in range(half)],
        voting=VotingPolicy(required_approvals=MAX_APPROVERS),
        escalation=escalation,
    )
    record_property("measured", f"largest escalated run: {measured}")


async def test_the_largest_staged_run_completes(
    largest: LargestRun, record_property: Callable[[str, object], None]
) -> None:
    _, measured = await largest.complete(
        approve_every_stage, approval_stages=LARGEST_STAGES, stage_approvers=LARGEST_MEMBERS
    )
    record_property("measured", f"largest staged run ({MAX_STAGES} stages): {measured}")


async def test_a_note_near_temporals_own_limit_is_refused_and_the_run_goes_on(
    largest: LargestRun,
) -> None:
    """What used to wedge a run: a 1.9 MB note, by update and by signal. Temporal takes
    each (under its 2 MB limit); the workflow refuses both, in a few words (the update's
    validator before it reaches history), and carries on."""
    huge = text(1_900_000, "long note: ")
    request = "Delete the stale rows [huge note]"
    largest.llm_server.on(request, ok(largest_action().model_dump(mode="json")))
    run_input = WorkflowInput(user_request=request)
    async with (
        build_worker(largest.client, largest.task_queue, largest.analysis),
        started(largest.client, largest.task_queue, largest.workflow_id, run_input) as handle,
    ):
        pending = await pending_request(handle)
        decision = longest_vote(pending, "ann").model_copy(update={"reviewer_notes": huge})
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(SUBMIT_DECISION_UPDATE, decision)
        await handle.signal(APPROVAL_DECISION_SIGNAL, decision)
        status = await wait_for_refusals(handle, 1)
        await handle.signal(APPROVE_SIGNAL, True)
        result = await handle.result()
    reason = f"the reviewer notes is {len(huge):,} characters; the limit is {MAX_NOTES_CHARS:,}"
    assert getattr(refused.value.cause, "message", None) == reason
    assert getattr(refused.value.cause, "type", None) == DECISION_REFUSED_ERROR
    # The update was rejected by its validator: counted, never in history nor the trail;
    # the signal is in history, so its refusal is in the trail.
    assert status.refused_updates == 1
    assert result.outcome == Outcome.APPROVED
    assert [reason in e.detail for e in result.audit_trail if e.event == "decision_refused"] == [
        True
    ]
    history = await handle.fetch_history()
    assert not [
        e
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
