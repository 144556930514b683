"""The codec server answers a body it cannot read with 400 and the reason, never a 500 with
a traceback (a non-UTF-8 body once was one). In-process: no worker or server is needed."""

import base64
import os

import httpx2
import pytest

from codec_server.app import create_app
from encryption.codec import EncryptionCodec
from encryption.keys import parse_keys

TOKEN = "codec-test-token-0123456789"
ORIGIN = "http://localhost:8233"


@pytest.fixture
def codec() -> httpx2.AsyncClient:
    ring = parse_keys([f"k1:{base64.b64encode(os.urandom(32)).decode()}"], source="test")
    app = create_app(EncryptionCodec(ring), TOKEN, ORIGIN)
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://127.0.0.1:8888",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"payloads": [\xff\xfe]}', "not UTF-8 text (byte 14)"),
        (b"\x80", "not UTF-8 text (byte 0)"),
        (b"[" * 100_000, 'not {"payloads": [...]}'),
        (b'{"payloads": 5}', 'not {"payloads": [...]}'),
    ],
)
async def test_an_unreadable_body_is_400_with_the_reason(
    codec: httpx2.AsyncClient, body: bytes, reason: str
) -> None:
    async with codec:
        answer = await codec.post("/decode", content=body)

    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["error"]
    assert "Traceback" not in answer.text
