"""``Host`` must name this inbox when ``HITL_INBOX_URL`` says where it is.

A DNS-rebinding page (``evil.example`` re-pointed at the inbox's address) talks to the inbox
as its own origin: the browser then lets it set any header and read every answer. Such a
request still carries ``Host: evil.example``, and that is what is refused here. Without
``HITL_INBOX_URL`` the inbox does not know its own name and checks nothing (the README's
"Signing in" says what that leaves open).
"""

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from constants import INBOX_URL_ENV


class HostCheck:
    """ASGI middleware: a request whose ``Host`` is not one of ``hosts`` (exactly one
    ``Host`` header) gets 400 with the reason."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str], public_url: str) -> None:
        self.app, self.hosts, self.public_url = app, hosts, public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).getlist("host")
        if len(given) == 1 and given[0].strip().lower() in self.hosts:
            await self.app(scope, receive, send)
            return
        shown = given[0][:100] if given else "(none)"
        reason = f"Host {shown!r} is not this inbox's: {INBOX_URL_ENV} is {self.public_url}."
        body = json.dumps({"error": reason}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
