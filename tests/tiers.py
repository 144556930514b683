"""Every test lands in one tier, read from the fixtures it uses, so no one has to remember a
marker: ``model`` (the local llama.cpp model), ``browser`` (headless Chromium), ``server`` (a
real Temporal dev server, and the worker processes and inbox on it), ``process`` (processes
of its own: the ``processes`` fixture), and ``fast`` (the rest: plain functions, in-process
scripts, and the shared time-skipping test server).

A fast test that starts a process (``subprocess``, ``os.fork``, a Temporal server) fails
saying which fixture it lacks, so a new test cannot slow the fast tier down unnoticed;
``multiprocessing``'s spawn raises no audit event, so its tests request ``processes``
themselves. ``docs/testing.md`` gives each tier's command.
"""

import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

# The first tier whose fixtures a test uses (directly or through other fixtures) is its tier.
TIER_FIXTURES = (
    ("model", {"local_model"}),
    ("browser", {"browser"}),
    ("server", {"dev_server", "small_history_server"}),
    ("process", {"processes", "pytester"}),
)
TIERS = ("fast", *(tier for tier, _ in TIER_FIXTURES))
# A Temporal server the SDK starts from Rust raises no audit event of Python's: see _audited.
PROCESS_EVENTS = {"subprocess.Popen", "os.posix_spawn", "os.fork", "os.exec", "temporal.server"}

_fast_test_running: list[str] = []  # the node ID of the fast test being called, if any


def tier_of(item: pytest.Item) -> str:
    used = set(getattr(item, "fixturenames", ()))
    return next((tier for tier, fixtures in TIER_FIXTURES if used & fixtures), "fast")


def _no_process_in_the_fast_tier(event: str, args: tuple[Any, ...]) -> None:
    if _fast_test_running and event in PROCESS_EVENTS:
        raise RuntimeError(
            f"{_fast_test_running[0]} starts a process ({event} {args[:2]}) in the fast tier: "
            "request the `processes` fixture (tests/tiers.py)"
        )


def _audited(start: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(start)
    async def starting(*args: Any, **kwargs: Any) -> Any:
        sys.audit("temporal.server", start.__name__)
        return await start(*args, **kwargs)

    return starting


def pytest_configure(config: pytest.Config) -> None:
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: set from the test's fixtures (tests/tiers.py)")
    sys.addaudithook(_no_process_in_the_fast_tier)
    WorkflowEnvironment.start_local = staticmethod(_audited(WorkflowEnvironment.start_local))  # type: ignore[method-assign]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _checked_if_fast(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _checked_if_fast(item)


def _checked_if_fast(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("fast"):
        _fast_test_running.append(item.nodeid)
    try:
        yield
    finally:
        _fast_test_running.clear()
