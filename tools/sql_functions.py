"""Which SQL functions ad-hoc SQL may call: an allow-list, and none whose result changes
between the preview and the execution.

A deny-list misses what nobody thought of (``fts3_tokenizer`` returns a pointer), so a
function runs only if it is listed here. The listed ones give the same result for the same
arguments and data, with one exception kept on purpose: the date and time functions, which
read the clock only when given ``'now'`` (or nothing). Those run through ``guard_time``,
which refuses exactly those calls; the others give SQLite's own answer. ``printf`` and
``format`` are left out: a width of a billion spins for seconds inside one call, where
neither the length limit nor the interrupt reaches.

Randomness and the clock are refused twice: at analysis (``time_or_randomness``, from the
statement alone, so the model hears why) and while running (the authorizer and the guard,
which also see a ``'now'`` built at run time or read from a row).
"""

import re
import sqlite3
from collections.abc import Callable

from tools.database import SCHEMA

_CHANGES_BETWEEN_RUNS = (
    "its result changes between the preview and the execution, so what people approve "
    "would not be what runs"
)
NONDETERMINISTIC = {
    "random": f"random() is random: {_CHANGES_BETWEEN_RUNS}",
    "randomblob": f"randomblob() is random: {_CHANGES_BETWEEN_RUNS}",
    "changes": f"changes() depends on the statements before it: {_CHANGES_BETWEEN_RUNS}",
    "total_changes": f"total_changes() depends on the connection: {_CHANGES_BETWEEN_RUNS}",
    "last_insert_rowid": f"last_insert_rowid() depends on the connection: {_CHANGES_BETWEEN_RUNS}",
}
TIME_REASON = (
    "the statement reads the clock ('now', an empty date function or CURRENT_*): "
    f"{_CHANGES_BETWEEN_RUNS}; write the date itself, e.g. date('2026-01-31', '-30 days')"
)
# Date functions whose first argument is the time value (strftime's is its second).
_TIME_FROM_FIRST = ("date", "time", "datetime", "julianday", "unixepoch")
_CLOCK = ("current_date", "current_time", "current_timestamp")
TIME_FUNCTIONS = frozenset({*_TIME_FROM_FIRST, "strftime", *_CLOCK})
ALLOWED_FUNCTIONS = frozenset(
    {
        # core scalar
        "abs", "char", "coalesce", "glob", "hex", "ifnull", "iif", "instr",
        "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min", "nullif",
        "quote", "replace", "round", "rtrim", "sign", "substr", "substring",
        "trim", "typeof", "unicode", "unlikely", "upper", "zeroblob",
        # aggregate and window
        "avg", "count", "group_concat", "sum", "total", "row_number", "rank", "dense_rank",
        "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value", "last_value",
        "nth_value",
        # math
        "acos", "asin", "atan", "atan2", "ceil", "ceiling", "cos", "degrees", "exp", "floor",
        "ln", "log", "log10", "log2", "mod", "pi", "pow", "power", "radians", "sin", "sqrt",
        "tan", "trunc",
        # JSON (the table-valued json_each and json_tree are tables, not on the list)
        "json", "json_array", "json_array_length", "json_extract", "json_insert",
        "json_object", "json_patch", "json_quote", "json_remove", "json_replace", "json_set",
        "json_type", "json_valid", "json_group_array", "json_group_object", "->", "->>",
        # date and time, guarded by guard_time
        *TIME_FUNCTIONS,
    }
)  # fmt: skip
_NOW = re.compile(r"'now'", re.IGNORECASE)
_EMPTY_TIME_CALL = re.compile(
    rf"\b(?:{'|'.join(_TIME_FROM_FIRST)})\s*\(\s*\)|\bstrftime\s*\(\s*'[^']*'\s*\)", re.IGNORECASE
)
_COMPILED_ONLY = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_INSERT,
                  sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_RECURSIVE,
                  sqlite3.SQLITE_FUNCTION}  # fmt: skip


def function_refusal(name: str) -> str | None:
    """Why ad-hoc SQL may not call ``name``, or None if it may."""
    name = name.lower()
    if name in NONDETERMINISTIC:
        return NONDETERMINISTIC[name]
    if name not in ALLOWED_FUNCTIONS:
        return f"{name}() is not on the allow-list of SQL functions"
    return None


def time_or_randomness(statement: str) -> str | None:
    """Why the statement's effect would depend on the time or on chance, judged from its
    text and the functions it calls (compiled, never run, against an empty schema); None
    if it does not, or does not compile (the preview then says why)."""
    called: list[str] = []

    def record(action: int, _arg1: str | None, arg2: str | None, *_: str | None) -> int:
        if action == sqlite3.SQLITE_FUNCTION and arg2:
            called.append(arg2.lower())
        return sqlite3.SQLITE_OK if action in _COMPILED_ONLY else sqlite3.SQLITE_DENY

    probe = sqlite3.connect(":memory:", isolation_level=None)
    try:
        probe.executescript(SCHEMA)
        probe.set_authorizer(record)
        probe.execute(f"EXPLAIN {statement}").fetchall()
    except (sqlite3.Error, sqlite3.Warning):
        return None
    finally:
        probe.close()
    for name in called:
        if name in NONDETERMINISTIC:
            return NONDETERMINISTIC[name]
    uses_time = any(name in TIME_FUNCTIONS for name in called)
    if any(name in _CLOCK for name in called) or (
        uses_time and (_NOW.search(statement) or _EMPTY_TIME_CALL.search(statement))
    ):
        return TIME_REASON
    return None


def guard_time(db: sqlite3.Connection, refuse: Callable[[str], None]) -> None:
    """Replace the date and time functions on ``db`` by ones that refuse to read the clock
    (calling ``refuse`` with the reason, then failing the statement) and otherwise answer
    as SQLite does."""
    plain = sqlite3.connect(":memory:")  # SQLite's own functions, to answer the others

    def guarded(name: str, time_argument: int) -> Callable[..., object]:
        def call(*args: object) -> object:
            value = args[time_argument] if len(args) > time_argument else "now"
            if name in _CLOCK or (isinstance(value, str) and value.lower() == "now"):
                refuse(TIME_REASON)
                raise ValueError(TIME_REASON)
            placeholders = ", ".join("?" * len(args))
            return plain.execute(f"SELECT {name}({placeholders})", args).fetchone()[0]

        return call

    for name in _TIME_FROM_FIRST:
        db.create_function(name, -1, guarded(name, 0), deterministic=True)
    db.create_function("strftime", -1, guarded("strftime", 1), deterministic=True)
    for name in _CLOCK:
        db.create_function(name, 0, guarded(name, 0), deterministic=True)
