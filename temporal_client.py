"""The one way this project connects to Temporal, and asks a run where it stands.

Connection settings come from Temporal's environment configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings, ``TEMPORAL_PROFILE`` and the
profile file), so the same scripts run against a dev server, a self-hosted cluster or
Temporal Cloud without code changes.
"""

import asyncio
import dataclasses
import os
import shlex
import sys
from typing import Any, NoReturn

from pydantic import ValidationError
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
from temporalio.api.failure.v1 import Failure
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from constants import (
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    DEFAULT_TEMPORAL_ADDRESS,
    STAGE_ID_MARKER,
    STATUS_QUERY,
)
from encryption.codec import EncryptionCodec, UndecryptablePayloadError
from encryption.keys import EncryptionSettingsError, KeyRing, load_keys
from encryption.undecodable import WorkerPayloadConverter
from models.models import ApprovalStatus, StageOutcome, WorkflowStatus

DEV_SERVER_COMMAND = (
    "uv run temporal server start-dev "
    f"--search-attribute {APPROVAL_STATUS_SEARCH_ATTRIBUTE}=Keyword"
)
# A query or an update is answered by a worker; without one it waits, so scripts stop here,
# well before the server's own 30 s limit, whose errors say nothing about workers.
WORKER_WAIT_SECONDS = 20
# How much of a workflow task's failure message a script shows (one line, printable).
FAILURE_SHOWN_CHARS = 300
# Events read back from the end of a history to find the last workflow task failure.
HISTORY_PAGE_SIZE = 100
# Settings that choose where the rest of the settings come from.
PROFILE_SETTINGS = ("TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE")


class TemporalUnavailableError(Exception):
    """The configured Temporal server could not be reached."""


class TemporalSettingsError(TemporalUnavailableError):
    """The Temporal settings themselves are wrong (a missing profile, an address that is not
    host:port): no server was tried. The message names the setting."""


class StatusUnavailableError(Exception):
    """The status query got no usable answer; the message says why and what to do."""


def _load_config() -> dict[str, Any]:
    try:
        config = ClientConfig.load_client_connect_config()
    except (RuntimeError, OSError) as err:  # the SDK's ConfigError is a RuntimeError
        raise TemporalSettingsError(_settings_error(err)) from None
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    return dict(config)


def _settings_error(err: Exception) -> str:
    """One line naming the setting at fault (or the settings that choose the profile)."""
    if isinstance(err, OSError) and err.filename is not None:  # e.g. a TLS certificate path
        culprits = [
            k for k, v in os.environ.items() if k.startswith("TEMPORAL_") and v == err.filename
        ]
        detail = f"{err.strerror}: {err.filename}"
    else:
        culprits = [k for k in PROFILE_SETTINGS if os.environ.get(k)]
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        # A TOML error spans lines (location, source excerpt, reason): keep the first and last.
        detail = lines[0] if len(lines) < 2 else f"{lines[0]}: {lines[-1]}"
    named = ", ".join(f"{k}={os.environ[k]}" for k in culprits) or "the Temporal profile file"
    return f"Bad Temporal settings ({named}): {detail}."


def configured_namespace() -> str:
    return _load_config().get("namespace") or "default"


def configured_address() -> str:
    """host:port of the server env config points at."""
    return _load_config()["target_host"]


def data_converter() -> DataConverter:
    """The pydantic data converter, with payload encryption when keys are configured.

    The codec is always there: without keys it passes payloads through, but still names the
    key an encrypted payload needs. With keys, failure messages and stack traces are moved
    into an encoded (so encrypted) attribute too: an error can quote the request.
    """
    try:
        ring = load_keys()
    except EncryptionSettingsError as err:
        raise TemporalSettingsError(str(err)) from None
    return converter_with_keys(ring)


def converter_with_keys(ring: KeyRing | None) -> DataConverter:
    """``data_converter()`` for the given keys (None: encryption off)."""
    if ring is None:
        return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(None))
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def worker_converter(converter: DataConverter) -> DataConverter:
    """``converter`` as a worker uses it: a payload a workflow receives and the worker
    cannot decode reaches a signal handler as ``Undecodable`` instead of failing every
    workflow task (``encryption/undecodable.py``).

    A converter without a codec gets the keyless one ``data_converter()`` always has, so it
    still names the key an encrypted payload needs. Another codec, or a payload converter
    other than pydantic's, is left alone.
    """
    codec = converter.payload_codec or EncryptionCodec(None)
    if isinstance(codec, EncryptionCodec):
        codec = codec.for_worker()
    payload_converter_class = converter.payload_converter_class
    if issubclass(payload_converter_class, PydanticPayloadConverter):
        payload_converter_class = WorkerPayloadConverter
    return dataclasses.replace(
        converter, payload_codec=codec, payload_converter_class=payload_converter_class
    )


def worker_client(client: Client) -> Client:
    """``client`` on the same connection, with ``worker_converter``: a worker takes its
    data converter from its client, and the scripts' clients must keep raising on what
    they cannot decode."""
    config = client.config()
    config["data_converter"] = worker_converter(client.data_converter)
    return Client(**config)


async def connect(runtime: Runtime | None = None) -> Client:
    """Connect with env config and ``data_converter()``, or explain what failed.

    ``runtime`` carries the worker's telemetry (its Prometheus endpoint); scripts use the
    SDK's default one.
    """
    config = _load_config()
    address = config["target_host"]
    converter = data_converter()
    try:
        return await Client.connect(**config, data_converter=converter, runtime=runtime)
    except ValueError as err:  # refused before any connection attempt
        if "target" not in str(err):
            raise TemporalSettingsError(f"Bad Temporal settings: {err}") from None
        from_env = os.environ.get("TEMPORAL_ADDRESS")
        source = "TEMPORAL_ADDRESS" if from_env else "The address in the Temporal profile"
        raise TemporalSettingsError(
            f"{source} {address!r} is not a valid host:port ({err})."
        ) from None
    except RuntimeError as err:
        raise TemporalUnavailableError(
            f"Cannot reach Temporal at {address}. Is the server running "
            f"(`{DEV_SERVER_COMMAND}`) and is TEMPORAL_ADDRESS right?"
        ) from err


def means_no_such_workflow(err: RPCError) -> bool:
    """NOT_FOUND for the workflow, not for the namespace (which a script must name instead).

    Told apart by the error's details, which the server types (``NotFoundFailure`` for a
    workflow, ``NamespaceNotFoundFailure`` for a namespace), never by its wording: a
    workflow ID may well contain "namespace".
    """
    if err.status != RPCStatusCode.NOT_FOUND:
        return False
    return not any(
        detail.Is(NamespaceNotFoundFailure.DESCRIPTOR) for detail in err.grpc_status.details
    )


def means_no_worker(err: RPCError) -> bool:
    """The server's ways of saying nobody answered: no poller, or its own time limit."""
    gave_up = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED)
    return "no poller seen" in err.message or err.status in gave_up


def no_worker_message() -> str:
    return f"No worker answered within {WORKER_WAIT_SECONDS}s; is `python -m worker` running?"


async def not_progressing(client: Client, workflow_id: str) -> str | None:
    """Why the run cannot move, in one line, or None when nothing says it is stuck.

    Read from what the server reports, so it needs no worker: the run's pending workflow
    task has failed and is being retried (attempt 2 or more), and its history's last
    workflow task event is a failure, whose message says why. Such a run answers no query
    and takes no decision until a worker runs code that gets past the failure.
    """
    description = await client.get_workflow_handle(workflow_id).describe()
    raw = description.raw_description
    if not raw.HasField("pending_workflow_task") or raw.pending_workflow_task.attempt < 2:
        return None
    failure = await _last_workflow_task_failure(client, workflow_id, description.run_id)
    if failure is None:  # timed out, not failed: a worker went away (the query says so)
        return None
    failures = raw.pending_workflow_task.attempt - 1
    times = "once" if failures == 1 else f"{failures} times in a row"
    return (
        f"Workflow {workflow_id} is not progressing: its workflow task has failed "
        f"{times}, with: {failure}. A worker "
        "running code that fixes this resumes it; `uv run temporal workflow terminate "
        f"--workflow-id {shlex.quote(workflow_id)}` ends it."
    )


async def _last_workflow_task_failure(client: Client, workflow_id: str, run_id: str) -> str | None:
    """The failure message of the last workflow task, if that task failed; newest first."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        maximum_page_size=HISTORY_PAGE_SIZE,
    )
    while True:
        page = await client.workflow_service.get_workflow_execution_history_reverse(request)
        for event in page.history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                return None
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failure = event.workflow_task_failed_event_attributes.failure
                return _one_printable_line(await _failure_message(client, failure))
        if not page.next_page_token:
            return None
        request.next_page_token = page.next_page_token


async def _failure_message(client: Client, failure: Failure) -> str:
    """The failure's message, decrypted when payload encryption moved it into an encoded
    attribute; without the key, the line that names the key needed.

    A wrapped error is followed by its root cause: the SDK's "Failed decoding arguments"
    alone does not say that a worker lacks the key the run's input needs.
    """
    try:
        error = await client.data_converter.decode_failure(failure)
    except UndecryptablePayloadError as err:
        return f"a failure this process cannot read ({err})"
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    if root is error:
        return _message_of(error)
    return f"{_message_of(error)}: {_message_of(root)}"


def _message_of(error: BaseException) -> str:
    return getattr(error, "message", None) or str(error)


def _one_printable_line(text: str) -> str:
    """A message from the server (it may quote anything the run held), safe to print."""
    line = "".join(c if c.isprintable() else " " for c in text.strip().split("\n")[0])
    return line if len(line) <= FAILURE_SHOWN_CHARS else line[: FAILURE_SHOWN_CHARS - 3] + "..."


def reraise_if_cancelled() -> None:
    """Keep a cancellation a cancellation. The SDK turns a cancelled call into its own error
    (an RPCError, WorkflowUpdateRPCTimeoutOrCancelledError); when the cancel is Ctrl-C
    (``asyncio.run`` cancels the main task), it must reach ``asyncio.run``, which then
    raises KeyboardInterrupt, instead of reading as "no worker answered"."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def query_status(client: Client, workflow_id: str) -> WorkflowStatus:
    """The run's status, within ``WORKER_WAIT_SECONDS``; or why there is none, in one line.

    A run that is not progressing is said to be so first (``not_progressing``): its query
    would only time out. A stage's ``ApprovalWorkflow`` answers the same query with None or
    a ``StageOutcome``; it is told apart here, since it is decided by a signal.
    """
    if stuck := await not_progressing(client, workflow_id):
        raise StatusUnavailableError(stuck)
    handle = client.get_workflow_handle(workflow_id)
    try:
        async with asyncio.timeout(WORKER_WAIT_SECONDS):
            answer = await handle.query(
                STATUS_QUERY, result_type=WorkflowStatus | StageOutcome | None
            )
    except TimeoutError:
        raise StatusUnavailableError(no_worker_message()) from None
    except RPCError as err:
        reraise_if_cancelled()
        if not means_no_worker(err):
            raise
        raise StatusUnavailableError(no_worker_message()) from None
    except WorkflowQueryFailedError as err:
        raise StatusUnavailableError(
            f"Workflow {workflow_id} cannot say where it stands ({err.message}); "
            "is it a run of this agent?"
        ) from None
    except ValidationError:
        raise StatusUnavailableError(
            f"Workflow {workflow_id} is not a run of this agent: "
            f"its {STATUS_QUERY} answer is not a status."
        ) from None
    if isinstance(answer, WorkflowStatus):
        return answer
    raise StatusUnavailableError(_stage_workflow_message(workflow_id, answer))


def _stage_workflow_message(workflow_id: str, outcome: StageOutcome | None) -> str:
    if outcome is not None:  # decided: nothing is left to do here
        verdict = {True: "approved", False: "rejected", None: "timed out"}[outcome.approved]
        return (
            f"Workflow {workflow_id} is the approval workflow of stage {outcome.stage!r}, "
            f"not a run of the agent, and it is already {verdict}."
        )
    run_id = shlex.quote(workflow_id.partition(STAGE_ID_MARKER)[0])
    return (
        f"Workflow {workflow_id} is a stage's approval workflow, not a run of the agent: a "
        f"stage is decided by one of its members, through its run: `uv run python -m "
        f"send_approval {run_id} approve|reject --reviewer MEMBER`."
    )


INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT: what shells report for Ctrl-C


def interrupted(what_it_leaves: str) -> int:
    """Ctrl-C: one line on stderr saying what state the script leaves behind, no traceback;
    returns the exit code. ``asyncio.run`` turns Ctrl-C into a KeyboardInterrupt once the
    running coroutine has been cancelled, so each script catches that around its run."""
    print(f"\nInterrupted: {what_it_leaves}", file=sys.stderr)
    return INTERRUPTED_EXIT_CODE


def exit_process(code: int) -> NoReturn:
    """Exit without interpreter teardown, once output is flushed.

    The SDK's native threads can outlive the event loop, and CPython's finalisation then
    aborts with "PyGILState_Release ... must be current" (temporalio/sdk-python#300),
    turning a clean exit into SIGABRT. Every script ends here instead of with sys.exit.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# Runs that wait for a decision: the workflow says so, and the run is still open (a
# terminated or timed-out run keeps the last value it set).
PENDING_RUNS_QUERY = (
    f'{APPROVAL_STATUS_SEARCH_ATTRIBUTE} = "{ApprovalStatus.PENDING.value}" '
    'AND ExecutionStatus = "Running"'
)
