"""The inbox in a real browser (Debian's Chromium through Selenium), against the dev server
and a real ``python -m worker``: what an approver sees and does, live updates included.

One browser and one inbox serve the whole session; each test has its own runs. Waits are
conditions (WebDriverWait polls the page), never fixed sleeps.
"""

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from temporalio.testing import WorkflowEnvironment

from benchmarks.fake_openai import FakeOpenAIServer
from models.models import Outcome
from tests.conftest import InboxAccounts
from tests.e2e import InboxServer, WorkerProcess, inbox_run, script, unique
from tests.helpers import PROJECT_ROOT, is_running, status_of, wait_until

WAIT_SECONDS = 45
# Set to a folder to save the README's screenshots there (e.g. _assets).
SCREENSHOTS_ENV = "INBOX_SCREENSHOTS"
WAITING = "waiting for a decision"
SPOOF = "Delete the report\u202efdp.exe"  # reads as "...exe.pdf" when the override works
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def wait_for(driver: WebDriver, condition: Any, timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``condition``; an element the page's live refresh replaced between finding and
    reading it (stale) is looked for again on the next poll."""
    return WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition)


def text_of(driver: WebDriver, element_id: str) -> str:
    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def shows(element_id: str, text: str) -> Any:
    """Condition: the element exists and contains ``text``."""
    return lambda driver: text in text_of(driver, element_id)


def sign_in(driver: WebDriver, inbox: InboxServer, name: str, password: str) -> None:
    """Fill in the sign-in form, on the sign-in page the browser is on (or a new one)."""
    if not driver.find_elements(By.ID, "username"):
        driver.get(f"{inbox.url}/signin")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "signin").click()


@pytest.fixture
def alice(
    browser: WebDriver, inbox: InboxServer, inbox_accounts: tuple[Path, InboxAccounts]
) -> WebDriver:
    """The session's browser, signed in as alice."""
    browser.get(f"{inbox.url}/")
    if not browser.find_elements(By.ID, "signed-in-user"):
        sign_in(browser, inbox, "alice", inbox_accounts[1].passwords["alice"])
        wait_for(browser, shows("signed-in-user", "alice"))
    return browser


@pytest.fixture
def run_for(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer
) -> Any:
    def start(text: str, proposal: dict[str, Any] | None = None, **fields: Any) -> Any:
        return inbox_run(worker, dev_server, llm_server, unique(text), proposal, **fields)

    return start


def open_request(driver: WebDriver, inbox: InboxServer, workflow_id: str) -> None:
    driver.get(f"{inbox.url}/requests/{workflow_id}")
    wait_for(driver, shows("state", WAITING))


def mark_page(driver: WebDriver) -> None:
    """Leave a mark that a reload would wipe: what then changes came without one."""
    driver.execute_script("window.__sameLoad = true;")


def same_load(driver: WebDriver) -> bool:
    return driver.execute_script("return window.__sameLoad === true;")


def decide(driver: WebDriver, button: str, notes: str = "") -> None:
    if notes:
        driver.find_element(By.ID, "notes").send_keys(notes)
    if button == "approve":  # the second step: Approve... then Yes, approve
        driver.find_element(By.ID, "approve-start").click()
    driver.find_element(By.ID, button).click()


def screenshot(driver: WebDriver, name: str) -> None:
    folder = os.environ.get(SCREENSHOTS_ENV)
    if folder:
        driver.save_screenshot(str(PROJECT_ROOT / folder / name))


def test_signed_out_the_inbox_asks_to_sign_in_and_then_shows_the_pending_list(
    browser: WebDriver, inbox: InboxServer, inbox_accounts: tuple[Path, InboxAccounts]
) -> None:
    browser.delete_all_cookies()
    browser.get(f"{inbox.url}/decided")
    assert "/signin" in browser.current_url
    sign_in(browser, inbox, "alice", "wrong-password")
    wait_for(browser, shows("signin-error", "Wrong user name or password."))

    sign_in(browser, inbox, "alice", inbox_accounts[1].passwords["alice"])

    wait_for(browser, shows("signed-in-user", "alice"))
    assert browser.current_url.endswith("/decided")


async def test_a_new_run_appears_live_and_is_approved_with_notes(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    alice.get(f"{inbox.url}/")
    mark_page(alice)
    async with run_for("Delete the staging database", wait=False) as handle:
        row = f'tr[data-workflow-id="{handle.id}"]'
        wait_for(alice, lambda d: d.find_elements(By.CSS_SELECTOR, row))
        assert same_load(alice)
        assert "left" in alice.find_element(By.CSS_SELECTOR, f"{row} .countdown").text
        screenshot(alice, "inbox_pending.png")
        alice.find_element(By.CSS_SELECTOR, f"{row} a").click()
        wait_for(alice, shows("state", WAITING))
        screenshot(alice, "inbox_request.png")

        decide(alice, "approve", "Checked the backup first")

        wait_for(alice, shows("sent", "approved"))
        wait_for(alice, shows("outcome", "approved"))
        assert "decision_approved by alice: Checked the backup first" in text_of(alice, "audit")
        assert (await handle.result()).decision.reviewer == "alice"


async def test_a_rejection_shows_as_the_outcome(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    async with run_for("Email every customer") as handle:
        open_request(alice, inbox, handle.id)
        decide(alice, "reject", "Not without legal")

        wait_for(alice, shows("outcome", "rejected"))
        assert "Rejected by alice: Not without legal" in text_of(alice, "result-message")
        alice.get(f"{inbox.url}/decided")
        row = f'tr[data-workflow-id="{handle.id}"]'
        wait_for(alice, lambda d: d.find_elements(By.CSS_SELECTOR, row))
        assert "rejected" in alice.find_element(By.CSS_SELECTOR, row).text
        assert "alice" in alice.find_element(By.CSS_SELECTOR, row).text


async def test_approve_with_edits_edits_the_call_and_asks_about_it_again(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    """The form holds the call's arguments as JSON; alice edits them and approves: the
    edited call is asked about again, and it is what the request shows from then on."""
    async with run_for("Refund the order") as handle:
        open_request(alice, inbox, handle.id)
        first = (await status_of(handle)).approval_request
        assert first is not None and first.proposed_action.tool_call is not None
        call = first.proposed_action.tool_call
        alice.find_element(By.CSS_SELECTOR, "#decide > details > summary").click()
        arguments = alice.find_element(By.ID, "edit-arguments")
        assert json.loads(arguments.get_attribute("value") or "") == call.arguments
        edited = {**call.arguments, "subject": "Refund half of the order"}
        arguments.clear()
        arguments.send_keys(json.dumps(edited))
        alice.find_element(By.ID, "approve-edited").click()

        again = await wait_until(
            lambda: status_of(handle),
            lambda s: (
                s.approval_request is not None
                and s.approval_request.request_id != first.request_id
                and s.state.value == "awaiting_approval"
            ),
        )
        wait_for(alice, lambda d: "approval_reopened" in text_of(d, "audit"))
    assert again.approval_request is not None
    assert again.approval_request.proposed_action.tool_call == call.model_copy(
        update={"arguments": edited}
    )
    assert "action_amended by alice: send_email {" in text_of(alice, "audit")


async def test_a_non_approver_is_refused_with_the_reason_shown(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    async with run_for("Pay the invoice", approvers=["bob"]) as handle:
        open_request(alice, inbox, handle.id)
        decide(alice, "approve")

        wait_for(alice, shows("refused", "alice"))
        assert "approver" in text_of(alice, "refused")
        assert text_of(alice, "state") == WAITING


async def test_a_decision_from_the_cli_shows_up_live(
    alice: WebDriver, inbox: InboxServer, run_for: Any, worker: WorkerProcess
) -> None:
    async with run_for("Restart the payment service") as handle:
        open_request(alice, inbox, handle.id)
        mark_page(alice)
        alice.find_element(By.ID, "notes").send_keys("typing, not sent")

        sent = await script(
            "send_approval",
            handle.id,
            "approve",
            "from the CLI",
            "--reviewer",
            "carol",
            env=worker.env,
        )

        assert sent.returncode == 0, sent.output
        wait_for(alice, shows("closed", "approved by carol"))
        wait_for(alice, shows("outcome", "approved"))
        assert same_load(alice)


async def test_a_deadline_passing_shows_the_run_timed_out(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    """The shortest deadline a run takes (1 s): the page may open before or after it
    passes, and shows the outcome either way (live, or as it loads)."""
    async with run_for(
        "Shut down the old cluster", approval_timeout_seconds=1, wait=False
    ) as handle:
        alice.get(f"{inbox.url}/requests/{handle.id}")
        wait_for(alice, shows("outcome", "timed out"))
        assert (await handle.result()).outcome == Outcome.TIMED_OUT


async def test_hostile_requests_and_model_output_never_run_or_render_as_markup(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    proposal = {"description": HOSTILE, "reasoning": HOSTILE, "parameters": {"x": HOSTILE}}
    async with run_for(f"Pay {HOSTILE}", proposal) as handle:
        alice.get(f"{inbox.url}/")
        row = f'tr[data-workflow-id="{handle.id}"]'
        wait_for(alice, lambda d: d.find_elements(By.CSS_SELECTOR, row))
        listed = alice.find_element(By.CSS_SELECTOR, row).text
        open_request(alice, inbox, handle.id)
        decide(alice, "approve", HOSTILE)
        wait_for(alice, shows("outcome", "approved"))

        assert alice.execute_script("return window.__pwned;") is None
        assert alice.find_elements(By.CSS_SELECTOR, "main img") == []
        assert alice.find_elements(By.CSS_SELECTOR, "main script") == []
        assert "<script>window.__pwned = 1</script>" in listed
        assert HOSTILE in text_of(alice, "action") and HOSTILE in text_of(alice, "audit")


async def test_bidi_controls_in_model_text_are_shown_not_obeyed(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    proposal = {"description": SPOOF, "reasoning": f"Asked: {SPOOF}"}
    async with run_for(f"Tidy up {SPOOF}", proposal) as handle:
        alice.get(f"{inbox.url}/")
        row = f'tr[data-workflow-id="{handle.id}"]'
        wait_for(alice, lambda d: d.find_elements(By.CSS_SELECTOR, row))
        listed = alice.find_element(By.CSS_SELECTOR, row).text
        open_request(alice, inbox, handle.id)
        action, request = text_of(alice, "action"), text_of(alice, "user-request")

    for shown in (listed, action, request):
        assert "\u202e" not in shown, shown
        assert "Delete the report\\u202efdp.exe" in shown


def signed_in_as(driver: WebDriver, inbox: InboxServer, name: str, password: str) -> None:
    """A fresh session of ``name`` in the session's browser (the ``alice`` fixture signs
    alice in again next time, since it finds nobody signed in)."""
    driver.delete_all_cookies()
    sign_in(driver, inbox, name, password)
    wait_for(driver, shows("signed-in-user", name))


async def test_a_staged_run_is_decided_stage_by_stage(
    alice: WebDriver,
    inbox: InboxServer,
    run_for: Any,
    dev_server: WorkflowEnvironment,
    inbox_accounts: tuple[Path, InboxAccounts],
) -> None:
    """Each stage is decided through its ``submit_decision`` update, recorded as the
    signed-in member (the CLI's ``approve`` signal could only say ``temporal-cli``, who is
    nobody's member); one person approves one stage, so bob decides the director's."""
    roles = {"manager": ["alice"], "director": ["alice", "bob"]}
    async with run_for(
        "Move funds", approval_stages=["manager", "director"], stage_approvers=roles
    ) as handle:
        open_request(alice, inbox, handle.id)
        wait_for(alice, shows("stage", "manager"))
        decide(alice, "approve", "manager ok")
        wait_for(alice, shows("stage", "director"))
        try:
            signed_in_as(alice, inbox, "bob", inbox_accounts[1].passwords["bob"])
            open_request(alice, inbox, handle.id)
            wait_for(alice, shows("stage", "director"))
            decide(alice, "approve", "director ok")
            wait_for(alice, shows("outcome", "approved"))
        finally:
            alice.delete_all_cookies()
        assert not await is_running(handle)
        result = await handle.result()

    assert [(s.stage, s.approved, s.reviewer) for s in result.stages] == [
        ("manager", True, "alice"),
        ("director", True, "bob"),
    ]


POST_THE_FORM = """
const [formId, done] = arguments;
const form = document.getElementById(formId);
const body = new FormData(form);
body.append("verdict", "approve");
const answers = [];
for (const _ of [1, 2]) {  // the same form, posted twice: a double click
  const answer = await fetch(form.action, {method: "POST", body: body});
  answers.push([answer.status, await answer.text()]);
}
done(answers);
"""


async def test_a_double_click_approves_the_stage_once_and_never_the_next(
    alice: WebDriver, inbox: InboxServer, run_for: Any, dev_server: WorkflowEnvironment
) -> None:
    """The request page's form carries the stage it decides: posted twice, the manager
    stage is approved once, the second post is answered as already applied, and the
    director (alice is a member there too) still waits, undecided."""
    roles = {"manager": ["alice"], "director": ["alice", "carol"]}
    async with run_for(
        "Move more funds", approval_stages=["manager", "director"], stage_approvers=roles
    ) as handle:
        open_request(alice, inbox, handle.id)
        wait_for(alice, shows("stage", "manager"))
        form = alice.find_element(By.ID, "decision-form")
        assert form.find_element(By.NAME, "stage").get_attribute("value") == "manager"
        alice.set_script_timeout(WAIT_SECONDS)
        first, second = alice.execute_async_script(POST_THE_FORM, "decision-form")
        status = await status_of(handle)

    for code, page in (first, second):
        assert code == 200 and 'id="sent"' in page and 'id="refused"' not in page, page
    assert status.current_stage is not None and status.current_stage.stage == "director"
    events = [(e.event, e.detail) for e in status.audit_trail]
    assert [d for e, d in events if e == "stage_approved"] == ["manager (1/2) by alice"]
    assert not [d for e, d in events if e == "decision_refused"]


def colour(driver: WebDriver, element_id: str) -> tuple[int, ...]:
    """The element's background as (red, green, blue)."""
    css = driver.find_element(By.ID, element_id).value_of_css_property("background-color")
    return tuple(int(part) for part in re.findall(r"\d+", css)[:3])


async def test_approve_looks_unlike_reject_and_takes_a_second_step(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    async with run_for("Purge the audit logs") as handle:
        open_request(alice, inbox, handle.id)
        hidden = alice.find_element(By.ID, "approve").is_displayed()
        approve, reject = colour(alice, "approve-start"), colour(alice, "reject")
        alice.find_element(By.ID, "approve-start").click()
        shown = alice.find_element(By.ID, "approve").is_displayed()
        assert text_of(alice, "state") == WAITING  # opening the step decided nothing

    assert not hidden and shown
    (red, green, _), (red_r, green_r, _) = approve, reject
    assert green > red and red_r > green_r, (approve, reject)  # green, and red


async def test_times_are_shown_in_the_readers_time_zone(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    """The page says UTC; the script shows the reader's zone (Tokyo here, UTC+9), keeping
    the UTC time as the element's title."""
    alice.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})
    try:
        async with run_for("Rotate the signing keys") as handle:
            open_request(alice, inbox, handle.id)
            times = alice.find_elements(By.CSS_SELECTOR, "#status time[datetime]")
            shown = [(t.text, t.get_attribute("title")) for t in times]
    finally:
        alice.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": ""})

    assert shown
    for text, title in shown:
        assert title.endswith(" UTC") and "GMT+9" in text, (text, title)


NO_OVERFLOW = "return [document.documentElement.scrollWidth, window.innerWidth];"


async def test_the_pending_list_and_a_request_fit_a_phone_400_px_wide(
    alice: WebDriver, inbox: InboxServer, run_for: Any
) -> None:
    """Nothing wider than the screen, long unbroken text included."""
    long_word = "x" * 150
    proposal = {"description": f"Delete {long_word}", "parameters": {"path": long_word}}
    size = alice.get_window_size()
    alice.set_window_size(400, 900)
    try:
        async with run_for(f"Clean up {long_word}", proposal) as handle:
            alice.get(f"{inbox.url}/")
            row = f'tr[data-workflow-id="{handle.id}"]'
            wait_for(alice, lambda d: d.find_elements(By.CSS_SELECTOR, row))
            listed = alice.execute_script(NO_OVERFLOW)
            open_request(alice, inbox, handle.id)
            opened = alice.execute_script(NO_OVERFLOW)
            screenshot(alice, "inbox_phone.png")
    finally:
        alice.set_window_size(size["width"], size["height"])

    assert listed[1] <= 400, listed
    assert listed[0] <= listed[1], f"the pending list overflows: {listed}"
    assert opened[0] <= opened[1], f"the request page overflows: {opened}"
