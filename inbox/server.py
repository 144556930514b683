"""The inbox's HTTP server: uvicorn, with limits on connections and on slow clients.

Uvicorn alone lets a client that connects and then sends its headers a byte at a time (or
nothing) hold the connection for ever, and accepts connections until the process runs out
of file descriptors. Here each connection has ``head_seconds`` to send a request's line and
headers (``HeadTimeoutH11Protocol``), at most ``max_connections`` are open at once (more are
closed as they arrive), and over ``limit_concurrency`` requests or connections uvicorn
answers 503. Bodies are bounded by the app (``request_limits.py``).
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol


@dataclass(frozen=True)
class ServerLimits:
    limit_concurrency: int = 100  # requests or connections at once; beyond, 503
    max_connections: int = 200  # open connections; beyond, closed at once
    head_seconds: float = 10.0  # to send a request's line and headers
    keep_alive_seconds: int = 5  # idle between requests on one connection
    max_head_bytes: int = 16 * 1024  # a request's line and headers


def head_timeout_protocol(limits: ServerLimits) -> type[H11Protocol]:
    """Uvicorn's h11 protocol, with a deadline for each request's head and a cap on open
    connections (uvicorn 0.54 has neither: its keep-alive timer starts only after a
    response, and any byte received cancels it)."""

    class HeadTimeoutH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                self.logger.warning("Too many open connections; closing a new one.")
                transport.close()
                return
            self._arm_head_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the head is in
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_head_timer()  # the next request's head, on a kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(limits.head_seconds, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self.transport.close()

    return HeadTimeoutH11Protocol


def server_config(
    app: Any, host: str, port: int, limits: ServerLimits | None = None, **options: Any
) -> uvicorn.Config:
    """Uvicorn's config for the inbox: bounded, and without proxy headers (the peer address
    must be the real one: ``proxy.py`` decides what a proxy may say)."""
    limits = limits or ServerLimits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=head_timeout_protocol(limits),
        proxy_headers=False,
        server_header=False,
        limit_concurrency=limits.limit_concurrency,
        timeout_keep_alive=limits.keep_alive_seconds,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        log_config=None,  # uvicorn's records too go through the host's logging setup
        **options,
    )
