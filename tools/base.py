"""What a tool is: a typed function with a preview, a description and declared properties.

``preview`` and ``apply`` both run inside the caller's transaction on the operations
database (see ``execution.py``), in preview and in execution alike: what ``apply`` changed
there is fingerprinted with the preview, and execution commits only if that matches the
approved fingerprint, with no gap in which the rows could change.
"""

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from models.tools import Row

Args = TypeVar("Args", bound=BaseModel)


class ToolArguments(BaseModel):
    """Base of every argument model: unknown fields refused, no coercion of types."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)
    # Optional fields of which a call gives exactly one (its validator enforces it); the
    # strict schema then has one branch per choice, the others null (tools/schema.py).
    exactly_one_of: ClassVar[tuple[str, ...]] = ()


class ToolRefused(ValueError):
    """The call is outside the tool's contract (an unknown table, a missing row...)."""


@dataclass(frozen=True)
class Effect:
    """A preview before it is stamped with its tool name and fingerprint."""

    summary: str
    affected: int
    fingerprint_rows: list[Any]
    details: tuple[str, ...] = ()
    sample_rows: tuple[Row, ...] = ()
    amount_cents: int = 0
    feasible: bool = True


@dataclass(frozen=True)
class Tool(Generic[Args]):
    """One tool. ``read_only`` tools never change data; ``always_asks`` tools need a person
    even when nothing else says so."""

    name: str
    description: str
    arguments: type[Args]
    preview: Callable[[sqlite3.Connection, Args], Effect]
    apply: Callable[[sqlite3.Connection, Args], str] | None = None  # None: read-only
    read_only: bool = False
    always_asks: bool = False
    rows: Callable[[sqlite3.Connection, Args], list[Row]] | None = None  # a look-up's answer
    # Its execute activity's timeouts: one attempt, and all attempts (retries back off).
    execute_timeout: timedelta = timedelta(seconds=120)
    execute_persistence: timedelta = timedelta(minutes=30)

    def parse(self, arguments: dict[str, Any]) -> Args:
        return self.arguments.model_validate(arguments)


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (rows, the call): equal iff the effect is equal."""
    encoded = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def as_rows(cursor: sqlite3.Cursor) -> list[Row]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def first(rows: Iterable[Row], count: int = 5) -> tuple[Row, ...]:
    return tuple(list(rows)[:count])
