"""The one way this project connects to Temporal.

Connection settings come from Temporal's environment configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings, ``TEMPORAL_PROFILE`` and the
profile file), so the same scripts run against a dev server, a self-hosted cluster or
Temporal Cloud without code changes.
"""

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

from constants import DEFAULT_TEMPORAL_ADDRESS


class TemporalUnavailableError(Exception):
    """The configured Temporal server could not be reached."""


async def connect() -> Client:
    """Connect with env config and the pydantic data converter, or explain what failed."""
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    try:
        return await Client.connect(**config, data_converter=pydantic_data_converter)
    except RuntimeError as err:
        raise TemporalUnavailableError(
            f"Cannot reach Temporal at {config['target_host']}. Is the server running "
            "(`uv run temporal server start-dev`) and is TEMPORAL_ADDRESS right?"
        ) from err
