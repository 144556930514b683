"""How long and how large one tool call's database work may be, and how it is stopped.

A model writes the ad-hoc SQL, so a statement may loop forever (a recursive CTE) or build
a value of a gigabyte. A thread left running would burn a core and hold the database for
every other run, so each call runs under a ``CallGuard``: SQLite's progress handler asks it
every few thousand steps whether to go on, and it says no once the call is past its time
or its activity was cancelled. SQLite then interrupts the statement and the transaction
rolls back; the length limits refuse an oversized value before it is allocated. Either way
the call ends with ``ToolCallStopped`` and a reason: trying again would end the same way.
"""

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict, Field

# Below the activities' timeouts (60 s preview, 120 s execute), so a call ends itself with
# its reason before Temporal gives up on it.
CALL_SECONDS = 20.0
# The largest string or blob one value may be: an e-mail to the longest list is ~50 kB.
MAX_VALUE_BYTES = 1_000_000
CHECK_EVERY_STEPS = 5_000  # virtual machine steps between two checks (well under 1 ms)
CANCELLED = "the call was cancelled"
# What the tools' own SQL needs, with room; a statement beyond these is refused at prepare.
_LIMITS = {
    sqlite3.SQLITE_LIMIT_SQL_LENGTH: 100_000,
    sqlite3.SQLITE_LIMIT_COLUMN: 100,
    sqlite3.SQLITE_LIMIT_EXPR_DEPTH: 100,
    sqlite3.SQLITE_LIMIT_COMPOUND_SELECT: 20,
    sqlite3.SQLITE_LIMIT_VDBE_OP: 100_000,
    sqlite3.SQLITE_LIMIT_FUNCTION_ARG: 20,
    sqlite3.SQLITE_LIMIT_ATTACHED: 0,
    sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH: 1_000,
    sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER: 1_000,
    sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH: 10,
}
_STOPPED_BY_A_LIMIT = {"SQLITE_INTERRUPT", "SQLITE_TOOBIG", "SQLITE_NOMEM"}


class CallBudget(BaseModel):
    """What one call may spend on the database."""

    model_config = ConfigDict(frozen=True)

    seconds: float = Field(default=CALL_SECONDS, gt=0)
    max_value_bytes: int = Field(default=MAX_VALUE_BYTES, gt=0)


class ToolCallStopped(RuntimeError):
    """The call was interrupted (past its time, a value too large, or cancelled); its
    transaction rolled back, so nothing it did remains."""


def stopped_by_a_limit(err: sqlite3.Error) -> bool:
    """An error of the budget, not of the statement: it must not pass for a refusal."""
    return getattr(err, "sqlite_errorname", None) in _STOPPED_BY_A_LIMIT


class CallGuard:
    """The budget of one call, and the switch another thread flips to stop it.

    ``cancel`` may be called from any thread; the call's own thread stops at its next
    check. ``running`` is set once a statement has run long enough to be checked.
    """

    def __init__(self, budget: CallBudget | None = None) -> None:
        self.budget = budget or CallBudget()
        self.running = threading.Event()
        self._cancelled = threading.Event()
        self._deadline = time.monotonic() + self.budget.seconds
        self._reason: str | None = None

    def restart_clock(self) -> None:
        """The budget is for the work: time spent waiting for the write lock is not its own."""
        self._deadline = time.monotonic() + self.budget.seconds

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def reason(self) -> str | None:
        """Why the call was stopped, or None while it may go on."""
        return self._reason

    def raise_if_stopped(self) -> None:
        """Checked before a commit: a call cancelled meanwhile must not take effect."""
        self._keep_going()
        if self._reason is not None:
            raise ToolCallStopped(self._reason)

    @contextmanager
    def watching(self, db: sqlite3.Connection) -> Iterator[None]:
        """Run the block with ``db`` under the budget; an interrupt or an oversized value
        leaves it as ``ToolCallStopped``."""
        for limit, value in _LIMITS.items():
            db.setlimit(limit, value)
        db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.budget.max_value_bytes)
        db.set_progress_handler(self._progress, CHECK_EVERY_STEPS)
        try:
            yield
        except sqlite3.Error as err:
            if not stopped_by_a_limit(err):
                raise
            raise ToolCallStopped(self._why(err)) from err
        finally:
            db.set_progress_handler(None, 0)

    def _progress(self) -> int:
        """SQLite's progress handler: non-zero interrupts the statement."""
        self.running.set()
        return 0 if self._keep_going() else 1

    def _keep_going(self) -> bool:
        if self._reason is None:
            if self._cancelled.is_set():
                self._reason = CANCELLED
            elif time.monotonic() > self._deadline:
                self._reason = (
                    f"the call ran past its {self.budget.seconds:g} s budget and was "
                    "interrupted (a query that never ends, e.g. an unbounded recursive one?)"
                )
        return self._reason is None

    def _why(self, err: sqlite3.Error) -> str:
        if self._reason is not None:
            return self._reason
        if getattr(err, "sqlite_errorname", None) == "SQLITE_TOOBIG":
            return (
                f"a value grew past the {self.budget.max_value_bytes:,}-byte limit of one "
                "call and was refused"
            )
        return f"the call ran out of memory and was stopped ({err})"
