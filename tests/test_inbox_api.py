"""The inbox over HTTP, against the dev server and a real ``python -m worker``: the JSON API,
sign-in, CSRF, the trusted proxy header, and Temporal going away. Every refusal is checked
to have changed nothing."""

import asyncio
import base64
import contextlib
import dataclasses
import io
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import itsdangerous
import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from benchmarks.fake_openai import FakeOpenAIServer
from client.connection import TemporalUnavailableError, converter_with_keys
from constants import (
    APPROVAL_STATUS_SEARCH_ATTRIBUTE,
    INBOX_PORT_ENV,
    INBOX_USERS_ENV,
    STATE_DIR_ENV,
    STATUS_QUERY,
)
from encryption.codec import EncryptionCodec
from encryption.keys import parse_keys
from inbox import service as inbox_service
from inbox.__main__ import main as inbox_main
from inbox.accounts import Accounts
from inbox.app import create_app
from inbox.auth import SESSION_COOKIE, Sessions
from inbox.service import TemporalService
from inbox.settings import InboxSettings
from models.limits import MAX_NOTES_CHARS, MAX_TOOL_CALL_BYTES
from models.models import ApprovalStatus, WorkflowState, WorkflowStatus
from tests.conftest import InboxAccounts
from tests.e2e import InboxServer, WorkerProcess, address_of, inbox_run, serve_inbox, unique
from tests.helpers import embedded_server_port, status_of, wait_until


@pytest.fixture
async def api(
    inbox: InboxServer, inbox_accounts: tuple[Path, InboxAccounts]
) -> AsyncIterator[httpx2.AsyncClient]:
    """An API client with alice's bearer token."""
    _, accounts = inbox_accounts
    headers = {"Authorization": f"Bearer {accounts.token}"}
    async with httpx2.AsyncClient(base_url=inbox.url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture
def run_for(
    worker: WorkerProcess, dev_server: WorkflowEnvironment, llm_server: FakeOpenAIServer
) -> Any:
    def start(text: str, **fields: Any) -> Any:
        return inbox_run(worker, dev_server, llm_server, unique(text), **fields)

    return start


@contextlib.asynccontextmanager
async def signed_in_client(
    url: str, name: str, password: str
) -> AsyncIterator[tuple[httpx2.AsyncClient, httpx2.Response]]:
    """A browser-like client that signed in through the form; and the sign-in answer."""
    async with httpx2.AsyncClient(base_url=url, timeout=60, headers={"Origin": url}) as client:
        token = csrf_token((await client.get("/signin")).text)
        answer = await client.post(
            "/signin", data={"username": name, "password": password, "csrf_token": token}
        )
        yield client, answer


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token in the page:\n{html[:500]}"
    return match[1]


@pytest.fixture
def own_inbox(dev_server: WorkflowEnvironment, inbox_accounts: tuple[Path, InboxAccounts]) -> Any:
    """A separate inbox (its own sign-in limits, proxies, Temporal connection) for a test
    that must not disturb the session's one; stopped at the end of the test."""
    users_file, _ = inbox_accounts
    started: list[InboxServer] = []

    def start(connect: Any = None, **settings: Any) -> InboxServer:
        async def dev_connect() -> Client:
            address = address_of(dev_server)
            return await Client.connect(address, data_converter=pydantic_data_converter)

        app = create_app(
            InboxSettings(users_file=users_file, **settings),
            TemporalService(connect or dev_connect),
        )
        started.append(serve_inbox(app, users_file))
        return started[-1]

    yield start
    for server in started:
        server.stop()


async def test_the_api_lists_a_pending_run_and_returns_its_status(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    async with run_for("Drop the archive table") as handle:

        async def pending_ids() -> list[str]:
            answer = await api.get("/api/requests", params={"status": "pending"})
            assert answer.status_code == 200
            return [item["workflow_id"] for item in answer.json()]

        await wait_until(pending_ids, lambda ids: handle.id in ids)
        items = (await api.get("/api/requests?status=pending")).json()
        item = next(i for i in items if i["workflow_id"] == handle.id)
        status = (await api.get(f"/api/requests/{handle.id}")).json()

    for field in ("workflow_id", "request_id", "user_request", "proposed_action", "deadline"):
        assert item[field], field
    assert status["state"] == "awaiting_approval"
    assert status["approval_request"]["request_id"] == item["request_id"]


async def test_the_lists_come_in_pages_newest_first_each_linking_the_next(
    api: httpx2.AsyncClient,
    inbox: InboxServer,
    inbox_accounts: tuple[Path, InboxAccounts],
    run_for: Any,
) -> None:
    """Pages of ``page_size`` runs, newest first; the API's ``Link: rel="next"`` and the
    page's "Older" link carry the ``page_token``; a token or size of our own making is 422."""

    async def walk(url: str | None) -> list[list[str]]:
        pages = []
        while url:
            answer = await api.get(url)
            assert answer.status_code == 200, answer.text
            pages.append([item["workflow_id"] for item in answer.json()])
            url = answer.links.get("next", {}).get("url")
        return pages

    async with (
        run_for("Archive the 2019 ledgers") as oldest,
        run_for("Archive the 2020 ledgers") as middle,
        run_for("Archive the 2021 ledgers") as newest,
    ):
        ours = [newest.id, middle.id, oldest.id]
        pages = await wait_until(
            lambda: walk("/api/requests?status=pending&page_size=2"),
            lambda pages: set(ours) <= {wid for page in pages for wid in page},
        )
        _, accounts = inbox_accounts
        async with signed_in_client(inbox.url, "alice", accounts.passwords["alice"]) as (b, _):
            first = (await b.get("/?page_size=1")).text
            older = re.search(r'href="([^"]+)" id="next-page"', first)
            assert older, first
            second = (await b.get(older[1].replace("&amp;", "&"))).text
            whole = (await b.get("/?page_size=100")).text
        bad_token = await api.get("/api/requests", params={"page_token": "bm90IGEgdG9rZW4"})
        garbled = await api.get("/api/requests", params={"page_token": "%%%"})
        too_big = await api.get("/api/requests", params={"page_size": 101})

    assert all(1 <= len(page) <= 2 for page in pages)
    listed = [wid for page in pages for wid in page if wid in ours]
    assert listed == ours  # newest first, each once, across pages
    assert f'data-workflow-id="{newest.id}"' in first and middle.id not in first
    assert f'data-workflow-id="{middle.id}"' in second and 'id="first-page"' in second
    assert f'data-workflow-id="{oldest.id}"' in whole and 'id="next-page"' not in whole
    for refused in (bad_token, garbled):
        assert refused.status_code == 422 and "page_token" in refused.json()["error"]
    assert too_big.status_code == 422 and "page_size" in too_big.json()["error"]


async def test_waiting_for_me_follows_the_approvers_and_each_vote_at_once(
    api: httpx2.AsyncClient,
    inbox: InboxServer,
    inbox_accounts: tuple[Path, InboxAccounts],
    run_for: Any,
) -> None:
    """A vote shows in the very next list (no cache serves the row from before it), and
    "waiting for me" drops a run once I voted; a run for someone else never shows there."""
    _, accounts = inbox_accounts
    quorum = {"approvers": ["alice", "bob"], "voting": {"required_approvals": 2}}
    async with (
        run_for("Pay the vendor", approvers=["bob"]) as for_bob,
        run_for("Pay the contractor", **quorum) as for_both,
        signed_in_client(inbox.url, "alice", accounts.passwords["alice"]) as (alice, _),
    ):

        async def listed(path: str) -> set[str]:
            return set(re.findall(r'data-workflow-id="([^"]+)"', (await alice.get(path)).text))

        everyone = await wait_until(lambda: listed("/"), lambda ids: for_both.id in ids)
        mine_before = await listed("/?mine=1")
        vote = await api.post(f"/api/requests/{for_both.id}/decision", json={"approved": True})
        items = (await api.get("/api/requests?status=pending")).json()
        mine_after = await listed("/?mine=1")

    assert for_bob.id in everyone and for_bob.id not in mine_before
    assert for_both.id in mine_before
    assert vote.status_code == 200, vote.text
    row = next(item for item in items if item["workflow_id"] == for_both.id)
    assert [v["reviewer"] for v in row["votes"]] == ["alice"]
    assert for_both.id not in mine_after


async def test_an_escalation_reaches_the_list_by_itself(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    """Nothing decides here: the escalation timer fires in the workflow, and the next list
    shows the widened approvers: the row, listed before the escalation, is read again once
    its history grew (a cached row would stay as first seen)."""
    escalation = {"after_seconds": 3, "approvers": ["alice"]}  # time to list the row first
    async with run_for(
        "Reboot the primary database", approvers=["carol"], escalation=escalation
    ) as handle:

        async def row() -> dict[str, Any] | None:
            items = (await api.get("/api/requests?status=pending")).json()
            return next((i for i in items if i["workflow_id"] == handle.id), None)

        first = await wait_until(row, lambda item: item is not None)
        assert not first["escalated"], "listed only after the escalation: nothing was re-read"
        escalated = await wait_until(row, lambda item: item is not None and item["escalated"])

    assert escalated["approvers"] == ["carol", "alice"]


async def test_the_session_cookie_is_secure_when_the_inbox_is_served_over_https(
    inbox: InboxServer, own_inbox: Any
) -> None:
    behind_tls = own_inbox(public_url="https://inbox.example.test")
    host = {"Host": "inbox.example.test"}  # as the TLS proxy forwards it (Host is checked)
    async with httpx2.AsyncClient(base_url=behind_tls.url, timeout=60, headers=host) as client:
        secure = (await client.get("/signin")).headers["set-cookie"].lower()
    async with httpx2.AsyncClient(base_url=inbox.url, timeout=60) as client:
        plain = (await client.get("/signin")).headers["set-cookie"].lower()

    assert "; secure" in secure and "httponly" in secure
    assert "secure" not in plain


@workflow.defn(name="InboxSealedOutcome", sandboxed=False)
class SealedOutcome:
    """A closed run whose payloads are encrypted, as a worker with keys leaves it."""

    @workflow.run
    async def run(self, text: str) -> str:
        return text


async def test_a_decided_run_it_cannot_decrypt_is_listed_as_such(
    api: httpx2.AsyncClient,
    dev_server: WorkflowEnvironment,
    inbox: InboxServer,
    inbox_accounts: tuple[Path, InboxAccounts],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Encrypted with a key the inbox lacks: shown (outcome from the search attribute),
    neither hidden nor taking the list down."""
    # Its worker has gone: each page waits this long for one to answer the status query.
    monkeypatch.setattr(inbox_service, "CLOSED_QUERY_SECONDS", 0.5)
    key = base64.b64encode(os.urandom(32)).decode()
    codec = EncryptionCodec(parse_keys([f"inbox-lacks:{key}"], source="test"))
    sealed = await Client.connect(
        address_of(dev_server),
        data_converter=dataclasses.replace(pydantic_data_converter, payload_codec=codec),
    )
    queue = f"sealed-{uuid.uuid4().hex[:8]}"
    rejected = TypedSearchAttributes(
        [
            SearchAttributePair(
                SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE),
                ApprovalStatus.REJECTED.value,
            )
        ]
    )
    async with Worker(
        sealed,
        task_queue=queue,
        workflows=[SealedOutcome],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await sealed.start_workflow(
            SealedOutcome.run,
            "the secret request",
            id=f"sealed-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
            search_attributes=rejected,
        )
        await handle.result()

    async def decided() -> list[dict[str, Any]]:
        return (await api.get("/api/requests?status=decided")).json()

    items = await wait_until(decided, lambda items: handle.id in {i["workflow_id"] for i in items})
    row = next(item for item in items if item["workflow_id"] == handle.id)
    _, accounts = inbox_accounts
    async with signed_in_client(inbox.url, "alice", accounts.passwords["alice"]) as (b, _):
        page = (await b.get("/decided")).text
        opened = await b.get(f"/requests/{handle.id}")
    listed = page[page.index(f'data-workflow-id="{handle.id}"') :].split("</tr>")[0]
    asked = await api.get(f"/api/requests/{handle.id}")

    assert "payload encrypted, not readable here" in listed and "rejected" in listed
    assert row["readable"] is False
    assert row["message"] == "payload encrypted, not readable here"
    assert "encrypted" in row["unreadable"] and row["unreadable"] in listed
    assert row["outcome"] == "rejected" and row["user_request"] is None
    # Its own page says why and does not retry: waiting will not give the inbox the key.
    assert opened.status_code == asked.status_code == 403
    assert "key this inbox does not hold" in asked.json()["error"]
    assert "outcome is 'rejected'" in asked.json()["error"]
    assert 'data-retry="1"' not in opened.text and "key this inbox does not hold" in opened.text


@workflow.defn(name="InboxSealedPending", sandboxed=False)
class SealedPending:
    """A run waiting for a decision, whose status a worker with keys answers encrypted."""

    @workflow.run
    async def run(self, text: str) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> WorkflowStatus:
        return WorkflowStatus(state=WorkflowState.AWAITING_APPROVAL)


async def test_a_pending_run_it_cannot_decrypt_is_one_unreadable_row_not_a_broken_page(
    dev_server: WorkflowEnvironment,
    own_inbox: Any,
    inbox_accounts: tuple[Path, InboxAccounts],
) -> None:
    """An inbox without the key (encryption on, as ``python -m inbox`` connects) lists the
    run as unreadable, saying which key it lacks, and still shows the readable one; the
    run's own page says the same (403), and no page is a 500."""
    address = address_of(dev_server)

    async def keyless() -> Client:
        return await Client.connect(address, data_converter=converter_with_keys(None))

    inbox = own_inbox(connect=keyless)
    key = base64.b64encode(os.urandom(32)).decode()
    ring = parse_keys([f"inbox-lacks:{key}"], source="test")
    sealed = await Client.connect(address, data_converter=converter_with_keys(ring))
    plain = await Client.connect(address, data_converter=pydantic_data_converter)
    pending = TypedSearchAttributes(
        [
            SearchAttributePair(
                SearchAttributeKey.for_keyword(APPROVAL_STATUS_SEARCH_ATTRIBUTE),
                ApprovalStatus.PENDING.value,
            )
        ]
    )
    handles = []
    async with contextlib.AsyncExitStack() as stack:
        for client in (sealed, plain):
            queue = f"sealed-{uuid.uuid4().hex[:8]}"
            await stack.enter_async_context(
                Worker(
                    client,
                    task_queue=queue,
                    workflows=[SealedPending],
                    workflow_runner=UnsandboxedWorkflowRunner(),
                )
            )
            handle = await client.start_workflow(
                SealedPending.run,
                "the secret request",
                id=f"sealed-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
                search_attributes=pending,
            )
            stack.push_async_callback(handle.terminate, "end of test")
            handles.append(handle)
        _, accounts = inbox_accounts
        headers = {"Authorization": f"Bearer {accounts.token}"}
        async with httpx2.AsyncClient(base_url=inbox.url, headers=headers, timeout=60) as api:

            async def listed() -> list[dict[str, Any]]:
                answer = await api.get("/api/requests")
                assert answer.status_code == 200, answer.text
                return answer.json()

            ids = {h.id for h in handles}
            items = await wait_until(listed, lambda i: ids <= {x["workflow_id"] for x in i})
            opened = await api.get(f"/api/requests/{handles[0].id}")
        async with signed_in_client(inbox.url, "alice", accounts.passwords["alice"]) as (b, _):
            page = await b.get("/")
            its_page = await b.get(f"/requests/{handles[0].id}")

    rows = {item["workflow_id"]: item for item in items}
    unreadable, readable = rows[handles[0].id], rows[handles[1].id]
    assert "inbox-lacks" in unreadable["unreadable"] and unreadable["state"] is None
    assert readable["unreadable"] is None and readable["state"] == "awaiting_approval"
    assert page.status_code == 200
    row = page.text[page.text.index(f'data-workflow-id="{handles[0].id}"') :].split("</tr>")[0]
    assert "cannot be read here" in row and "inbox-lacks" in row, row
    assert f'data-workflow-id="{handles[1].id}"' in page.text
    assert opened.status_code == its_page.status_code == 403
    assert "inbox-lacks" in opened.json()["error"] and "inbox-lacks" in its_page.text


async def test_an_api_decision_is_recorded_for_the_tokens_owner_only(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    async with run_for("Rotate the production keys") as handle:
        claimed = await api.post(
            f"/api/requests/{handle.id}/decision",
            json={"approved": True, "reviewer": "mallory"},
        )
        answer = await api.post(
            f"/api/requests/{handle.id}/decision", json={"approved": True, "notes": "checked"}
        )
        result = await handle.result()

    assert claimed.status_code == 422
    assert "reviewer" in claimed.json()["error"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["reviewer"] == "alice"
    assert answer.json()["reviewer_notes"] == "checked"
    assert result.outcome.value == "approved"
    assert result.decision is not None and result.decision.reviewer == "alice"


async def test_an_api_approval_with_edited_arguments_asks_about_the_edited_call(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    """The API takes the edited call's arguments: the run asks again about that call (its
    effect worked out anew), and whoever edited it may not approve it."""
    async with run_for("Rotate the production keys [edited by api]") as handle:
        pending = await status_of(handle)
        assert pending.approval_request is not None
        call = pending.approval_request.proposed_action.tool_call
        assert call is not None
        edited = {**call.arguments, "subject": "Rotate the staging keys only"}
        answer = await api.post(
            f"/api/requests/{handle.id}/decision",
            json={"approved": True, "amended_arguments": edited},
        )
        again = await wait_until(
            lambda: status_of(handle),
            lambda s: (
                s.state == WorkflowState.AWAITING_APPROVAL
                and s.approval_request is not None
                and s.approval_request.request_id != pending.approval_request.request_id
            ),
        )
        own = await api.post(f"/api/requests/{handle.id}/decision", json={"approved": True})

    assert answer.status_code == 200, answer.text
    assert answer.json()["amended_action"]["tool_call"]["arguments"] == edited
    assert again.approval_request is not None and again.approval_request.preview is not None
    assert again.approval_request.proposed_action.tool_call == call.model_copy(
        update={"arguments": edited}
    )
    assert "'Rotate the staging keys only'" in again.approval_request.preview.summary
    assert own.status_code == 409
    assert own.json()["error"] == "'alice' requested or amended this action and cannot approve it"


async def test_edited_arguments_over_the_limit_or_unchanged_are_not_applied(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    """Over the tool call's limit: refused before anything is sent. The arguments as they
    are: refused by the workflow, with its reason. Neither counts."""
    async with run_for("Rotate the production keys [oversized call]") as handle:
        path = f"/api/requests/{handle.id}/decision"
        oversized = {"body": "b" * MAX_TOOL_CALL_BYTES}
        too_big = await api.post(path, json={"approved": True, "amended_arguments": oversized})
        request = (await status_of(handle)).approval_request
        assert request is not None and request.proposed_action.tool_call is not None
        same = request.proposed_action.tool_call.arguments
        unchanged = await api.post(path, json={"approved": True, "amended_arguments": same})
        not_an_object = await api.post(path, json={"approved": True, "amended_arguments": [1]})
        deep = {"a": [[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]}
        too_deep = await api.post(path, json={"approved": True, "amended_arguments": deep})
        status = await status_of(handle)

    assert too_big.status_code == 409
    assert too_big.json()["error"].startswith("Not sent: the amended action: the tool call is ")
    assert f"bytes as JSON; the limit is {MAX_TOOL_CALL_BYTES:,}" in too_big.json()["error"]
    assert unchanged.status_code == 409
    assert unchanged.json()["error"] == (
        "the amended call is the one awaiting approval; approve it without edits"
    )
    assert not_an_object.status_code == 422
    assert "amended_arguments" in not_an_object.json()["error"]
    assert too_deep.status_code == 422
    assert "nests deeper than 16 levels" in too_deep.json()["error"]
    assert status.state == WorkflowState.AWAITING_APPROVAL and status.votes == []


async def test_a_refused_decision_is_409_with_the_workflows_reason(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    async with run_for("Wire the payroll", approvers=["bob"]) as handle:
        answer = await api.post(f"/api/requests/{handle.id}/decision", json={"approved": True})
        status = await status_of(handle)

    assert answer.status_code == 409
    assert "alice" in answer.json()["error"] and "approver" in answer.json()["error"]
    assert status.state == WorkflowState.AWAITING_APPROVAL and status.votes == []


async def test_unknown_workflow_is_404_and_malformed_bodies_are_422_naming_the_field(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    unknown = await api.get(f"/api/requests/no-such-{uuid.uuid4().hex}")
    bad_status = await api.get("/api/requests?status=everything")
    async with run_for("Purge the caches") as handle:
        not_bool = await api.post(f"/api/requests/{handle.id}/decision", json={"approved": "yes"})
        not_json = await api.post(f"/api/requests/{handle.id}/decision", content=b"{approve")
        status = await status_of(handle)

    assert unknown.status_code == 404 and "No workflow" in unknown.json()["error"]
    assert bad_status.status_code == 422 and "status" in bad_status.json()["error"]
    assert not_bool.status_code == 422 and "approved" in not_bool.json()["error"]
    assert not_json.status_code == 422
    assert status.votes == []


async def test_notes_at_the_limit_are_recorded_and_one_character_over_is_422(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    async with run_for("Rotate the signing keys") as handle:
        path = f"/api/requests/{handle.id}/decision"
        over = await api.post(path, json={"approved": True, "notes": "n" * (MAX_NOTES_CHARS + 1)})
        before = await status_of(handle)
        at = await api.post(path, json={"approved": True, "notes": "n" * MAX_NOTES_CHARS})
        await handle.result()

    assert over.status_code == 422 and "notes" in over.json()["error"]
    assert before.votes == []
    assert at.status_code == 200, at.text
    assert len(at.json()["reviewer_notes"]) == MAX_NOTES_CHARS


async def test_the_api_refuses_missing_wrong_and_session_credentials_and_applies_nothing(
    inbox: InboxServer, inbox_accounts: tuple[Path, InboxAccounts], run_for: Any
) -> None:
    _, accounts = inbox_accounts
    async with run_for("Close the customer account") as handle:
        path = f"/api/requests/{handle.id}/decision"
        async with httpx2.AsyncClient(base_url=inbox.url, timeout=60) as anonymous:
            missing = await anonymous.post(path, json={"approved": True})
            wrong = await anonymous.post(
                path, json={"approved": True}, headers={"Authorization": "Bearer hitl_wrong"}
            )
        async with signed_in_client(inbox.url, "alice", accounts.passwords["alice"]) as (b, _):
            session = await b.post(path, json={"approved": True})
        status = await status_of(handle)

    assert missing.status_code == 401 and wrong.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert session.status_code == 403
    assert status.votes == [] and status.state == WorkflowState.AWAITING_APPROVAL


async def test_cross_origin_and_tokenless_form_posts_are_refused_and_apply_nothing(
    inbox: InboxServer, inbox_accounts: tuple[Path, InboxAccounts], run_for: Any
) -> None:
    _, accounts = inbox_accounts
    async with (
        signed_in_client(inbox.url, "alice", accounts.passwords["alice"]) as (browser, _),
        run_for("Delete the old backups") as handle,
    ):
        page = await browser.get(f"/requests/{handle.id}")
        form = {"verdict": "approve", "notes": "", "csrf_token": csrf_token(page.text)}
        path = f"/requests/{handle.id}/decision"
        cross_origin = await browser.post(
            path, data=form, headers={"Origin": "https://evil.example"}
        )
        cross_site = await browser.post(path, data=form, headers={"Sec-Fetch-Site": "cross-site"})
        no_token = await browser.post(path, data={**form, "csrf_token": ""})
        bad_verdict = await browser.post(path, data={**form, "verdict": "maybe"})
        bad_edit = await browser.post(
            path, data={**form, "verdict": "approve_edited", "arguments": "subject=x"}
        )
        not_an_object = await browser.post(
            path, data={**form, "verdict": "approve_edited", "arguments": '["x"]'}
        )
        get_does_nothing = await browser.get(path)
        status = await status_of(handle)

    assert page.status_code == 200
    assert [cross_origin.status_code, cross_site.status_code, no_token.status_code] == [403] * 3
    assert "Nothing was changed" in no_token.text
    assert bad_verdict.status_code == 422 and "verdict" in bad_verdict.text
    assert bad_edit.status_code == 422 and "arguments: not JSON (Expecting value" in bad_edit.text
    assert not_an_object.status_code == 422
    assert "arguments: must be a JSON object" in not_an_object.text
    assert get_does_nothing.status_code == 404
    assert status.votes == [] and status.state == WorkflowState.AWAITING_APPROVAL


async def test_sign_in_failures_say_the_same_thing_and_are_rate_limited(
    own_inbox: Any, inbox_accounts: tuple[Path, InboxAccounts]
) -> None:
    _, accounts = inbox_accounts
    server = own_inbox()
    async with signed_in_client(server.url, "alice", "not-her-password") as (_, a1):
        pass
    async with signed_in_client(server.url, "zed", "whatever-password") as (_, a2):
        pass
    for _ in range(5):  # alice's fifth failure from this client locks this pair out
        async with signed_in_client(server.url, "alice", "still-wrong") as (_, limited):
            pass
    right = accounts.passwords["alice"]
    async with signed_in_client(server.url, "alice", right) as (right_but_limited, a3):
        page = await right_but_limited.get("/", follow_redirects=False)

    assert a1.status_code == a2.status_code == 401
    assert "Wrong user name or password." in a1.text and "Wrong user name or password." in a2.text
    assert limited.status_code == 429 and a3.status_code == 429
    assert page.status_code == 303 and page.headers["location"].startswith("/signin")


async def test_a_signed_in_session_reaches_the_pages_and_an_expired_one_does_not(
    inbox: InboxServer, inbox_accounts: tuple[Path, InboxAccounts], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, accounts = inbox_accounts
    async with signed_in_client(inbox.url, "alice", accounts.passwords["alice"]) as (
        browser,
        answer,
    ):
        fresh = await browser.get("/", follow_redirects=False)
        cookie = browser.cookies[SESSION_COOKIE]
    sessions: Sessions = inbox.server.config.app.state.inbox.sessions
    session = sessions.decode(cookie)
    assert session is not None and session.user == "alice"
    day_ago = int(time.time()) - 24 * 3600
    with monkeypatch.context() as patch:
        patch.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda _: day_ago)
        expired_cookie = sessions.encode(session)
    async with httpx2.AsyncClient(base_url=inbox.url, timeout=60) as expired:
        expired.cookies.set(SESSION_COOKIE, expired_cookie)
        stale = await expired.get("/", follow_redirects=False)

    assert answer.status_code == 303 and fresh.status_code == 200
    assert "Signed in as" in fresh.text and "alice" in fresh.text
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie
    assert "script-src 'self'" in fresh.headers["content-security-policy"]
    assert stale.status_code == 303 and stale.headers["location"].startswith("/signin")


async def test_the_proxy_header_counts_only_from_a_trusted_proxy_with_its_secret(
    own_inbox: Any, inbox: InboxServer
) -> None:
    from constants import PROXY_SECRET_HEADER
    from inbox.proxy import parse_networks
    from tests.inbox_in_process import PROXY_SECRET

    header = {"X-Forwarded-User": "mallory", "X-Forwarded-For": "192.0.2.1"}
    secret = {PROXY_SECRET_HEADER: PROXY_SECRET}
    untrusted = own_inbox(trusted_proxies=parse_networks("192.0.2.1"), proxy_secret=PROXY_SECRET)
    trusted = own_inbox(
        trusted_proxies=parse_networks("127.0.0.0/8"),
        proxy_secret=PROXY_SECRET,
        proxy_user_header="X-Auth-Request-User",
    )
    async with httpx2.AsyncClient(timeout=60) as client:
        spoofed = await client.get(f"{untrusted.url}/", headers=header, follow_redirects=False)
        nothing_trusted = await client.get(f"{inbox.url}/", headers=header, follow_redirects=False)
        api = await client.get(f"{untrusted.url}/api/requests", headers=header)
        no_secret = await client.get(
            f"{trusted.url}/", headers={"X-Auth-Request-User": "carol"}, follow_redirects=False
        )
        vouched = await client.get(
            f"{trusted.url}/",
            headers={"X-Auth-Request-User": "carol", **secret},
            follow_redirects=False,
        )

    assert spoofed.status_code == api.status_code == no_secret.status_code == 403
    assert PROXY_SECRET_HEADER in api.json()["error"]
    assert nothing_trusted.status_code == 303  # no proxy configured: the header means nothing
    assert vouched.status_code == 200 and "carol" in vouched.text


async def test_temporal_unreachable_is_a_503_page_that_recovers(
    own_inbox: Any, dev_server: WorkflowEnvironment, inbox_accounts: tuple[Path, InboxAccounts]
) -> None:
    _, accounts = inbox_accounts
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    target = {"address": f"127.0.0.1:{closed_port}"}

    async def connect() -> Client:
        try:
            return await Client.connect(target["address"], data_converter=pydantic_data_converter)
        except RuntimeError as err:
            message = f"Cannot reach Temporal at {target['address']}."
            raise TemporalUnavailableError(message) from err

    server = own_inbox(connect)
    async with signed_in_client(server.url, "alice", accounts.passwords["alice"]) as (
        browser,
        _,
    ):
        down = await browser.get("/")
        api_down = await browser.get(
            "/api/requests", headers={"Authorization": f"Bearer {accounts.token}"}
        )
        target["address"] = address_of(dev_server)
        back = await browser.get("/")

    assert down.status_code == 503
    assert "Cannot reach Temporal" in down.text and "Traceback" not in down.text
    assert 'data-retry="1"' in down.text  # the page's script reloads once the server answers
    assert api_down.status_code == 503 and "Cannot reach Temporal" in api_down.json()["error"]
    assert back.status_code == 200


async def test_a_repeated_decision_is_applied_once_and_a_changed_one_is_judged(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    """A retry (timeout, double click) is the same update; a different decision is not."""
    voting = {"approvers": ["alice", "bob"], "voting": {"required_approvals": 2}}
    async with run_for("Raise the spending limit", **voting) as handle:
        path = f"/api/requests/{handle.id}/decision"
        first = await api.post(path, json={"approved": True, "notes": "fine"})
        again = await api.post(path, json={"approved": True, "notes": "fine"})
        changed = await api.post(path, json={"approved": False, "notes": "second thoughts"})
        status = await status_of(handle)

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert changed.status_code == 409 and "alice" in changed.json()["error"]
    assert [vote.reviewer for vote in status.votes] == ["alice"]


def test_accounts_are_created_from_the_command_line_and_kept_hashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(INBOX_USERS_ENV, str(tmp_path / "users.json"))

    def inbox_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``python -m inbox args`` in-process, its password piped to standard input."""
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            code = inbox_main(list(args))
        except SystemExit as exit_:  # argparse refusing the arguments
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    no_user = inbox_cli("add-token", "dave")
    short = inbox_cli("add-user", "dave", stdin="short\n")
    created = inbox_cli("add-user", "dave", stdin="a long enough password\n")
    token = inbox_cli("add-token", "dave")
    bad_name = inbox_cli("add-user", "da\nve", stdin="a long enough password\n")

    assert no_user.returncode == 1 and "add-user dave" in no_user.stderr
    assert short.returncode == 1 and "at least 8" in short.stderr
    assert created.returncode == 0 and token.returncode == 0
    assert bad_name.returncode == 2 and "printable" in bad_name.stderr
    stored = (tmp_path / "users.json").read_text()
    secret = token.stdout.strip()
    assert secret.startswith("hitl_") and secret not in stored
    assert "a long enough password" not in stored and "$argon2id$" in stored
    assert (tmp_path / "users.json").stat().st_mode & 0o777 == 0o600
    accounts = Accounts(tmp_path / "users.json")
    assert accounts.check_password("dave", "a long enough password")
    assert not accounts.check_password("dave", "wrong") and not accounts.check_password("x", "y")
    assert accounts.user_for_token(secret) == "dave" and accounts.user_for_token("hitl_x") is None


@pytest.mark.usefixtures("processes")
async def test_the_demo_serves_the_inbox_and_a_browser_decision_ends_it(tmp_path: Path) -> None:
    """``demo --inbox`` with no terminal: it prints the inbox's URL and a demo account, and
    a decision made there (signed in as that account) ends the demo like any other."""
    from dev_server import free_port
    from tests.helpers import background_script, script_env, wait_for_output

    env = script_env(f"127.0.0.1:{embedded_server_port()}", "http://127.0.0.1:1/v1", "demo-inbox")
    env[INBOX_PORT_ENV] = str(free_port())
    env[STATE_DIR_ENV] = str(tmp_path)  # its own operations database: the demo deletes rows
    log_path = tmp_path / "demo.log"
    with (
        log_path.open("w") as log,
        background_script(
            "demo",
            "--offline",
            "--inbox",
            "--data-dir",
            str(tmp_path),
            "Delete all test data from the production database",
            env=env,
            log=log,
        ) as process,
    ):
        output = await wait_for_output(log_path, "No terminal to ask in", timeout=60)
        account = re.search(r"Approval inbox: (\S+)/ \(user demo, password (\S+)\)", output)
        workflow = re.search(r"send_approval (\S+) approve\|reject", output)
        assert account and workflow, output
        async with signed_in_client(account[1], "demo", account[2]) as (browser, signed_in):
            page = await browser.get(f"/requests/{workflow[1]}")
            decided = await browser.post(
                f"/requests/{workflow[1]}/decision",
                data={
                    "verdict": "approve",
                    "notes": "from the browser",
                    "csrf_token": csrf_token(page.text),
                },
            )
        assert await asyncio.to_thread(process.wait, 60) == 0
    output = log_path.read_text()
    assert signed_in.status_code == decided.status_code == 303, decided.text
    assert "Result: approved - Approved by demo" in output
    assert f"Decide in the browser: {account[1]}/requests/" in output


async def test_a_stages_id_leads_to_its_runs_page(
    api: httpx2.AsyncClient, run_for: Any, inbox: InboxServer, inbox_accounts: Any
) -> None:
    """The stage's notice names the child workflow; its page is the parent's request."""
    async with run_for(
        "Pay the supplier", approval_stages=["manager"], stage_approvers={"manager": ["alice"]}
    ) as handle:
        status = await status_of(handle)
        assert status.current_stage is not None
        child = status.current_stage.child_workflow_id
        async with signed_in_client(inbox.url, "alice", inbox_accounts[1].passwords["alice"]) as (
            browser,
            _,
        ):
            # The status names the child a moment before the child has started.
            page = await wait_until(
                lambda: browser.get(f"/requests/{child}", follow_redirects=False),
                lambda answer: answer.status_code != 404,
            )
            as_api = await api.get(f"/api/requests/{child}")
            listed = await api.get("/api/requests?status=pending")

    assert page.status_code == 303 and page.headers["location"] == f"/requests/{handle.id}"
    assert as_api.status_code == 404 and handle.id in as_api.json()["error"]
    item = next(i for i in listed.json() if i["workflow_id"] == handle.id)
    assert item["current_stage"]["stage"] == "manager"


async def test_the_effect_preview_is_on_the_request_page_and_the_pending_list_escaped(
    api: httpx2.AsyncClient, run_for: Any, inbox: InboxServer, inbox_accounts: Any
) -> None:
    """What the tool would change is shown where people decide; a filter value the model
    wrote (here markup) is text on the page, never markup."""
    hostile = "<script>alert(1)</script>"
    tool_call = {
        "tool": "delete_records",
        "arguments": {
            "table": "customers",
            "filters": [{"column": "name", "op": "=", "value": hostile}],
        },
    }
    async with run_for("Delete one customer", proposal={"tool_call": tool_call}) as handle:
        async with signed_in_client(inbox.url, "alice", inbox_accounts[1].passwords["alice"]) as (
            browser,
            _,
        ):
            page = (await browser.get(f"/requests/{handle.id}")).text
            listing = (await browser.get("/")).text
        items = (await api.get("/api/requests?status=pending")).json()

    item = next(i for i in items if i["workflow_id"] == handle.id)
    summary = item["preview"]["summary"]
    assert summary.startswith("deletes 0 of ") and hostile in summary
    for html in (page, listing):
        assert "Effect" in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert hostile not in html


async def test_an_api_retry_of_a_stage_decision_is_already_applied_never_the_next_stage(
    api: httpx2.AsyncClient, run_for: Any
) -> None:
    """A client retrying after a lost answer sends the same body, which names the stage it
    decides: answered with the vote counted then, never applied to the stage waiting now
    (alice is a member of the director stage too). A different verdict for the decided
    stage is refused with how it was decided."""
    roles = {"manager": ["alice"], "director": ["alice", "carol"]}
    async with run_for(
        "Approve the budget", approval_stages=["manager", "director"], stage_approvers=roles
    ) as handle:
        status = await wait_until(
            lambda: status_of(handle),
            lambda s: s.current_stage is not None and s.current_stage.stage == "manager",
        )
        assert status.approval_request is not None
        request_id = status.approval_request.request_id
        body = {"approved": True, "request_id": request_id, "stage": "manager", "notes": "ok"}
        url = f"/api/requests/{handle.id}/decision"
        # The status names the stage's child a moment before the child has started.
        first = await wait_until(lambda: api.post(url, json=body), lambda a: a.status_code != 404)
        await wait_until(
            lambda: status_of(handle),
            lambda s: s.current_stage is not None and s.current_stage.stage == "director",
        )
        retry = await api.post(url, json=body)
        other = await api.post(url, json={**body, "approved": False})
        after = await status_of(handle)

    assert first.status_code == 200, first.text
    assert first.json()["stage"] == "manager" and first.json()["reviewer"] == "alice"
    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json()  # the vote as counted then, decided_at included
    assert other.status_code == 409
    assert "stage manager was decided by alice (approved)" in other.json()["error"]
    assert after.current_stage is not None and after.current_stage.stage == "director"
    approved = [e.detail for e in after.audit_trail if e.event == "stage_approved"]
    assert approved == ["manager (1/2) by alice: ok"]  # with the notes sent
