"""The one way this project connects to Temporal.

Connection settings come from Temporal's environment configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings, ``TEMPORAL_PROFILE`` and the
profile file), so the same scripts run against a dev server, a self-hosted cluster or
Temporal Cloud without code changes.
"""

import os
import sys
from typing import NoReturn

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE, DEFAULT_TEMPORAL_ADDRESS

DEV_SERVER_COMMAND = (
    "uv run temporal server start-dev "
    f"--search-attribute {APPROVAL_STATUS_SEARCH_ATTRIBUTE}=Keyword"
)


class TemporalUnavailableError(Exception):
    """The configured Temporal server could not be reached."""


def configured_address() -> str:
    """host:port of the server env config points at."""
    return ClientConfig.load_client_connect_config().get("target_host", DEFAULT_TEMPORAL_ADDRESS)


async def connect() -> Client:
    """Connect with env config and the pydantic data converter, or explain what failed."""
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    try:
        return await Client.connect(**config, data_converter=pydantic_data_converter)
    except RuntimeError as err:
        raise TemporalUnavailableError(
            f"Cannot reach Temporal at {config['target_host']}. Is the server running "
            f"(`{DEV_SERVER_COMMAND}`) and is TEMPORAL_ADDRESS right?"
        ) from err


def exit_process(code: int) -> NoReturn:
    """Exit without interpreter teardown, once output is flushed.

    The SDK's native threads can outlive the event loop, and CPython's finalisation then
    aborts with "PyGILState_Release ... must be current" (temporalio/sdk-python#300),
    turning a clean exit into SIGABRT. Every script ends here instead of with sys.exit.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
