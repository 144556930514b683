"""The one way this project connects to Temporal, and the errors that say why it could not.

Connection settings come from Temporal's environment configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings, ``TEMPORAL_PROFILE`` and the
profile file), so the same scripts run against a dev server, a self-hosted cluster or
Temporal Cloud without code changes.
"""

import asyncio
import dataclasses
import os
from typing import Any

from temporalio.api.errordetails.v1 import NamespaceNotFoundFailure
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE, DEFAULT_TEMPORAL_ADDRESS
from encryption.codec import EncryptionCodec
from encryption.keys import EncryptionSettingsError, KeyRing, load_keys
from encryption.undecodable import WorkerPayloadConverter

DEV_SERVER_COMMAND = (
    "uv run temporal server start-dev "
    f"--search-attribute {APPROVAL_STATUS_SEARCH_ATTRIBUTE}=Keyword"
)
# A query or an update is answered by a worker; without one it waits, so scripts stop here,
# well before the server's own 30 s limit, whose errors say nothing about workers.
WORKER_WAIT_SECONDS = 20
# Settings that choose where the rest of the settings come from.
PROFILE_SETTINGS = ("TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE")


class TemporalUnavailableError(Exception):
    """The configured Temporal server could not be reached."""


class TemporalSettingsError(TemporalUnavailableError):
    """The Temporal settings themselves are wrong (a missing profile, an address that is not
    host:port): no server was tried. The message names the setting."""


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


def reraise_if_cancelled() -> None:
    """Keep a cancellation a cancellation. The SDK turns a cancelled call into its own error
    (an RPCError, WorkflowUpdateRPCTimeoutOrCancelledError); when the cancel is Ctrl-C
    (``asyncio.run`` cancels the main task), it must reach ``asyncio.run``, which then
    raises KeyboardInterrupt, instead of reading as "no worker answered"."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
