"""The inbox's session guards in a real browser (Debian's Chromium through Selenium): a
session ended by sign-out stays ended for a copy of its cookie; a form on another site
cannot sign anyone out. They need no run, hence no worker.

These sign in as their own user (``erin``): signing out ends every session of an account,
and the other browser tests' ``alice`` keeps hers."""

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from inbox.accounts import set_password
from inbox.auth import SESSION_COOKIE
from tests.conftest import InboxAccounts
from tests.e2e import InboxServer
from tests.test_inbox_browser import shows, sign_in, wait_for

USER, PASSWORD = "erin", "erin-password-1234"


@pytest.fixture
def erin(browser: WebDriver, inbox: InboxServer, inbox_accounts: tuple[Path, Any]) -> WebDriver:
    """The session's browser, signed in as erin (and only as erin)."""
    users_file, _ = inbox_accounts
    set_password(users_file, USER, PASSWORD)
    browser.get(f"{inbox.url}/signin")
    browser.delete_all_cookies()  # whoever was signed in: a fresh session, then erin's
    browser.get(f"{inbox.url}/signin")
    sign_in(browser, inbox, USER, PASSWORD)
    wait_for(browser, shows("signed-in-user", USER))
    return browser


@pytest.fixture
def other_site(inbox: InboxServer) -> Iterator[str]:
    """A page on another site (``localhost`` is not ``127.0.0.1`` to the browser) whose
    form posts to the inbox's sign-out, as any page on the web could."""
    form = (
        f'<form method="post" action="{inbox.url}/signout">'
        '<input type="hidden" name="csrf_token" value="guessed">'
        '<button id="go" type="submit">Win a prize</button></form>'
    ).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(form)))
            self.end_headers()
            self.wfile.write(form)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_a_copy_of_the_cookie_stops_working_when_its_owner_signs_out(
    erin: WebDriver, inbox: InboxServer
) -> None:
    copied = erin.get_cookie(SESSION_COOKIE)
    assert copied is not None
    erin.find_element(By.CSS_SELECTOR, "form[action='/signout'] button").click()
    wait_for(erin, lambda d: d.find_elements(By.ID, "username"))

    erin.delete_all_cookies()
    erin.add_cookie({"name": SESSION_COOKIE, "value": copied["value"], "path": "/"})
    erin.get(f"{inbox.url}/decided")

    wait_for(erin, lambda d: "/signin" in d.current_url)
    assert not erin.find_elements(By.ID, "signed-in-user")


def test_a_form_on_another_site_cannot_sign_anyone_out(
    erin: WebDriver, inbox: InboxServer, other_site: str
) -> None:
    erin.get(other_site)
    erin.find_element(By.ID, "go").click()
    wait_for(erin, lambda d: d.current_url.startswith(inbox.url))
    assert "did not come from this inbox" in erin.page_source  # refused, 403

    erin.get(f"{inbox.url}/decided")

    wait_for(erin, shows("signed-in-user", USER))


def test_the_shared_accounts_fixture_is_untouched(inbox_accounts: tuple[Path, Any]) -> None:
    """erin is added to the session's accounts file; alice and bob keep their passwords."""
    _, accounts = inbox_accounts
    assert isinstance(accounts, InboxAccounts) and set(accounts.passwords) == {"alice", "bob"}
