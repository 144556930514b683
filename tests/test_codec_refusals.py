"""A payload no worker can decode is refused by the run, never a failed workflow task.

A signal whose payload names a key no worker holds, or an encoding nobody knows, once
failed every workflow task of the run it reached, for ever. Now the worker hands it to the
signal handler as ``Undecodable``, the run records the refusal with the reason, and a
valid decision still decides the run. An update is refused by its validator, with the reason,
to its sender. Where a type is asked for (the workflow's input) the payload still fails
loudly.

With encryption on, a payload that is not encrypted is refused the same way: the key is
what proves a decision came from someone who holds it.
"""

import base64
import os
import uuid

import pytest
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import fallback_tool_call, ok
from client.connection import converter_with_keys, worker_converter
from client.status import not_progressing
from constants import (
    APPROVAL_DECISION_SIGNAL,
    APPROVE_SIGNAL,
    DECISION_REFUSED_ERROR,
    SUBMIT_DECISION_UPDATE,
)
from encryption.codec import (
    KEY_ID_METADATA,
    NOT_ENCRYPTED_REASON,
    EncryptionCodec,
    UndecryptablePayloadError,
)
from encryption.keys import KeyRing, parse_keys
from encryption.undecodable import UndecodablePayloadError
from models.models import ApprovalDecision, Outcome, WorkflowInput, WorkflowState
from models.validation import PayloadRefused, Undecodable, single_payload
from tests.helpers import TimeSkippingRuns, start_run, wait_until
from tests.record_histories import decision_for, pending_request, status_of, wait_for_refusals
from worker_setup import build_worker

WORKFLOW = WorkflowSerializationContext(namespace="default", workflow_id="wf-1")
ACTIVITY = ActivitySerializationContext(
    namespace="default",
    activity_id="1",
    activity_type="execute_action",
    activity_task_queue="q",
    workflow_id="wf-1",
    workflow_type="HumanInTheLoopWorkflow",
    is_local=False,
)
FORGED = Payload(
    metadata={"encoding": b"binary/encrypted", KEY_ID_METADATA: b"nobody"}, data=b"\x00" * 40
)
UNKNOWN_ENCODING = Payload(metadata={"encoding": b"binary/unknown"}, data=b"true")
NOT_HELD = "could not be decoded: it is encrypted with key ID 'nobody', "
RISKY = {
    "action_type": "delete_records",
    "description": "Delete the stale rows of the staging invoices table",
    "reasoning": "It is what the user asked for.",
    "risky_action": True,
    "tool_call": fallback_tool_call("Delete the stale rows of the staging invoices table"),
}


def new_ring(*key_ids: str) -> KeyRing:
    keys = [f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}" for key_id in key_ids]
    return parse_keys(keys, source="test")


def payload_of(value: object) -> Payload:
    (payload,) = pydantic_data_converter.payload_converter.to_payloads([value])
    return payload


async def decoded(converter: DataConverter, payloads: list[Payload], **hints: object) -> list:
    return await converter.decode(payloads, **hints)  # type: ignore[arg-type]


# --- the codec, the converter and single_payload on their own ---


@pytest.mark.parametrize("ring", [None, new_ring("k1")], ids=["keyless", "other key"])
async def test_a_worker_hands_a_signal_an_unknown_key_as_undecodable(ring: KeyRing | None) -> None:
    worker = worker_converter(converter_with_keys(ring)).with_context(WORKFLOW)
    (value,) = await decoded(worker, [FORGED])
    assert isinstance(value, Undecodable)
    assert "key ID 'nobody'" in value.reason
    with pytest.raises(PayloadRefused, match=NOT_HELD):
        single_payload([value], ApprovalDecision, "a valid ApprovalDecision")


async def test_an_unknown_encoding_or_malformed_json_is_undecodable_too() -> None:
    worker = worker_converter(converter_with_keys(None)).with_context(WORKFLOW)
    malformed = Payload(metadata={"encoding": b"json/plain"}, data=b"{")
    unknown, broken, fine = await decoded(worker, [UNKNOWN_ENCODING, malformed, payload_of(True)])
    assert unknown == Undecodable("unknown encoding 'binary/unknown'")
    assert isinstance(broken, Undecodable) and "Invalid JSON" in broken.reason
    assert fine is True


async def test_a_payload_that_opens_with_no_key_here_is_undecodable() -> None:
    ring = new_ring("k1")
    short = Payload(metadata={"encoding": b"binary/encrypted", KEY_ID_METADATA: b"k1"}, data=b"x")
    (sealed,) = await EncryptionCodec(new_ring("k1")).encode([payload_of(True)])
    worker = worker_converter(converter_with_keys(ring)).with_context(WORKFLOW)
    for value in await decoded(worker, [short, sealed]):
        assert isinstance(value, Undecodable)
        assert "does not open with encryption key 'k1'" in value.reason
    with pytest.raises(UndecryptablePayloadError, match="does not open"):  # not ValueError
        await EncryptionCodec(ring).decode([short])


async def test_where_a_type_is_asked_for_it_still_fails_loudly() -> None:
    """An update's argument or the workflow's input: the update is rejected, the task fails."""
    worker = worker_converter(converter_with_keys(new_ring("k1"))).with_context(WORKFLOW)
    with pytest.raises(UndecodablePayloadError, match=r"key ID 'nobody'.*add it as ID:"):
        await decoded(worker, [FORGED], type_hints=[ApprovalDecision])
    with pytest.raises(UndecodablePayloadError, match="not encrypted while encryption is on"):
        await decoded(worker, [payload_of(True)], type_hints=[bool])
    keyless = worker_converter(converter_with_keys(None)).with_context(WORKFLOW)
    with pytest.raises(KeyError, match="Unknown payload encoding binary/unknown"):
        await decoded(keyless, [UNKNOWN_ENCODING], type_hints=[bool])


async def test_activity_results_and_clients_still_fail_loudly() -> None:
    worker = worker_converter(converter_with_keys(new_ring("k1")))
    with pytest.raises(UndecryptablePayloadError, match="key ID 'nobody'"):
        await decoded(worker.with_context(ACTIVITY), [FORGED])
    keyless = worker_converter(converter_with_keys(None))
    with pytest.raises(KeyError, match="binary/unknown"):
        await decoded(keyless.with_context(ACTIVITY), [UNKNOWN_ENCODING])
    client = converter_with_keys(new_ring("k1")).with_context(WORKFLOW)
    with pytest.raises(UndecryptablePayloadError, match="key ID 'nobody'"):
        await decoded(client, [FORGED])


async def test_a_worker_on_a_client_without_a_codec_still_names_the_key() -> None:
    worker = worker_converter(pydantic_data_converter).with_context(WORKFLOW)
    (value,) = await decoded(worker, [FORGED])
    assert value == Undecodable(
        "it is encrypted with key ID 'nobody', and this worker holds no keys"
    )


async def test_with_keys_a_worker_takes_nothing_that_is_not_encrypted() -> None:
    """Whoever holds no key cannot decide (or start, or finish an activity): a payload in
    clear is refused like one under a key the worker lacks. Clients with the key, and a
    worker without keys (encryption off), read it as before."""
    ring = new_ring("k1")
    worker = worker_converter(converter_with_keys(ring))
    (value,) = await decoded(worker.with_context(WORKFLOW), [payload_of(True)])
    assert value == Undecodable(NOT_ENCRYPTED_REASON)
    with pytest.raises(UndecryptablePayloadError, match="not encrypted while encryption is on"):
        await decoded(worker.with_context(ACTIVITY), [payload_of(True)])
    keyless = worker_converter(converter_with_keys(None)).with_context(WORKFLOW)
    client = converter_with_keys(ring).with_context(WORKFLOW)
    for reader in (keyless, client):
        assert await decoded(reader, [payload_of(True)]) == [True]


def test_single_payload_refuses_an_undecodable_payload_before_counting() -> None:
    refused = Undecodable("unknown encoding 'binary/unknown'")
    with pytest.raises(PayloadRefused, match=r"^could not be decoded: unknown encoding"):
        single_payload([True, refused], bool, "true or false")
    assert single_payload([True], bool, "true or false") is True


async def test_a_forged_key_id_or_reason_is_cut_short() -> None:
    """A forged payload may be megabytes of metadata; the audit trail gets a line."""
    huge_key = Payload(metadata={"encoding": b"binary/encrypted", KEY_ID_METADATA: b"k" * 9999})
    huge_reason = Payload(
        metadata={"encoding": b"binary/undecodable", "undecodable-reason": b"r" * 9999}
    )
    worker = worker_converter(converter_with_keys(None)).with_context(WORKFLOW)
    key, reason = await decoded(worker, [huge_key, huge_reason])
    assert isinstance(key, Undecodable) and f"'{'k' * 64}...'" in key.reason
    assert len(key.reason) < 200
    assert reason == Undecodable("r" * 300)


# --- a run on the time-skipping server ---


async def send_raw_signal(client: Client, workflow_id: str, name: str, payload: Payload) -> None:
    """A signal as any client can send it, whatever its payload says about itself."""
    await client.workflow_service.signal_workflow_execution(
        SignalWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id),
            signal_name=name,
            input=Payloads(payloads=[payload]),
            identity="forger",
            request_id=str(uuid.uuid4()),
        )
    )


async def failed_workflow_tasks(handle: WorkflowHandle) -> int:
    events = [event.event_type async for event in handle.fetch_history_events()]
    return events.count(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)


def refusals(details: list[tuple[str, str]]) -> list[str]:
    return [detail for event, detail in details if event == "decision_refused"]


async def test_undecodable_signals_are_refused_and_recorded_and_the_run_goes_on(
    runs: TimeSkippingRuns,
) -> None:
    request = f"Delete stale invoices [undecodable {uuid.uuid4().hex[:8]}]"
    async with runs.worker():
        handle = await runs.start(request, ok(RISKY))
        pending = await pending_request(handle)
        await send_raw_signal(runs.client, handle.id, APPROVAL_DECISION_SIGNAL, FORGED)
        await send_raw_signal(runs.client, handle.id, APPROVE_SIGNAL, UNKNOWN_ENCODING)
        status = await wait_for_refusals(handle, 2)
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.decision is None
        await handle.signal(APPROVAL_DECISION_SIGNAL, decision_for(pending, approved=True))
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    refused = refusals([(entry.event, entry.detail) for entry in result.audit_trail])
    assert len(refused) == 2
    assert refused[0] == f"{NOT_HELD}and this worker holds no keys"
    assert refused[1] == "could not be decoded: unknown encoding 'binary/unknown'"
    assert await failed_workflow_tasks(handle) == 0


async def test_with_encryption_a_key_no_worker_holds_is_refused_by_signal_and_update(
    runs: TimeSkippingRuns,
) -> None:
    """A client encrypting with a key the worker lacks (rotated ahead of the workers, say):
    its signal is refused and recorded, its update is rejected to it with the reason (and
    counted); a client encrypting with the worker's key then decides the run."""
    ring = new_ring("k-worker")
    service, namespace = runs.client.service_client, runs.client.namespace
    keyed = Client(service, namespace=namespace, data_converter=converter_with_keys(ring))
    ahead = KeyRing(keys={**new_ring("nobody").keys, **ring.keys}, encrypting="nobody")
    forger = Client(service, namespace=namespace, data_converter=converter_with_keys(ahead))
    request = f"Delete stale invoices [encrypted {uuid.uuid4().hex[:8]}]"
    runs.llm_server.on(request, ok(RISKY))
    async with build_worker(keyed, runs.task_queue, runs.analysis):
        handle = await start_run(
            keyed, runs.task_queue, runs.workflow_id, WorkflowInput(user_request=request)
        )
        pending = await pending_request(handle)
        forged = forger.get_workflow_handle(handle.id)
        await forged.signal(APPROVAL_DECISION_SIGNAL, decision_for(pending, approved=True))
        await wait_for_refusals(handle, 1)
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await forged.execute_update(
                SUBMIT_DECISION_UPDATE, decision_for(pending, approved=True, reviewer="mallory")
            )
        refusal = rejected.value.cause
        assert isinstance(refusal, ApplicationError), refusal
        assert refusal.type == DECISION_REFUSED_ERROR
        assert refusal.message == f"{NOT_HELD}which this worker does not hold"
        status = await status_of(handle)
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.decision is None
        assert status.refused_updates == 1
        await handle.execute_update(SUBMIT_DECISION_UPDATE, decision_for(pending, approved=False))
        result = await handle.result()
    assert result.outcome == Outcome.REJECTED
    (refused,) = refusals([(entry.event, entry.detail) for entry in result.audit_trail])
    assert refused == f"{NOT_HELD}which this worker does not hold"
    assert await failed_workflow_tasks(handle) == 0


async def test_with_encryption_a_decision_sent_in_clear_is_refused_and_recorded(
    runs: TimeSkippingRuns,
) -> None:
    """A client holding no key names alice, by both signals and by update: each is refused
    (the signals recorded, the update rejected to it and counted) and the run waits on; the
    status still answers a client with the key, and alice's decision, encrypted, decides."""
    service, namespace = runs.client.service_client, runs.client.namespace
    keyed = Client(service, namespace=namespace, data_converter=converter_with_keys(new_ring("k")))
    request = f"Delete stale invoices [in clear {uuid.uuid4().hex[:8]}]"
    runs.llm_server.on(request, ok(RISKY))
    async with build_worker(keyed, runs.task_queue, runs.analysis):
        handle = await start_run(
            keyed, runs.task_queue, runs.workflow_id, WorkflowInput(user_request=request)
        )
        pending = await pending_request(handle)
        forged = runs.client.get_workflow_handle(handle.id)  # pydantic JSON, no codec
        as_alice = decision_for(pending, approved=True)
        await forged.signal(APPROVAL_DECISION_SIGNAL, as_alice)
        await forged.signal(APPROVE_SIGNAL, True)
        await wait_for_refusals(handle, 2)
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await forged.execute_update(SUBMIT_DECISION_UPDATE, as_alice)
        refusal = rejected.value.cause
        assert isinstance(refusal, ApplicationError) and refusal.type == DECISION_REFUSED_ERROR
        assert refusal.message == "Encoded failure"  # the reason is sealed: no key, no reading
        status = await status_of(handle)
        assert status.state == WorkflowState.AWAITING_APPROVAL and status.decision is None
        assert status.refused_updates == 1
        await handle.execute_update(SUBMIT_DECISION_UPDATE, as_alice)
        result = await handle.result()
    assert result.outcome == Outcome.APPROVED
    assert result.decision is not None and result.decision.reviewer == "alice"
    refused = refusals([(entry.event, entry.detail) for entry in result.audit_trail])
    assert refused == [f"could not be decoded: {NOT_ENCRYPTED_REASON}"] * 2
    assert await failed_workflow_tasks(handle) == 0


async def test_with_encryption_a_run_started_in_clear_never_runs_and_says_why(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    task_queue: str,
    workflow_id: str,
) -> None:
    """A start sent in clear (a client holding no key) asks no model and executes nothing:
    its first workflow task fails, and the scripts say why until it is terminated."""
    keyed = Client(
        dev_server.client.service_client, data_converter=converter_with_keys(new_ring("k"))
    )
    async with build_worker(keyed, task_queue, analysis_activities):
        handle = await start_run(
            dev_server.client, task_queue, workflow_id, WorkflowInput(user_request="x")
        )
        try:
            stuck = await wait_until(
                lambda: not_progressing(keyed, workflow_id), lambda s: s is not None
            )
            events = [event.event_type async for event in handle.fetch_history_events()]
        finally:
            await handle.terminate("end of test")
    assert stuck is not None
    assert "not encrypted while encryption is on: a client without a key sent it" in stuck
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in events


async def test_a_run_whose_input_no_worker_can_decode_still_fails_loudly_and_says_why(
    dev_server: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    task_queue: str,
    workflow_id: str,
) -> None:
    """The input is not a decision to refuse: the run waits, its task failing, until a
    worker with the key comes; the scripts say which key that is."""
    service = dev_server.client.service_client
    keyed = Client(service, data_converter=converter_with_keys(new_ring("k-input")))
    async with build_worker(dev_server.client, task_queue, analysis_activities):
        handle = await start_run(keyed, task_queue, workflow_id, WorkflowInput(user_request="x"))
        try:
            stuck = await wait_until(
                lambda: not_progressing(dev_server.client, workflow_id), lambda s: s is not None
            )
        finally:
            await handle.terminate("end of test")
    assert stuck is not None and "key ID 'k-input' and this process holds no keys" in stuck


async def test_a_forged_key_id_is_cut_short_and_escaped_in_the_error_too() -> None:
    """The error (a worker's log, a failed task in the Web UI, a client's message) quotes
    the key ID as the audit trail does: a forged one cannot flood or forge log lines."""
    forged_id = b"k" * 9999 + b"\n\x1b[31mWARNING forged"
    forged = Payload(metadata={"encoding": b"binary/encrypted", KEY_ID_METADATA: forged_id})
    with pytest.raises(UndecryptablePayloadError) as err:
        await EncryptionCodec(None).decode([forged])
    assert len(str(err.value)) < 400
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)
