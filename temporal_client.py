"""The one way this project connects to Temporal, and asks a run where it stands.

Connection settings come from Temporal's environment configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings, ``TEMPORAL_PROFILE`` and the
profile file), so the same scripts run against a dev server, a self-hosted cluster or
Temporal Cloud without code changes.
"""

import asyncio
import os
import shlex
import sys
from typing import Any, NoReturn

from pydantic import ValidationError
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from constants import (
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    APPROVE_SIGNAL,
    DECISION_UPDATE_ID_PREFIX,
    DEFAULT_TEMPORAL_ADDRESS,
    STATUS_QUERY,
)
from models.models import ApprovalStatus, StageOutcome, WorkflowStatus

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


async def connect() -> Client:
    """Connect with env config and the pydantic data converter, or explain what failed."""
    config = _load_config()
    address = config["target_host"]
    try:
        return await Client.connect(**config, data_converter=pydantic_data_converter)
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
    """NOT_FOUND for the workflow, not for the namespace (which a script must name instead)."""
    return err.status == RPCStatusCode.NOT_FOUND and "amespace" not in err.message


def means_no_worker(err: RPCError) -> bool:
    """The server's ways of saying nobody answered: no poller, or its own time limit."""
    gave_up = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED)
    return "no poller seen" in err.message or err.status in gave_up


def no_worker_message() -> str:
    return f"No worker answered within {WORKER_WAIT_SECONDS}s; is `python -m worker` running?"


async def query_status(client: Client, workflow_id: str) -> WorkflowStatus:
    """The run's status, within ``WORKER_WAIT_SECONDS``; or why there is none, in one line.

    A stage's ``ApprovalWorkflow`` answers the same query with None or a ``StageOutcome``;
    it is told apart here, since it is decided by a signal, not by the scripts.
    """
    query = client.get_workflow_handle(workflow_id).query(
        STATUS_QUERY, result_type=WorkflowStatus | StageOutcome | None
    )
    try:
        answer = await asyncio.wait_for(query, WORKER_WAIT_SECONDS)
    except TimeoutError:
        raise StatusUnavailableError(no_worker_message()) from None
    except RPCError as err:
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
    return (
        f"Workflow {workflow_id} is a stage's approval workflow, not a run of the agent: a "
        f"stage is decided with `uv run temporal workflow signal --workflow-id "
        f"{shlex.quote(workflow_id)} --name {APPROVE_SIGNAL} --input true|false`."
    )


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


def decision_update_id(request_id: str, reviewer: str) -> str:
    """The update ID of ``reviewer``'s decision on ``request_id``, for every surface that
    sends one: re-sending the same decision is then the same update, and Temporal answers
    it with the first one's outcome instead of applying (or refusing) it again."""
    return f"{DECISION_UPDATE_ID_PREFIX}/{request_id}/{reviewer}"
