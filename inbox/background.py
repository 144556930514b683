"""The inbox served from a thread of another program: the demo, and the tests.

A thread of its own (not a task on the caller's event loop) keeps uvicorn away from the
caller's signal handling, so Ctrl-C still means what the caller says it means.
"""

import secrets
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from inbox.accounts import AccountsError, set_password
from inbox.app import create_app
from inbox.server import ServerLimits, server_config
from inbox.settings import InboxSettings, SettingsError, listen_defaults

START_TIMEOUT_SECONDS = 30.0


@dataclass
class BackgroundInbox:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=START_TIMEOUT_SECONDS)


def serve_in_background(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, limits: ServerLimits | None = None
) -> BackgroundInbox:
    """Serve ``app`` (port 0: a free one) and return once it accepts connections."""
    config = server_config(app, host, port, limits, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="inbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"nothing listens on {host}:{port} (is the port taken?)")
        time.sleep(0.02)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    return BackgroundInbox(f"http://{host}:{bound_port}", server, thread)


DEMO_USER = "demo"


class InboxStartError(Exception):
    """The demo's inbox cannot start; the message says why, in one line."""


def serve_demo_inbox(users_file: Path) -> tuple[BackgroundInbox, str]:
    """The inbox for ``python -m demo --inbox``: a ``demo`` account with a fresh password
    (returned, to print), on ``HITL_INBOX_HOST``/``HITL_INBOX_PORT``, connected through
    ``client.connection.connect`` like every script."""
    password = secrets.token_urlsafe(12)
    try:
        set_password(users_file, DEMO_USER, password)
        host, port = listen_defaults()
        settings = replace(InboxSettings.from_env(), users_file=users_file)
        return serve_in_background(create_app(settings), host, port), password
    except (AccountsError, SettingsError, OSError) as err:
        raise InboxStartError(f"The approval inbox cannot start: {err}") from None
