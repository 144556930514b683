"""A small OpenAI-compatible HTTP server on 127.0.0.1, so tests use the real ``openai`` client.

It answers ``POST /v1/responses`` (and ``/v1/chat/completions``). By default each request
is answered by the offline rule-based analyser's proposal. For a request its rules map to
no tool, the answer depends on the schema, as a real model's would: under the strict
schema a model must name a tool, so it names ``FALLBACK_TOOL_CALL`` (an e-mail to one
example.com address: it asks a person, and its preview reads nothing another test
changes); without a schema it answers ``tool_call: null``, which the analysis refuses as
malformed. A test scripts other answers for its own request text with ``on(...)``, so
tests sharing one server never see each other's script.

Like OpenAI, it refuses (HTTP 400) a structured-output request whose schema strict mode
cannot take, and records the schema each request carried (``schemas(...)``); a request
without one is answered as before, as by a server that ignores schemas.
"""

import contextlib
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from activities.offline_analysis import offline_proposal


@dataclass(frozen=True)
class Reply:
    """One scripted answer: an HTTP status, the model's text (or an error message), and how
    long the model "thinks" before answering (to catch a run mid-analysis). ``body``, if
    given, is sent as the whole JSON answer, for replies no well-behaved server gives."""

    text: str
    status: int = 200
    delay_seconds: float = 0.0
    body: dict | None = None


def ok(payload: dict | str, delay_seconds: float = 0.0) -> Reply:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return Reply(text, delay_seconds=delay_seconds)


def http_error(status: int, message: str = "scripted failure") -> Reply:
    return Reply(message, status)


FALLBACK_EMAIL = "ops@example.com"


def fallback_tool_call(user_request: str) -> dict:
    """What the stand-in names under the schema when no offline rule fits: ``send_email``
    to one address, recorded in the outbox, never sent."""
    arguments = {"to": FALLBACK_EMAIL, "mailing_list": None, "subject": user_request[:200]}
    return {"tool": "send_email", "arguments": arguments | {"body": user_request[:5_000]}}


class FakeOpenAIServer:
    def __init__(self) -> None:
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._paths: dict[str, list[str]] = defaultdict(list)
        self._schemas: dict[str, list[dict | None]] = defaultdict(list)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "FakeOpenAIServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def on(self, user_request: str, *replies: Reply) -> None:
        """Answer the next requests for ``user_request`` with ``replies``, in order."""
        with self._lock:
            self._scripts[user_request].extend(replies)

    def calls(self, user_request: str) -> int:
        """How many times the model was asked about ``user_request``."""
        return len(self.paths(user_request))

    def paths(self, user_request: str) -> list[str]:
        """The API paths asked about ``user_request``, in order."""
        with self._lock:
            return list(self._paths[user_request])

    def schemas(self, user_request: str) -> list[dict | None]:
        """The structured-output schema each request about ``user_request`` carried, in
        order: None for a request without one, ``{"refused": reason}`` for one refused."""
        with self._lock:
            return list(self._schemas[user_request])

    def refused(self, user_request: str, path: str, reason: str) -> None:
        """Record a request refused for its schema; it takes no scripted reply."""
        with self._lock:
            self._paths[user_request].append(path)
            self._schemas[user_request].append({"refused": reason})

    def answer(self, user_request: str, path: str, schema: dict | None = None) -> Reply:
        with self._lock:
            self._paths[user_request].append(path)
            self._schemas[user_request].append(schema)
            script = self._scripts[user_request]
            if script:
                return script.popleft()
        proposal = offline_proposal(user_request).model_dump()
        if schema is not None:  # answer in the schema's shape: parameters as pairs, a tool
            pairs = [{"key": k, "value": v} for k, v in proposal["parameters"].items()]
            proposal["parameters"] = pairs
            proposal["tool_call"] = proposal["tool_call"] or fallback_tool_call(user_request)
        return ok(proposal)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                chat = self.path.endswith("/chat/completions")
                try:
                    schema = _structured_output_schema(body, chat)
                except ValueError as err:
                    server.refused(_user_text(body, chat), self.path, str(err))
                    error = {"error": {"message": str(err), "type": "invalid_request_error"}}
                    send_json(self, 400, json.dumps(error).encode())
                    return
                reply = server.answer(_user_text(body, chat), self.path, schema)
                time.sleep(reply.delay_seconds)
                if reply.body is not None:
                    payload = reply.body
                elif reply.status != 200:
                    payload = {"error": {"message": reply.text, "type": "scripted"}}
                elif chat:
                    payload = _chat_body(body, reply.text)
                else:
                    payload = _responses_body(body, reply.text)
                # A worker killed mid-call has gone; its answer has nowhere to go.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    send_json(self, reply.status, json.dumps(payload).encode())

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def send_json(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    """Answer ``handler``'s request with a JSON ``body``; for the test servers on 127.0.0.1."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _user_text(body: dict, chat: bool) -> str:
    if chat:
        return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    request_input = body["input"]
    return request_input if isinstance(request_input, str) else request_input[-1]["content"]


def _structured_output_schema(body: dict, chat: bool) -> dict | None:
    """The JSON schema the request asks the answer to follow, or None if it asks for none;
    ValueError, with OpenAI's reason, if strict structured outputs would refuse it."""
    if chat:
        response_format = body.get("response_format")
        if response_format is None:
            return None
        if response_format.get("type") != "json_schema":
            raise ValueError("response_format.type must be 'json_schema'")
        settings = response_format.get("json_schema") or {}
    else:
        settings = (body.get("text") or {}).get("format")
        if settings is None:
            return None
        if settings.get("type") != "json_schema":
            raise ValueError("text.format.type must be 'json_schema'")
    if not settings.get("name") or settings.get("strict") is not True:
        raise ValueError("a json_schema format needs a name and strict: true")
    schema = settings.get("schema")
    if not isinstance(schema, dict):
        raise ValueError("a json_schema format needs a schema object")
    check_strict(schema, "schema")
    return schema


def check_strict(node: object, where: str) -> None:
    """OpenAI's strict mode: every object lists all its properties as required and forbids
    others; ``$defs`` and array items follow the same rules."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            check_strict(item, f"{where}[{index}]")
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "object":
        properties = node.get("properties", {})
        if node.get("additionalProperties") is not False:
            raise ValueError(f"{where}: additionalProperties must be false")
        if sorted(node.get("required", [])) != sorted(properties):
            raise ValueError(f"{where}: every property must be required")
    for key, value in node.items():
        check_strict(value, f"{where}.{key}")


def _responses_body(body: dict, text: str) -> dict:
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": int(time.time()),
        "model": body.get("model", "fake"),
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": "msg_fake",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
    }


def _chat_body(body: dict, text: str) -> dict:
    return {
        "id": "chatcmpl_fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
            }
        ],
    }
