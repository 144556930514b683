"""Whether a proposed tool call is the right tool, and acts on the right target.

The rows a record tool would touch are worked out on a freshly seeded operations database
(the same rows on every machine), by the tools' own query: a call is on target when it
selects exactly the expected rows, however its filters are written.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from benchmarks.proposal_cases import Case, Rows
from models.tools import ToolCall
from tools.database import TABLES, connect, ensure_database
from tools.records import Filter, _matching
from tools.registry import validated_arguments


@dataclass(frozen=True)
class Score:
    right_tool: bool
    right_target: bool  # only ever True with the right tool
    why: str  # what was wrong, or "" when both are right


@contextmanager
def seeded_database() -> Iterator[sqlite3.Connection]:
    """A freshly seeded operations database, only read, gone afterwards."""
    with TemporaryDirectory() as folder:
        path = Path(folder) / "state" / "operations.db"
        ensure_database(path)
        with closing(connect(path)) as db:
            yield db


def score(case: Case, call: ToolCall | None, db: sqlite3.Connection) -> Score:
    if call is None:
        return Score(False, False, "no usable tool call")
    if call.tool != case.tool:
        return Score(False, False, f"{call.tool} instead of {case.tool}")
    _, arguments = validated_arguments(call)
    given = arguments.model_dump(mode="json")
    problems = []
    if case.rows is not None:
        problems += _rows_problems(case.rows, given, db)
    for name, expected in case.arguments.items():
        actual = given.get(name)
        if name == "changes":
            actual = {change["column"]: change["value"] for change in actual or []}
        if not _same(actual, expected):
            problems.append(f"{name} {actual!r} instead of {expected!r}")
    return Score(True, not problems, "; ".join(problems))


def _rows_problems(rows: Rows, given: dict[str, Any], db: sqlite3.Connection) -> list[str]:
    if given["table"] != rows.table:
        return [f"table {given['table']} instead of {rows.table}"]
    expected = _keys(db, rows.table, [Filter(column=c, op=o, value=v) for c, o, v in rows.filters])
    actual = _keys(db, rows.table, [Filter.model_validate(f) for f in given["filters"]])
    if actual == expected:
        return []
    return [f"selects {len(actual)} rows ({len(actual & expected)} right) of {len(expected)}"]


def _keys(db: sqlite3.Connection, table: str, filters: list[Filter]) -> set[Any]:
    key = TABLES[table].key
    try:
        return {row[key] for row in _matching(db, table, filters)}
    except (ValueError, sqlite3.Error):  # e.g. a word for a number: selects nothing
        return set()


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(_same(actual[k], expected[k]) for k in expected)
        )
    if isinstance(expected, str):
        return isinstance(actual, str) and actual.strip().casefold() == expected.casefold()
    return actual == expected
