"""The inbox app in-process (httpx's ASGI transport), with a Temporal service that records
decisions instead of sending them: for tests of who may ask and what a request may cost,
which stop (or not) before Temporal is ever reached."""

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
from temporalio.client import Client

from inbox.app import create_app
from inbox.auth import SESSION_COOKIE
from inbox.service import TemporalService
from inbox.settings import InboxSettings

BASE_URL = "http://127.0.0.1:8000"
PROXY_SECRET = "proxy-secret-0123456789abcdef0123456789"


async def _no_temporal() -> Client:
    raise AssertionError("this test must not reach Temporal")


@dataclass
class RecordingService(TemporalService):
    """Records each decision it is asked to send; sends nothing."""

    decisions: list[tuple[str, str, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(_no_temporal)

    async def decide(  # type: ignore[override]
        self, workflow_id: str, reviewer: str, approved: bool, notes: str, **_: Any
    ) -> None:
        self.decisions.append((workflow_id, reviewer, approved))


@dataclass
class InProcessInbox:
    app: Any
    service: RecordingService

    @asynccontextmanager
    async def client(
        self, peer: str = "127.0.0.1", base_url: str = BASE_URL, **options: Any
    ) -> AsyncIterator[httpx2.AsyncClient]:
        """A client whose TCP peer address, as the inbox sees it, is ``peer``."""
        transport = httpx2.ASGITransport(app=self.app, client=(peer, 40000))
        async with httpx2.AsyncClient(transport=transport, base_url=base_url, **options) as c:
            yield c

    async def decide(
        self, client: httpx2.AsyncClient, workflow_id: str, **headers: str
    ) -> httpx2.Response:
        """Approve ``workflow_id`` as its page's form does, with the CSRF token of the
        client's session (a page is loaded first, as a browser would have)."""
        await client.get("/signin", headers=headers)
        session = self.app.state.inbox.sessions.decode(client.cookies.get(SESSION_COOKIE))
        return await client.post(
            f"/requests/{workflow_id}/decision",
            data={"verdict": "approve", "notes": "", "csrf_token": session.csrf},
            headers={"Origin": str(client.base_url).rstrip("/"), **headers},
            follow_redirects=False,
        )


def in_process_inbox(settings: InboxSettings) -> InProcessInbox:
    service = RecordingService()
    return InProcessInbox(create_app(settings, service), service)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token in the page:\n{html[:500]}"
    return match[1]


async def sign_in(client: httpx2.AsyncClient, name: str, password: str) -> httpx2.Response:
    """Sign in through the form, as a browser would (the page, then its form)."""
    token = csrf_token((await client.get("/signin")).text)
    return await client.post(
        "/signin",
        data={"username": name, "password": password, "csrf_token": token},
        headers={"Origin": str(client.base_url).rstrip("/")},
    )


async def who(client: httpx2.AsyncClient, **headers: Any) -> str | None:
    """Who the inbox takes this client to be, without Temporal: a signed-in visitor of the
    sign-in page is sent on to ``next``; a page then names them."""
    answer = await client.get("/signin?next=/signin", headers=headers, follow_redirects=False)
    assert answer.status_code in (200, 303), (answer.status_code, answer.text[:300])
    if answer.status_code == 200:
        return None
    page = await client.get("/no-such-page", headers=headers)
    match = re.search(r'id="signed-in-user">([^<]*)<', page.text)
    return match[1] if match else "?"
