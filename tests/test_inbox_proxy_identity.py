"""Proxy identity is proven, not inferred from an address: the trusted proxy presents the
shared secret, exactly one configured header names the user, and ``Host`` must be the
inbox's own when ``HITL_INBOX_URL`` is set. In-process: every refusal here happens before
Temporal, and the recording service shows that no decision was sent."""

from pathlib import Path

import pytest

from constants import PROXY_SECRET_HEADER
from inbox.proxy import parse_networks
from inbox.settings import InboxSettings, SettingsError
from tests.inbox_in_process import PROXY_SECRET, in_process_inbox, who

SECRET = {PROXY_SECRET_HEADER: PROXY_SECRET}


def behind_proxy(tmp_path: Path, **settings: object) -> InboxSettings:
    return InboxSettings(
        users_file=tmp_path / "users.json",
        trusted_proxies=parse_networks("127.0.0.1"),
        proxy_secret=PROXY_SECRET,
        **settings,  # type: ignore[arg-type]
    )


async def test_a_local_process_naming_a_user_without_the_secret_reads_and_decides_nothing(
    tmp_path: Path,
) -> None:
    """The attack of issue 25: any local process, with a rebinding Host and Origin, sent
    ``X-Forwarded-User: alice`` from the proxy's address and read and approved as alice."""
    inbox = in_process_inbox(behind_proxy(tmp_path))
    rebinding = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
    forged = {"X-Forwarded-User": "alice", **rebinding}
    async with inbox.client() as local:
        read = await local.get("/", headers=forged, follow_redirects=False)
        decided = await local.post(
            "/requests/wf-1/decision", data={"verdict": "approve"}, headers=forged
        )
        wrong_secret = await local.get(
            "/", headers={**forged, PROXY_SECRET_HEADER: "guessed"}, follow_redirects=False
        )

    for answer in (read, decided, wrong_secret):
        assert answer.status_code == 403, answer.text
        assert PROXY_SECRET_HEADER in answer.text and "x-forwarded-user" in answer.text
    assert inbox.service.decisions == []


async def test_the_proxy_names_the_user_only_from_its_address_and_with_its_secret(
    tmp_path: Path,
) -> None:
    inbox = in_process_inbox(behind_proxy(tmp_path))
    async with inbox.client() as proxy, inbox.client(peer="192.0.2.7") as elsewhere:
        named = await who(proxy, **{"X-Forwarded-User": "carol", **SECRET})
        nobody = await who(proxy, **SECRET)  # the proxy lets an anonymous visitor through
        decided = await inbox.decide(proxy, "wf-1", **{"X-Forwarded-User": "carol", **SECRET})
        stolen_secret = await elsewhere.get(
            "/", headers={"X-Forwarded-User": "carol", **SECRET}, follow_redirects=False
        )

    assert named == "carol" and nobody is None
    assert decided.status_code == 303 and inbox.service.decisions == [("wf-1", "carol", True)]
    assert stolen_secret.status_code == 403  # the secret alone, from elsewhere, is not enough


async def test_the_user_header_twice_or_another_conventions_header_is_refused(
    tmp_path: Path,
) -> None:
    """Behind a proxy that sets ``X-Auth-Request-User``, a client's own ``X-Forwarded-User``
    once won; with two headers the first was used."""
    inbox = in_process_inbox(behind_proxy(tmp_path, proxy_user_header="X-Auth-Request-User"))
    async with inbox.client() as proxy:
        twice = await proxy.get(
            "/",
            headers=[
                ("X-Auth-Request-User", "alice"),
                ("X-Auth-Request-User", "carol"),
                (PROXY_SECRET_HEADER, PROXY_SECRET),
            ],
        )
        passed_through = await proxy.get(
            "/",
            headers={"X-Forwarded-User": "alice", "X-Auth-Request-User": "carol", **SECRET},
        )
        remote_user = await proxy.get(
            "/api/requests",
            headers={"Remote-User": "alice", "X-Auth-Request-User": "carol", **SECRET},
        )
        with_its_email = await who(
            proxy, **{"X-Auth-Request-User": "carol", "X-Auth-Request-Email": "c@x.test", **SECRET}
        )
        bad_name = await proxy.get("/", headers={"X-Auth-Request-User": "ca\x1brol", **SECRET})

    assert twice.status_code == 400 and "sent 2 times" in twice.text
    assert passed_through.status_code == 400 and "x-forwarded-user" in passed_through.text
    assert "X-Auth-Request-User only" in passed_through.text
    assert remote_user.status_code == 400 and "remote-user" in remote_user.json()["error"]
    assert with_its_email == "carol"  # a companion the same proxy sets is allowed, never read
    assert bad_name.status_code == 400 and "printable" in bad_name.text
    assert inbox.service.decisions == []


async def test_without_a_proxy_configured_identity_headers_mean_nothing(tmp_path: Path) -> None:
    inbox = in_process_inbox(InboxSettings(users_file=tmp_path / "users.json"))
    async with inbox.client() as local:
        assert await who(local, **{"X-Forwarded-User": "alice", **SECRET}) is None


def test_a_proxy_trusted_by_address_alone_is_refused_at_start(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    proxies = parse_networks("127.0.0.1")
    with pytest.raises(SettingsError, match="HITL_INBOX_PROXY_SECRET"):
        InboxSettings(users_file=users, trusted_proxies=proxies)
    with pytest.raises(SettingsError, match="at least 32"):
        InboxSettings(users_file=users, trusted_proxies=proxies, proxy_secret="short")
    with pytest.raises(SettingsError, match="HITL_INBOX_TRUSTED_PROXIES"):
        InboxSettings(users_file=users, proxy_secret=PROXY_SECRET)
    with pytest.raises(SettingsError, match="HITL_INBOX_PROXY_USER_HEADER"):
        InboxSettings(
            users_file=users,
            trusted_proxies=proxies,
            proxy_secret=PROXY_SECRET,
            proxy_user_header="X-User-Of-My-Choice",
        )


async def test_host_must_be_the_inbox_urls_when_it_is_set(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    named = in_process_inbox(InboxSettings(users_file=users, public_url="https://inbox.example"))
    unnamed = in_process_inbox(InboxSettings(users_file=users))
    async with named.client() as client, unnamed.client() as anywhere:
        rebound = await client.get("/signin", headers={"Host": "evil.example"})
        api = await client.get("/api/requests", headers={"Host": "evil.example"})
        own = await client.get("/signin", headers={"Host": "inbox.example"})
        own_port = await client.get("/signin", headers={"Host": "Inbox.Example:443"})
        other_port = await client.get("/signin", headers={"Host": "inbox.example:8443"})
        unchecked = await anywhere.get("/signin", headers={"Host": "evil.example"})

    assert rebound.status_code == api.status_code == other_port.status_code == 400
    assert "'evil.example' is not this inbox's" in rebound.json()["error"]
    assert "HITL_INBOX_URL is https://inbox.example" in api.json()["error"]
    assert own.status_code == own_port.status_code == 200
    assert unchecked.status_code == 200  # documented: without HITL_INBOX_URL, not checked
