"""A test that runs out of time fails alone, never its neighbours.

pytest-timeout's alarm interrupts whatever the session's event loop is running, and the
test's task is left pending in that loop, still holding its workers and runs: the next
tests on the same loop and servers then wait behind it and fail too. So an async test gets
its deadline inside the loop instead, at its pytest-timeout less the time its setup took and
a reserve for its teardown: it is cancelled like any task, its ``async with`` blocks stop
its workers and close its runs, and it fails saying so. pytest-timeout stays the backstop
for a call that blocks the loop itself.
"""

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

# Left for the test's teardown (closing runs, stopping workers) before pytest-timeout fires.
TEARDOWN_RESERVE_SECONDS = 15.0

_STARTED = pytest.StashKey[float]()


def timeout_of(item: pytest.Item) -> float:
    """The item's pytest-timeout, as that plugin reads it: marker, then option, then ini."""
    marker = item.get_closest_marker("timeout")
    if marker is not None:
        return float(marker.args[0] if marker.args else marker.kwargs["timeout"])
    return float(item.config.getoption("timeout") or item.config.getini("timeout") or 0)


def bounded(test: Callable[..., Awaitable[Any]], seconds: float) -> Callable[..., Awaitable[Any]]:
    """``test`` cancelled after ``seconds``, failing with a message that says why."""

    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> Any:
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                return await test(*args, **kwargs)
        except TimeoutError:
            if not deadline.expired():
                raise  # the test's own TimeoutError
        pytest.fail(
            f"no result within {seconds:.0f} s (the test's timeout less its setup and "
            f"{TEARDOWN_RESERVE_SECONDS:.0f} s for teardown); the test was cancelled",
            pytrace=False,
        )

    return run


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_STARTED] = time.monotonic()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    timeout = timeout_of(item)
    if not isinstance(item, pytest.Function) or not timeout:
        yield
        return
    test = item.obj
    if not inspect.iscoroutinefunction(test):
        yield
        return
    used = time.monotonic() - item.stash.get(_STARTED, time.monotonic())
    item.obj = bounded(test, max(timeout - used - TEARDOWN_RESERVE_SECONDS, 1.0))
    try:
        yield
    finally:
        item.obj = test
