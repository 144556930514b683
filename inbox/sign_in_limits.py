"""Failed sign-in limits that cannot be aimed at someone else.

Limits count per (user name, client address) pair. Per name alone, anyone could lock a
person out by failing with their name; per address alone, anyone could lock out everyone
behind the same proxy or NAT by failing with random names. Per pair, a guesser slows only
themselves: after ``FAILED_SIGN_IN_LIMIT`` failures each further one doubles the wait
(``BACK_OFF_BASE_SECONDS``, up to ``BACK_OFF_MAX_SECONDS``). The client address is the one
``ProxyTrust.client_address`` vouches for, never a header a client chose.
"""

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

FAILED_SIGN_IN_LIMIT = 5
BACK_OFF_BASE_SECONDS = 60.0
BACK_OFF_MAX_SECONDS = 3600.0
# Pairs remembered at most: a flood of random names costs bounded memory (the oldest pairs
# are forgotten first, which only ever lets their owner try sooner).
MAX_TRACKED_PAIRS = 10_000
# A key keeps this much of a name: longer names cannot exist (accounts.MAX_NAME_LENGTH),
# and a table of 10,000 pairs stays small whatever names are typed.
MAX_KEY_CHARS = 100


@dataclass
class _Failures:
    count: int
    last: float


class SignInLimiter:
    """Failures per (name, client) pair, with exponential back-off once over the limit."""

    def __init__(
        self,
        limit: int = FAILED_SIGN_IN_LIMIT,
        base: float = BACK_OFF_BASE_SECONDS,
        ceiling: float = BACK_OFF_MAX_SECONDS,
        max_pairs: int = MAX_TRACKED_PAIRS,
    ) -> None:
        self._limit, self._base, self._ceiling, self._max_pairs = limit, base, ceiling, max_pairs
        self._failures: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def _wait(self, failures: _Failures) -> float:
        if failures.count < self._limit:
            return 0.0
        return min(self._base * 2 ** (failures.count - self._limit), self._ceiling)

    def retry_after(self, name: str, client: str) -> int:
        """Seconds until this pair may try again (0: now)."""
        key = _key(name, client)
        failures = self._failures.get(key)
        if failures is None:
            return 0
        now = time.monotonic()
        if now - failures.last > self._ceiling:  # quiet for longer than any wait: forgiven
            del self._failures[key]
            return 0
        left = failures.last + self._wait(failures) - now
        return math.ceil(left) if left > 0 else 0

    def failed(self, name: str, client: str) -> None:
        key = _key(name, client)
        failures = self._failures.pop(key, None) or _Failures(0, 0.0)
        failures.count, failures.last = failures.count + 1, time.monotonic()
        self._failures[key] = failures  # newest last
        while len(self._failures) > self._max_pairs:
            self._failures.popitem(last=False)

    def succeeded(self, name: str, client: str) -> None:
        self._failures.pop(_key(name, client), None)


def _key(name: str, client: str) -> tuple[str, str]:
    return name[:MAX_KEY_CHARS], client[:MAX_KEY_CHARS]
