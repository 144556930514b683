"""A test that runs out of time fails alone (``tests/deadlines.py``): its task is cancelled in
the session's loop, so what it holds is let go before the next test starts."""

import pytest

from tests.helpers import PROJECT_ROOT

pytest_plugins = ("pytester",)

# A session fixture both tests share, as they share servers; the first test holds it and
# never ends. pytest-timeout's alarm alone would leave it held, and the second test failing.
HANGING_THEN_NEIGHBOUR = """
import asyncio

import pytest


@pytest.fixture(scope="session")
def held() -> set[str]:
    return set()


@pytest.mark.timeout(16)  # the deadline: 16 s less 15 s kept for teardown
async def test_hangs(held: set[str]) -> None:
    held.add("the clock")
    try:
        await asyncio.Event().wait()
    finally:
        held.discard("the clock")


async def test_neighbour(held: set[str]) -> None:
    assert not held
"""


def test_a_hung_test_fails_alone_with_its_deadline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_hanging=HANGING_THEN_NEIGHBOUR)
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))  # for ``-p tests.deadlines``
    result = pytester.runpytest_subprocess(
        "-p",
        "tests.deadlines",
        "-p",
        "no:cacheprovider",
        "-n",
        "0",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_test_loop_scope=session",
        "-o",
        "asyncio_default_fixture_loop_scope=session",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_hangs - Failed: no result within 1 s *"])
