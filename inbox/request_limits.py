"""Bounded requests: what one request may cost the inbox before anyone is signed in.

Every body is capped at ``MAX_BODY_BYTES`` while it streams in, before any parser sees it
(a declared ``Content-Length`` over the cap is refused at the first read), and must arrive
within ``BODY_SECONDS`` (Slack's button presses: ``SLACK_BODY_BYTES``). Forms are further
limited in fields and part size, and take no files. The connection-level limits (how many,
how long to send the headers) are the server's: ``server.py``.
"""

import asyncio

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from constants import SLACK_INTERACTIONS_PATH

# The largest legitimate body is a decision: notes of 1,000 characters and an amended action
# (models/limits.py), a few KiB. 64 KiB leaves room and bounds a parser's work.
MAX_BODY_BYTES = 64 * 1024
# A Slack button press carries the whole message it was pressed on, every text escaped twice
# (JSON, then the form): up to about 150 KiB for the longest message the worker posts
# (tests/test_slack_interactions.py builds it). Its route is read up to this.
SLACK_BODY_BYTES = 256 * 1024
BODY_SECONDS = 30.0
# request.form(...) limits: the decision form has under ten fields, none large.
MAX_FORM_FIELDS = 20
MAX_FORM_PART_BYTES = 32 * 1024
MAX_FORM_FILES = 0
# The connection is not read further: it closes after the answer.
REFUSAL_HEADERS = {
    "Connection": "close",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class BodyRefused(Exception):
    """Raised by the bounded ``receive``; ``BodyLimit`` answers it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _refusal(exc: BaseException) -> BodyRefused | None:
    """The refusal behind ``exc``: itself, or inside the exception groups that task groups
    (Starlette's ``BaseHTTPMiddleware``) wrap it in."""
    if isinstance(exc, BodyRefused):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if found := _refusal(inner):
                return found
    return None


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` is refused with 413, one that takes over
    ``seconds`` to arrive with 408, at the read that crosses the line: nothing beyond it
    is buffered, and no parser sees it."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, seconds: float = BODY_SECONDS
    ) -> None:
        self.app, self.max_bytes, self.seconds = app, max_bytes, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        slack = scope.get("path") == SLACK_INTERACTIONS_PATH
        max_bytes = SLACK_BODY_BYTES if slack else self.max_bytes
        too_large = f"The request body is over the inbox's limit of {max_bytes} bytes."
        received = 0
        complete = False
        started = False
        deadline: float | None = None

        async def bounded_receive() -> Message:
            nonlocal received, complete, deadline
            if complete:  # the body is in: what follows (a disconnect) is not timed
                return await receive()
            if declared and (not declared.isdigit() or int(declared) > max_bytes):
                raise BodyRefused(413, too_large)
            loop = asyncio.get_running_loop()
            deadline = deadline or loop.time() + self.seconds
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyRefused(
                    408, f"The request body did not arrive within {self.seconds:g} s."
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyRefused(413, too_large)
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except Exception as exc:
            refused = _refusal(exc)
            if refused is None or started:
                raise
            api = str(scope.get("path", "")).startswith("/api/")
            response = (
                JSONResponse({"error": refused.reason}, refused.status)
                if api
                else PlainTextResponse(refused.reason, refused.status)
            )
            response.headers.update(REFUSAL_HEADERS)
            await response(scope, receive, send)
