"""Identity from an authenticating reverse proxy, proven rather than inferred.

An address alone proves nothing: any process on the proxy's machine (or a DNS-rebinding
page in a browser there) reaches the inbox from the same address. So the proxy must also
present a shared secret (``HITL_INBOX_PROXY_SECRET`` in ``X-Inbox-Proxy-Secret``), and
exactly one configured header names the user. A request that carries that header twice,
or an identity header of another convention, is refused: it means the proxy passes a
client's own header through, or sets a different one than the inbox reads, and either way
the user named could be the client's choice.
"""

import ipaddress
import secrets
from dataclasses import dataclass, field

from starlette.requests import Request

from constants import DEFAULT_PROXY_USER_HEADER, PROXY_SECRET_HEADER
from inbox.accounts import valid_name

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Headers that some proxy uses to say who the user is, by convention (the prefix): the
# configured header's companions (the e-mail a proxy sets with the user) come from the same
# proxy and are allowed, never read; any other convention's header is refused.
IDENTITY_HEADER_CONVENTIONS: dict[str, tuple[str, ...]] = {
    "x-forwarded-": ("user", "email", "preferred-username"),  # oauth2-proxy upstream
    "x-auth-request-": ("user", "email", "preferred-username"),  # oauth2-proxy auth_request
    "remote-": ("user", "email", "name"),  # Authelia, Authentik
    "x-remote-": ("user", "email"),
    "x-webauth-": ("user", "email"),  # Grafana's convention
    "x-authenticated-": ("user", "email"),
}
IDENTITY_HEADERS = frozenset(
    prefix + suffix
    for prefix, suffixes in IDENTITY_HEADER_CONVENTIONS.items()
    for suffix in suffixes
)


class ProxyRefused(Exception):
    """An identity header this inbox cannot trust; the message says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def parse_networks(text: str) -> list[Network]:
    """``HITL_INBOX_TRUSTED_PROXIES``: addresses or networks, comma-separated."""
    return [
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    ]


def _convention(header: str) -> str:
    """The header's convention: its longest known prefix (``x-remote-`` over ``remote-``)."""
    prefixes = [p for p in IDENTITY_HEADER_CONVENTIONS if header.startswith(p)]
    return max(prefixes, key=len, default="")


@dataclass(frozen=True)
class ProxyTrust:
    """Which proxy may name the user, how it proves itself, and the header it names them in."""

    networks: list[Network] = field(default_factory=list)
    secret: str | None = None
    user_header: str = DEFAULT_PROXY_USER_HEADER

    @property
    def enabled(self) -> bool:
        return bool(self.networks) and bool(self.secret)

    def _peer_trusted(self, request: Request) -> bool:
        if request.client is None:
            return False
        try:
            peer = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        return any(peer in network for network in self.networks)

    def vouches(self, request: Request) -> bool:
        """The TCP peer is a trusted proxy and presents the secret, once. The peer is the
        real one: uvicorn runs without ``--proxy-headers``."""
        if not self.enabled or not self._peer_trusted(request):
            return False
        given = request.headers.getlist(PROXY_SECRET_HEADER)
        assert self.secret is not None
        return len(given) == 1 and secrets.compare_digest(given[0].encode(), self.secret.encode())

    def user(self, request: Request) -> str | None:
        """The user the proxy names; None when it names nobody (or no proxy is configured,
        when identity headers mean nothing). Raises ``ProxyRefused`` with the reason."""
        if not self.enabled:
            return None
        present = sorted(name for name in IDENTITY_HEADERS if name in request.headers)
        configured = self.user_header.lower()
        if not self.vouches(request):
            if present or configured in request.headers:
                raise ProxyRefused(
                    403,
                    f"{', '.join(present or [configured])}: an identity header counts only from "
                    f"the inbox's proxy, which proves itself with {PROXY_SECRET_HEADER}; "
                    "this request did not.",
                )
            return None
        values = request.headers.getlist(configured)
        if len(values) > 1:
            raise ProxyRefused(400, f"{self.user_header} was sent {len(values)} times; once only.")
        own = _convention(configured)
        others = [h for h in present if h != configured and _convention(h) != own]
        if others:
            raise ProxyRefused(
                400,
                f"{', '.join(others)}: this inbox takes the user from {self.user_header} only; "
                "the proxy must remove other identity headers, not pass them on.",
            )
        if not values or not (name := values[0].strip()):
            return None
        if problem := valid_name(name):
            raise ProxyRefused(400, f"{self.user_header}: the user name {problem}.")
        return name

    def client_address(self, request: Request) -> str:
        """Who is asking, for sign-in limits: the TCP peer, or, when the peer is our proxy
        and proves it, the address the proxy appended to ``X-Forwarded-For`` (its last)."""
        peer = request.client.host if request.client else "?"
        if not self.vouches(request):
            return peer
        forwarded = ",".join(request.headers.getlist("x-forwarded-for")).split(",")
        return forwarded[-1].strip() or peer
