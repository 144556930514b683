"""The Temporal Web UI shows an encrypted run in clear through the codec server, as the
README tells a user to set it up: ``temporal server start-dev --ui-codec-endpoint
http://127.0.0.1:<port>/<token>``, the page loaded in headless Chromium."""

import base64
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from client.connection import converter_with_keys
from constants import (
    CODEC_CORS_ORIGIN_ENV,
    CODEC_TOKEN_ENV,
    ENCRYPTION_KEYS_ENV,
    WORKFLOW_TYPE,
)
from dev_server import free_port
from encryption.keys import parse_keys
from models.models import WorkflowInput
from tests.e2e import listening_script
from tests.helpers import (
    CHROMEDRIVER,
    CHROMIUM,
    CHROMIUM_FLAGS,
    TEMPORAL_CLI,
)

TOKEN = "web-ui-test-token-0123456789"
KEYS = f"ui:{base64.b64encode(os.urandom(32)).decode()}"
pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs chromium and chromedriver",
)


@pytest.fixture(scope="module")
def ports() -> tuple[int, int]:
    return free_port(), free_port()  # codec server, Web UI


@pytest.fixture(scope="module")
async def codec_server(
    ports: tuple[int, int], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[None]:
    codec_port, ui_port = ports
    env = {
        **os.environ,
        ENCRYPTION_KEYS_ENV: KEYS,
        CODEC_TOKEN_ENV: TOKEN,
        CODEC_CORS_ORIGIN_ENV: f"http://127.0.0.1:{ui_port}",
    }
    log_path = tmp_path_factory.mktemp("web-ui") / "codec_server.log"
    async with listening_script("codec_server", codec_port, env, log_path):
        yield


@pytest.fixture(scope="module")
async def ui_server(ports: tuple[int, int], codec_server: None) -> AsyncIterator[Client]:
    """A dev server with its Web UI pointed at the codec server, and an encrypting client."""
    codec_port, ui_port = ports
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI),
        ui=True,
        ui_port=ui_port,
        data_converter=converter_with_keys(parse_keys([KEYS], source="test")),
        dev_server_extra_args=[
            "--ui-codec-endpoint",
            f"http://127.0.0.1:{codec_port}/{TOKEN}",
        ],
        dev_server_log_level="error",
    )
    yield env.client
    await env.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    )
    yield driver
    driver.quit()


async def test_the_web_ui_shows_the_request_decoded(
    ui_server: Client, ports: tuple[int, int], browser: webdriver.Chrome
) -> None:
    secret = f"IBAN-DE89-{uuid.uuid4().hex[:12]}"
    workflow_id = f"ui-{uuid.uuid4().hex[:12]}"
    # Nobody serves this queue: the run only has to exist, its input sealed by the client.
    await ui_server.start_workflow(
        WORKFLOW_TYPE,
        WorkflowInput(user_request=f"Close the account {secret}"),
        id=workflow_id,
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
    )
    history = await ui_server.get_workflow_handle(workflow_id).fetch_history()
    assert secret.encode() not in history.events[0].SerializeToString()

    browser.get(f"http://127.0.0.1:{ports[1]}/namespaces/default/workflows/{workflow_id}")
    WebDriverWait(browser, 45).until(lambda driver: secret in driver.page_source)
