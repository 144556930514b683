"""What crosses a Temporal boundary about tools: the proposed call, its effect preview, the
execution request and its outcome. Argument models of each tool live with the tool."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, model_validator
from pydantic_core import to_json

Row = dict[str, str | int | float | None]
# A read-only tool's answer travels in the run's result and status: kept small, as every
# payload of a run is (models/limits.py). Enough for a look-up a person reads on a screen.
MAX_RESULT_ROWS = 20
MAX_RESULT_COLUMNS = 8  # wider than any table the tools may read
MAX_RESULT_CELL_CHARS = 40


class ToolCall(BaseModel):
    """A tool and its arguments, as proposed (and validated against the tool's model)."""

    tool: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)

    def as_text(self) -> str:
        """One line: the tool, then its arguments as JSON (what ``send_approval
        --edit-arguments`` takes), for the audit trail and the terminal."""
        return f"{self.tool} {to_json(self.arguments).decode()}"


class EffectPreview(BaseModel):
    """What a tool call would change, worked out without changing anything.

    Text the model wrote reaches the summary only through patterns that admit no control
    characters (names, addresses) or quoted with ``repr`` (filter values, subjects, SQL).

    ``fingerprint`` hashes the call, the rows it reads and the change it makes (every row
    written, before and after): execution commits only if what it did has the fingerprint
    of the preview that was approved.
    """

    tool: str
    summary: str = Field(description="one line: what changes, how much, where")
    affected: int = Field(description="rows changed, or recipients, or matches for a look-up")
    details: list[str] = Field(default_factory=list, description="e.g. balances before -> after")
    sample_rows: list[Row] = Field(default_factory=list, description="the first rows touched")
    amount_cents: int = Field(default=0, description="money the call moves, for staging")
    feasible: bool = True
    fingerprint: str


class ExecuteToolInput(BaseModel):
    """Input of the tool execution activity. ``idempotency_key`` is stable across retries;
    ``approved_fingerprint`` is the fingerprint of the preview people approved (None only
    for a read-only tool that ran without asking)."""

    idempotency_key: str = Field(min_length=1)
    call: ToolCall
    approved_fingerprint: str | None = None


class ToolStatus(StrEnum):
    EXECUTED = "executed"
    DRIFTED = "drifted"  # the data changed since the preview: nothing was done
    INFEASIBLE = "infeasible"  # e.g. the invoice is no longer open: nothing was done


class ToolOutcome(BaseModel):
    """What an execution did. A retry with the same key gets the first outcome back."""

    idempotency_key: str
    tool: str
    status: ToolStatus
    summary: str
    preview: EffectPreview = Field(description="the effect found at execution time")
    rows: list[Row] = Field(default_factory=list, description="a read-only tool's answer")
    rows_left_off: int = Field(default=0, description="answer rows past MAX_RESULT_ROWS")
    executed_at: datetime | None = None

    @model_validator(mode="after")
    def _bounded(self) -> "ToolOutcome":
        """At most ``MAX_RESULT_ROWS`` rows of ``MAX_RESULT_COLUMNS`` columns, each text cut
        to ``MAX_RESULT_CELL_CHARS``; the rows left off are counted. Idempotent, so an
        outcome read back (a retry's, a result's) is unchanged."""
        self.rows_left_off += max(len(self.rows) - MAX_RESULT_ROWS, 0)
        self.rows = [_bounded_row(row) for row in self.rows[:MAX_RESULT_ROWS]]
        return self


def _bounded_row(row: Row) -> Row:
    return {
        column: _bounded_cell(value) for column, value in list(row.items())[:MAX_RESULT_COLUMNS]
    }


def _bounded_cell(value: str | int | float | None) -> str | int | float | None:
    if isinstance(value, str) and len(value) > MAX_RESULT_CELL_CHARS:
        return value[: MAX_RESULT_CELL_CHARS - 1] + "…"
    return value
