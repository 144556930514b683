"""Revocable sessions, and sign-in limits that cannot be aimed at someone else.

Before: an old cookie still worked after sign-out, after a password change and after the
account was removed (a removed user approved a deletion); a cross-site form signed a user
out; five failures with random names locked out an address, which behind the proxy every
client shares. In-process: the recording service shows which decisions were sent."""

import time
from pathlib import Path

import httpx2
import pytest

from constants import INBOX_USERS_ENV, PROXY_SECRET_HEADER
from inbox.accounts import remove_user, set_password
from inbox.auth import SESSION_COOKIE
from inbox.proxy import parse_networks
from inbox.settings import InboxSettings
from inbox.sign_in_limits import SignInLimiter
from tests.helpers import run_script
from tests.inbox_in_process import (
    PROXY_SECRET,
    InProcessInbox,
    in_process_inbox,
    sign_in,
    who,
)

PASSWORD = "dora-password-1"


@pytest.fixture
def inbox(tmp_path: Path) -> InProcessInbox:
    set_password(tmp_path / "users.json", "dora", PASSWORD)
    return in_process_inbox(InboxSettings(users_file=tmp_path / "users.json"))


async def old_cookie_decides(inbox: InProcessInbox, cookie: str) -> httpx2.Response:
    """What someone holding a copy of the cookie (and its CSRF token) can do."""
    session = inbox.app.state.inbox.sessions.decode(cookie)
    async with inbox.client(cookies={SESSION_COOKIE: cookie}) as copy:
        return await copy.post(
            "/requests/wf-delete/decision",
            data={"verdict": "approve", "csrf_token": session.csrf},
            headers={"Origin": str(copy.base_url).rstrip("/")},
        )


async def signed_in_cookie(inbox: InProcessInbox) -> str:
    async with inbox.client() as browser:
        assert (await sign_in(browser, "dora", PASSWORD)).status_code == 303
        return browser.cookies[SESSION_COOKIE]


async def test_a_copy_of_the_cookie_works_until_sign_out_and_not_after(
    inbox: InProcessInbox,
) -> None:
    async with inbox.client() as browser:
        await sign_in(browser, "dora", PASSWORD)
        cookie = browser.cookies[SESSION_COOKIE]
        assert (await old_cookie_decides(inbox, cookie)).status_code == 303  # it works now
        other = await signed_in_cookie(inbox)  # the same person, in another browser
        session = inbox.app.state.inbox.sessions.decode(cookie)
        out = await browser.post(
            "/signout",
            data={"csrf_token": session.csrf},
            headers={"Origin": str(browser.base_url).rstrip("/")},
        )

    assert out.status_code == 303
    for stale in (cookie, other):
        refused = await old_cookie_decides(inbox, stale)
        assert refused.status_code == 303 and refused.headers["location"].startswith("/signin")
    assert inbox.service.decisions == [("wf-delete", "dora", True)]  # the one before only


async def test_a_new_password_ends_every_session_at_once(
    inbox: InProcessInbox, tmp_path: Path
) -> None:
    cookie = await signed_in_cookie(inbox)
    set_password(tmp_path / "users.json", "dora", "a-new-password")
    async with inbox.client(cookies={SESSION_COOKIE: cookie}) as stale:
        assert await who(stale) is None
    assert (await old_cookie_decides(inbox, cookie)).headers["location"].startswith("/signin")
    assert inbox.service.decisions == []


async def test_a_removed_user_can_no_longer_decide(inbox: InProcessInbox, tmp_path: Path) -> None:
    cookie = await signed_in_cookie(inbox)
    users = tmp_path / "users.json"
    removed = run_script("inbox", "remove-user", "dora", env={INBOX_USERS_ENV: str(users)})
    assert removed.returncode == 0, removed.stderr
    set_password(users, "dora", "re-added-with-the-same-name")  # a new account, not the old

    answer = await old_cookie_decides(inbox, cookie)

    assert answer.status_code == 303 and answer.headers["location"].startswith("/signin")
    assert inbox.service.decisions == []
    remove_user(users, "dora")
    with pytest.raises(Exception, match="No user 'dora'"):
        remove_user(users, "dora")


async def test_a_cross_site_post_does_not_replace_the_session(inbox: InProcessInbox) -> None:
    """A cross-site form arrives without the cookie (SameSite=Lax); the inbox answered it
    with a fresh one, which replaced the person's session: signed out from another site."""
    async with inbox.client() as browser:
        await sign_in(browser, "dora", PASSWORD)
        async with inbox.client() as no_cookie:  # what the browser sends for evil.example
            forged = await no_cookie.post(
                "/signout",
                data={"csrf_token": "guess"},
                headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            )
        still = await who(browser)

    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    assert still == "dora"


async def test_failures_from_one_client_do_not_lock_out_another_behind_the_proxy(
    tmp_path: Path,
) -> None:
    """Behind the proxy every client shares its address: the client is the one the proxy
    (proving itself with its secret) appends to ``X-Forwarded-For``."""
    set_password(tmp_path / "users.json", "dora", PASSWORD)
    settings = InboxSettings(
        users_file=tmp_path / "users.json",
        trusted_proxies=parse_networks("127.0.0.1"),
        proxy_secret=PROXY_SECRET,
    )
    inbox = in_process_inbox(settings)

    def client(forwarded_for: str, secret: str = PROXY_SECRET) -> httpx2.AsyncClient:
        headers = {"X-Forwarded-For": forwarded_for, PROXY_SECRET_HEADER: secret}
        return httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=inbox.app, client=("127.0.0.1", 40000)),
            base_url="http://127.0.0.1:8000",
            headers=headers,
        )

    async with (
        client("1.2.3.4, 203.0.113.66") as mallory,
        client("198.51.100.7") as dora,
        client("203.0.113.66") as mallory_again,
    ):
        for name in ("dora", "random-1", "random-2", "dora", "dora", "random-3", "dora", "dora"):
            await sign_in(mallory, name, "guess")
        mallory_locked = await sign_in(mallory_again, "dora", PASSWORD)
        dora_in = await sign_in(dora, "dora", PASSWORD)
        other_name = await sign_in(mallory_again, "random-1", "guess")

    assert mallory_locked.status_code == 429  # 5 failures of this pair: 60 s, then doubling
    assert dora_in.status_code == 303  # the name is not locked for anyone else
    assert other_name.status_code == 401  # nor the address for other names


async def test_forwarded_for_counts_only_from_the_proxy_with_its_secret(
    inbox: InProcessInbox,
) -> None:
    async with inbox.client() as client:
        for n in range(5):
            await sign_in(client, "dora", f"guess-{n}")
        client.headers["X-Forwarded-For"] = "198.51.100.99"  # not the proxy: ignored
        assert (await sign_in(client, "dora", PASSWORD)).status_code == 429


def test_the_wait_doubles_with_each_failure_over_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    limiter = SignInLimiter(limit=3, base=10, ceiling=100, max_pairs=4)
    waits = []
    for _ in range(7):
        limiter.failed("dora", "a")
        waits.append(limiter.retry_after("dora", "a"))
    now[0] += 101
    forgiven = limiter.retry_after("dora", "a")
    for n in range(6):
        limiter.failed(f"n{n}", "b")

    assert waits == [0, 0, 10, 20, 40, 80, 100]
    assert forgiven == 0
    assert limiter.retry_after("dora", "b") == 0 and len(limiter._failures) == 4
