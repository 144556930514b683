"""Bounded requests: a body is capped while it streams in (before any parser), forms take
few fields and no files, and the server closes connections that are slow to send their
headers or too many. Before: 900 form fields of 1 MB to ``/signin`` peaked at 965 MB, a 1 GB
file part was spooled to disk before the 403, a 600 MB JSON body took 1.3 GB, and slow
clients held every connection."""

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from inbox.accounts import new_token, set_password
from inbox.background import serve_in_background
from inbox.request_limits import MAX_BODY_BYTES, MAX_FORM_FIELDS, BodyLimit
from inbox.server import ServerLimits
from inbox.settings import InboxSettings
from tests.inbox_in_process import in_process_inbox

CHUNK = 16 * 1024


class Stream:
    """A request body of ``total`` bytes, counting what the server read of it."""

    def __init__(self, total: int, chunk: bytes = b"a" * CHUNK) -> None:
        self.total, self.chunk, self.sent = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.sent < self.total:
            self.sent += len(self.chunk)
            yield self.chunk


@pytest.fixture
def settings(tmp_path: Path) -> InboxSettings:
    return InboxSettings(users_file=tmp_path / "users.json")


async def test_a_huge_form_to_signin_is_refused_after_the_cap_not_read_to_its_end(
    settings: InboxSettings,
) -> None:
    inbox = in_process_inbox(settings)
    streamed = Stream(900 * 1024 * 1024, b"f=" + b"a" * (CHUNK - 3) + b"&")
    declared = Stream(1024**3)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with inbox.client() as client:
        chunked = await client.post("/signin", content=streamed, headers=form)
        too_long = await client.post(
            "/signin", content=declared, headers={**form, "Content-Length": str(1024**3)}
        )

    assert chunked.status_code == too_long.status_code == 413
    assert f"limit of {MAX_BODY_BYTES} bytes" in chunked.text
    assert streamed.sent <= MAX_BODY_BYTES + CHUNK  # read up to the cap, then refused
    assert declared.sent <= CHUNK  # a declared length over the cap: refused at once


async def test_forms_take_no_files_and_few_fields(settings: InboxSettings) -> None:
    inbox = in_process_inbox(settings)
    file_part = (
        b'--b\r\nContent-Disposition: form-data; name="f"; filename="x.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + b"\0" * 1000 + b"\r\n--b--\r\n"
    )
    fields = "&".join(f"f{n}=x" for n in range(MAX_FORM_FIELDS + 1))
    async with inbox.client() as client:
        with_file = await client.post(
            "/signin",
            content=file_part,
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        many = await client.post(
            "/signin",
            content=fields,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    assert with_file.status_code == 400 and "files" in with_file.text
    assert many.status_code == 400 and "fields" in many.text


async def test_a_json_body_over_the_cap_is_413_with_a_valid_token(
    settings: InboxSettings,
) -> None:
    set_password(settings.users_file, "alice", "alice-password")
    token = new_token(settings.users_file, "alice")
    inbox = in_process_inbox(settings)
    body = Stream(600 * 1024 * 1024, b'{"notes": "' + b"a" * CHUNK)
    async with inbox.client(headers={"Authorization": f"Bearer {token}"}) as api:
        answer = await api.post(
            "/api/requests/wf-1/decision",
            content=body,
            headers={"Content-Type": "application/json"},
        )

    assert answer.status_code == 413 and "limit" in answer.json()["error"]
    assert body.sent <= MAX_BODY_BYTES + 2 * CHUNK and inbox.service.decisions == []


async def test_a_body_that_trickles_in_is_408() -> None:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    app = Starlette(
        routes=[Route("/", echo, methods=["POST"])],
        middleware=[Middleware(BodyLimit, seconds=0.5)],
    )

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(20):
            await asyncio.sleep(0.1)
            yield b"x"

    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        slow = await client.post("/", content=trickle())
        quick = await client.post("/", content=b"x" * 100)

    assert slow.status_code == 408 and quick.text == "100"


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """The server closed the connection (EOF or reset) within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_slow_headers_and_too_many_connections_are_closed_and_the_inbox_still_answers(
    settings: InboxSettings,
) -> None:
    """A real uvicorn on loopback, with small limits so the test is quick."""
    limits = ServerLimits(limit_concurrency=20, max_connections=10, head_seconds=1.0)
    server = serve_in_background(in_process_inbox(settings).app, limits=limits)
    port = int(server.url.rpartition(":")[2])
    held: list[socket.socket] = []
    try:
        slow = _connect(port)
        held.append(slow)
        started = time.monotonic()
        slow.sendall(b"GET /signin HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(8):  # a byte every 0.2 s: each would once reset uvicorn's timer
            time.sleep(0.2)
            try:
                slow.sendall(b"X")
            except OSError:
                break
        assert _closed_within(slow, 3.0), "the slow client's connection is still open"
        assert time.monotonic() - started < 4.0

        idle = [_connect(port) for _ in range(10)]
        held += idle
        over = [_connect(port) for _ in range(5)]
        held += over
        assert all(_closed_within(sock, 2.0) for sock in over)
        assert all(_closed_within(sock, 3.0) for sock in idle)  # the head deadline
        answer = httpx2.get(f"{server.url}/signin", timeout=5)
        assert answer.status_code == 200
    finally:
        for sock in held:
            sock.close()
        server.stop()
