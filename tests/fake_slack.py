"""A stand-in for Slack on 127.0.0.1: its Web API (``chat.postMessage``, ``chat.update``)
for the real ``slack_sdk`` client, and the ``response_url`` a press replies to.

It records every call, so tests read what was posted, updated and told to the person who
pressed; ``fail(method, error, status)`` makes the next call of a method fail as Slack
would. ``sign(body)`` signs an interaction body as Slack does, with the secret given.
"""

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from slack_sdk import WebClient

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
CHANNEL = "C0APPROVALS"


@dataclass
class Call:
    method: str  # chat.postMessage, chat.update, or "response" (a press's response_url)
    body: dict[str, Any]
    url: str


@dataclass
class FakeSlack:
    calls: list[Call] = field(default_factory=list)
    _failures: dict[str, tuple[str, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def client(self) -> WebClient:
        """The real SDK client, pointed here, without the SDK's own retries."""
        return WebClient(token="xoxb-test", base_url=f"{self.url}/api/", retry_handlers=[])

    def response_url(self, name: str = "press") -> str:
        return f"{self.url}/response/{name}"

    def start(self) -> "FakeSlack":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail(self, method: str, error: str, status: int = 200) -> None:
        with self._lock:
            self._failures[method] = (error, status)

    def of(self, method: str) -> list[dict[str, Any]]:
        with self._lock:
            return [call.body for call in self.calls if call.method == method]

    def replies(self, response_url: str) -> list[dict[str, Any]]:
        """What was sent to a press's ``response_url``: what the person who pressed saw."""
        with self._lock:
            return [c.body for c in self.calls if c.method == "response" and c.url == response_url]

    def _answer(self, method: str, body: dict[str, Any], url: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.append(Call(method, body, url))
            if (failure := self._failures.pop(method, None)) is not None:
                error, status = failure
                return status, {"ok": False, "error": error}
            if method == "chat.postMessage":
                ts = f"1700000000.{next(self._ts):06d}"
                return 200, {"ok": True, "channel": body["channel"], "ts": ts}
            return 200, {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        slack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    body = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                url = slack.url + self.path
                method = "response" if self.path.startswith("/response/") else self.path[5:]
                status, answer = slack._answer(method, body, url)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def sign(body: bytes, secret: str = SIGNING_SECRET, at: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``: its timestamp and signature."""
    timestamp = str(int(time.time()) if at is None else at)
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
