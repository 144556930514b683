"""The codec server's routes: ``POST /encode`` and ``POST /decode``.

The body is ``{"payloads": [...]}`` in protobuf JSON (base64 metadata values and data) and
the answer has the same shape, as Temporal's codec server contract says. Every call needs
the token: as ``Authorization: Bearer <token>`` (the Temporal CLI's ``--codec-auth``), or as
the first path segment, ``/<token>/decode``, for the Web UI, which cannot add a header of
its own. Only the configured Web UI origin may call from a browser (CORS).
"""

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from encryption.codec import UndecryptablePayloadError

logger = logging.getLogger("codec_server")
NAMESPACE_HEADER = "X-Namespace"
Operation = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def create_app(codec: PayloadCodec, token: str, allowed_origin: str) -> Starlette:
    """The ASGI app: the codec behind the token, open to ``allowed_origin`` only."""

    def authorised(request: Request) -> bool:
        given = request.path_params.get("token") or _bearer(request)
        return given is not None and hmac.compare_digest(given.encode(), token.encode())

    async def encode(request: Request) -> Response:
        return await _apply(request, codec.encode, authorised(request))

    async def decode(request: Request) -> Response:
        return await _apply(request, codec.decode, authorised(request))

    return Starlette(
        routes=[
            Route("/encode", encode, methods=["POST"]),
            Route("/decode", decode, methods=["POST"]),
            Route("/{token}/encode", encode, methods=["POST"]),
            Route("/{token}/decode", decode, methods=["POST"]),
        ],
        middleware=[
            # Outermost, so refusals carry CORS headers and the Web UI can show them.
            Middleware(
                CORSMiddleware,
                allow_origins=[allowed_origin],
                allow_methods=["POST"],
                allow_headers=["Authorization", "Content-Type", NAMESPACE_HEADER],
                allow_credentials=True,
            )
        ],
    )


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _apply(request: Request, operation: Operation, authorised: bool) -> Response:
    """Parse, run the codec, answer in the same shape; every refusal says why."""
    action = request.url.path.rpartition("/")[2]
    namespace = request.headers.get(NAMESPACE_HEADER, "-")
    if not authorised:
        logger.warning("%s refused: no valid token (namespace %s)", action, namespace)
        return _error(401, "A valid token is required.", {"WWW-Authenticate": "Bearer"})
    payloads = Payloads()
    try:
        text = (await request.body()).decode()
    except UnicodeDecodeError as err:  # a 400 with the place, not a 500 with a traceback
        return _error(400, f"The body is not UTF-8 text (byte {err.start}).")
    try:
        json_format.Parse(text, payloads)
    except json_format.ParseError as err:
        return _error(400, f'The body is not {{"payloads": [...]}} in protobuf JSON: {err}')
    try:
        result = Payloads(payloads=await operation(payloads.payloads))
    except UndecryptablePayloadError as err:
        return _error(422, str(err))
    logger.info("%s: %d payloads (namespace %s)", action, len(payloads.payloads), namespace)
    return JSONResponse(json_format.MessageToDict(result))


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": reason}, status_code=status, headers=headers)
