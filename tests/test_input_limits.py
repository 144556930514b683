"""Every entrance of a run bounds what it accepts (limits in ``models/limits.py``).

At the limit a decision is applied; one character over, the ``submit_decision`` update is
rejected by its validator with the reason (nothing reaches history; the run counts it in
``refused_updates``) and both signals' refusals are recorded. A start that bypasses
``start_workflow`` with a request over the limit ends at once as ``input_refused``; a model
answer over a limit is malformed output. A flood of refused signals leaves the audit trail
bounded, and the run still decides and completes.
"""

import asyncio
import time
from collections.abc import Callable

import pytest

from benchmarks.fake_openai import ok
from constants import APPROVAL_DECISION_SIGNAL, APPROVE_SIGNAL, SUBMIT_DECISION_UPDATE
from models.limits import (
    MAX_DESCRIPTION_CHARS,
    MAX_ITEMISED_REFUSALS,
    MAX_NAME_CHARS,
    MAX_NOTES_CHARS,
    MAX_REFUSAL_DETAIL_CHARS,
    MAX_REQUEST_CHARS,
    MAX_TOOL_CALL_BYTES,
    MAX_VOTES,
)
from models.models import (
    ApprovalDecision,
    ApprovalRequest,
    Outcome,
    VotingPolicy,
    WorkflowResult,
    WorkflowState,
)
from tests.helpers import TimeSkippingRuns, wait_until
from tests.record_histories import (
    amended_call_over_limit,
    decision_for,
    pending_request,
    status_of,
    wait_for_refusals,
)
from tests.test_workflow_refusals import RISKY, accepted_updates, refusals, refused_update
from workflows.audit_trail import NOT_ITEMISED

FLOOD = 3_000
FLOOD_CONCURRENCY = 200

Oversize = Callable[[ApprovalRequest], ApprovalDecision]


def over(limit: int) -> str:
    return f"is {limit + 1:,} characters; the limit is {limit:,}"


def longest_decision(pending: ApprovalRequest, reviewer: str = "alice") -> ApprovalDecision:
    """An approval with the longest notes. (An approval with the largest edit is asked
    about again: ``tests/test_largest_runs.py`` runs it.)"""
    return decision_for(pending, approved=True, reviewer=reviewer, notes="n" * MAX_NOTES_CHARS)


OVERSIZED: list[tuple[str, Oversize, str]] = [
    (
        "notes",
        lambda p: decision_for(p, approved=True, notes="n" * (MAX_NOTES_CHARS + 1)),
        f"the reviewer notes {over(MAX_NOTES_CHARS)}",
    ),
    (
        "reviewer",
        lambda p: decision_for(p, approved=True, reviewer="r" * (MAX_NAME_CHARS + 1)),
        f"the reviewer name {over(MAX_NAME_CHARS)}",
    ),
    (
        "amended description",
        lambda p: longest_decision(p).model_copy(
            update={
                "amended_action": p.proposed_action.model_copy(
                    update={"description": "d" * (MAX_DESCRIPTION_CHARS + 1)}
                )
            }
        ),
        f"the amended action: description {over(MAX_DESCRIPTION_CHARS)}",
    ),
    (
        "amended tool call",
        amended_call_over_limit,
        f"the amended action: the tool call is {MAX_TOOL_CALL_BYTES + 1:,} bytes as JSON; "
        f"the limit is {MAX_TOOL_CALL_BYTES:,}",
    ),
    (
        "request id",
        lambda p: decision_for(p, approved=True).model_copy(
            update={"request_id": "i" * (MAX_NAME_CHARS + 1)}
        ),
        f"the request ID {over(MAX_NAME_CHARS)}",
    ),
]
OVERSIZED_IDS = [case[0] for case in OVERSIZED]


def assert_applied_at_the_limit(result: WorkflowResult, reviewer: str = "alice") -> None:
    assert result.outcome == Outcome.APPROVED, result.message
    assert result.decision is not None and result.decision.reviewer == reviewer
    assert result.decision.reviewer_notes == "n" * MAX_NOTES_CHARS


@pytest.mark.parametrize(("label", "oversize", "reason"), OVERSIZED, ids=OVERSIZED_IDS)
async def test_the_update_refuses_one_character_over_and_applies_the_limit(
    runs: TimeSkippingRuns, label: str, oversize: Oversize, reason: str
) -> None:
    async with runs.worker():
        handle = await runs.start(f"Delete stale orders [update {label}]", ok(RISKY))
        pending = await pending_request(handle)
        assert await refused_update(handle, oversize(pending)) == reason
        status = await status_of(handle)
        assert status.refused_updates == 1
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.votes == []
        await handle.execute_update(SUBMIT_DECISION_UPDATE, longest_decision(pending))
        result = await handle.result()
        history = await handle.fetch_history()
    assert_applied_at_the_limit(result)
    # Rejected by the validator: not in the audit trail, and only the applied update in history.
    assert refusals(result) == []
    assert accepted_updates(history) == 1


@pytest.mark.parametrize(("label", "oversize", "reason"), OVERSIZED, ids=OVERSIZED_IDS)
async def test_the_decision_signal_records_one_character_over_and_applies_the_limit(
    runs: TimeSkippingRuns, label: str, oversize: Oversize, reason: str
) -> None:
    async with runs.worker():
        handle = await runs.start(f"Delete stale orders [signal {label}]", ok(RISKY))
        pending = await pending_request(handle)
        await handle.signal(APPROVAL_DECISION_SIGNAL, oversize(pending))
        status = await wait_for_refusals(handle, 1)
        assert reason in status.audit_trail[-1].detail
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.votes == []
        await handle.signal(APPROVAL_DECISION_SIGNAL, longest_decision(pending))
        result = await handle.result()
    assert_applied_at_the_limit(result)
    assert len(refusals(result)) == 1


async def test_the_approve_signal_records_an_oversized_payload_in_a_bounded_line(
    runs: TimeSkippingRuns,
) -> None:
    """The shorthand carries true or false: anything else, however long, is refused in a
    line of bounded length that never repeats it."""
    async with runs.worker():
        handle = await runs.start("Delete stale orders [approve oversized]", ok(RISKY))
        await pending_request(handle)
        await handle.signal(APPROVE_SIGNAL, "yes" * 100_000)
        refused = (await wait_for_refusals(handle, 1)).audit_trail[-1].detail
        await handle.signal(APPROVE_SIGNAL, True)
        result = await handle.result()
    assert "not true or false" in refused and "yesyes" not in refused
    assert len(refused) <= MAX_REFUSAL_DETAIL_CHARS
    assert result.outcome == Outcome.APPROVED


async def test_a_request_over_the_limit_that_bypasses_the_scripts_ends_input_refused(
    runs: TimeSkippingRuns,
) -> None:
    """E.g. `temporal workflow start --input`: the run ends at once with the limit named,
    instead of building payloads Temporal refuses; the model is never asked."""
    request = "Delete " + "x" * (MAX_REQUEST_CHARS - 6)
    async with runs.worker():
        handle = await runs.start(request, ok(RISKY))
        result = await handle.result()
    assert result.outcome == Outcome.INPUT_REFUSED
    assert result.message == f"Refused: the request {over(MAX_REQUEST_CHARS)}."
    assert [entry.event for entry in result.audit_trail] == ["input_refused"]
    assert runs.llm_server.calls(request) == 0


async def test_a_request_at_the_limit_is_analysed_and_decided(runs: TimeSkippingRuns) -> None:
    request = "Delete " + "x" * (MAX_REQUEST_CHARS - 7)
    async with runs.worker():
        handle = await runs.start(request, ok(RISKY))
        pending = await pending_request(handle)
        assert pending.user_request == request
        await handle.signal(APPROVE_SIGNAL, True)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED


async def test_a_model_answer_over_a_limit_is_malformed_then_analysis_failed(
    runs: TimeSkippingRuns,
) -> None:
    """Bounded retries (malformed output), then the recorded outcome: never a proposal the
    workflow would copy into payloads Temporal refuses."""
    request = "Delete stale orders [answer too long]"
    too_long = RISKY | {"description": "d" * (MAX_DESCRIPTION_CHARS + 1)}
    async with runs.worker():
        handle = await runs.start(request, *[ok(too_long)] * 3)
        result = await handle.result()
    assert result.outcome == Outcome.ANALYSIS_FAILED
    assert f"description {over(MAX_DESCRIPTION_CHARS)}" in result.message
    assert runs.llm_server.calls(request) == 3


async def test_votes_past_the_limit_are_refused(runs: TimeSkippingRuns) -> None:
    """Anyone may vote and rejections do not veto: the request still counts a bounded
    number of votes."""
    voting = VotingPolicy(required_approvals=MAX_VOTES, rejection_vetoes=False)
    async with runs.worker():
        handle = await runs.start("Delete stale orders [votes]", ok(RISKY), voting=voting)
        pending = await pending_request(handle)
        for n in range(MAX_VOTES):
            no = decision_for(pending, approved=False, reviewer=f"voter-{n}")
            await handle.execute_update(SUBMIT_DECISION_UPDATE, no)
        one_more = decision_for(pending, approved=True, reviewer="late")
        reason = await refused_update(handle, one_more)
        result = await handle.result()
    assert reason == f"this request already counts {MAX_VOTES} votes, the most one request takes"
    assert result.outcome == Outcome.TIMED_OUT and len(result.votes) == MAX_VOTES


async def test_a_flood_of_refused_signals_leaves_the_trail_bounded_and_the_run_decides(
    runs: TimeSkippingRuns, record_property: Callable[[str, object], None]
) -> None:
    """3,000 decisions for another request, sent at once: the first are itemised, the rest
    counted in one entry; the valid decision that follows still settles the run."""
    async with runs.worker():
        handle = await runs.start("Delete stale orders [flood]", ok(RISKY))
        pending = await pending_request(handle)
        wrong = decision_for(pending, approved=True, reviewer="mallory").model_copy(
            update={"request_id": "not-this-one"}
        )
        gate = asyncio.Semaphore(FLOOD_CONCURRENCY)

        async def send_one() -> None:
            async with gate:
                await handle.signal(APPROVAL_DECISION_SIGNAL, wrong)

        started = time.monotonic()
        await asyncio.gather(*(send_one() for _ in range(FLOOD)))
        sent = time.monotonic() - started
        counted = f"{FLOOD - MAX_ITEMISED_REFUSALS:,} more refused decisions"
        await wait_until(
            lambda: status_of(handle),
            lambda s: any(counted in e.detail for e in s.audit_trail),
            timeout=120,
        )
        await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(pending, approved=True))
        result = await handle.result()
        history = await handle.fetch_history()
    events = [entry.event for entry in result.audit_trail]
    assert result.outcome == Outcome.APPROVED
    assert events.count("decision_refused") == MAX_ITEMISED_REFUSALS
    assert events.count(NOT_ITEMISED) == 1
    assert len(events) < MAX_ITEMISED_REFUSALS + 10
    result_bytes = len(result.model_dump_json())
    record_property(
        "measured",
        f"{FLOOD:,} refused signals sent in {sent:.1f}s; audit trail {len(events)} entries, "
        f"result {result_bytes:,} bytes; history {len(history.events):,} events",
    )
