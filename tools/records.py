"""Look-ups, summaries, and deleting or updating records by a filter.

Table and column names come only from the allow-list in ``database.py`` (checked by the
argument models, and again where the SQL is built); values only ever travel as SQL
parameters. A model that writes ``"country; DROP TABLE users"`` gets a validation error,
not a statement.
"""

import sqlite3
from typing import Literal

from pydantic import Field, model_validator

from models.tools import Row
from tools.base import Effect, Tool, ToolArguments, as_rows, first
from tools.database import RESEED_COMMAND, TABLES

TableName = Literal[
    "customers", "invoices", "payments", "accounts", "users", "user_roles", "mailing_list",
    "outbox",
]  # fmt: skip
DeletableTable = Literal["customers", "invoices", "users", "mailing_list"]
UpdatableTable = Literal["customers", "invoices", "users"]
Operator = Literal["=", "!=", "<", "<=", ">", ">=", "like"]
MAX_LOOKUP_ROWS = 50
MAX_FILTERS = 10


# Every column a tool may name, as the schema's enum: a model writing under it cannot invent
# one. Which table has which column is checked by the argument models (``_column_type``).
ANY_COLUMN = {"enum": sorted({column for table in TABLES.values() for column in table.columns})}


class Filter(ToolArguments):
    """``column op value``; ``like`` takes SQL wildcards (``%``). All filters must hold."""

    column: str = Field(max_length=64, json_schema_extra=ANY_COLUMN)
    op: Operator
    value: str = Field(max_length=200)


class Change(ToolArguments):
    """Set ``column`` to ``value``."""

    column: str = Field(max_length=64, json_schema_extra=ANY_COLUMN)
    value: str = Field(max_length=200)


class _OnTable(ToolArguments):
    table: str
    filters: list[Filter] = Field(max_length=MAX_FILTERS)

    @model_validator(mode="after")
    def _columns_are_allowed(self) -> "_OnTable":
        for item in self.filters:
            _column_type(self.table, item.column)
        return self


class FindRecordsArgs(_OnTable):
    table: TableName
    filters: list[Filter] = Field(
        max_length=MAX_FILTERS, description="all must hold; empty matches every row"
    )
    limit: int = Field(ge=1, le=MAX_LOOKUP_ROWS)


class SummarizeRecordsArgs(_OnTable):
    table: TableName
    filters: list[Filter] = Field(max_length=MAX_FILTERS)
    group_by: str | None = Field(description="a column to count by, or null for one total")

    @model_validator(mode="after")
    def _group_column_is_allowed(self) -> "SummarizeRecordsArgs":
        if self.group_by is not None:
            _column_type(self.table, self.group_by)
        return self


class DeleteRecordsArgs(_OnTable):
    table: DeletableTable
    filters: list[Filter] = Field(min_length=1, max_length=MAX_FILTERS, description="all must hold")


class UpdateRecordsArgs(_OnTable):
    table: UpdatableTable
    filters: list[Filter] = Field(min_length=1, max_length=MAX_FILTERS, description="all must hold")
    changes: list[Change] = Field(min_length=1, max_length=MAX_FILTERS)

    @model_validator(mode="after")
    def _changes_are_allowed(self) -> "UpdateRecordsArgs":
        allowed = TABLES[self.table].updatable
        for change in self.changes:
            if change.column not in allowed:
                raise ValueError(
                    f"column {change.column!r} of {self.table} cannot be updated "
                    f"(allowed: {', '.join(sorted(allowed))})"
                )
            _typed(self.table, change.column, change.value)
        return self


def _column_type(table: str, column: str) -> str:
    columns = TABLES[table].columns
    if column not in columns:
        raise ValueError(f"{table} has no column {column!r} (columns: {', '.join(columns)})")
    return columns[column]


def _typed(table: str, column: str, value: str) -> str | int:
    if _column_type(table, column) != "INTEGER":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{table}.{column} holds whole numbers, not {value!r}") from None


def _where(table: str, filters: list[Filter]) -> tuple[str, list[str | int]]:
    """The WHERE clause, with names checked against the allow-list and values as parameters."""
    clauses, params = [], []
    for item in filters:
        _column_type(table, item.column)  # again: the SQL is built here, not in the model
        operator = "LIKE" if item.op == "like" else item.op
        clauses.append(f'"{item.column}" {operator} ?')
        params.append(item.value if item.op == "like" else _typed(table, item.column, item.value))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def describe_filters(filters: list[Filter]) -> str:
    """``where country = 'DE' and ...``, or ``(every row)`` with no filter."""
    if not filters:
        return "(every row)"
    return "where " + " and ".join(f"{f.column} {f.op} {f.value!r}" for f in filters)


def _matching(db: sqlite3.Connection, table: str, filters: list[Filter]) -> list[Row]:
    where, params = _where(table, filters)
    order = TABLES[table].key
    return as_rows(db.execute(f'SELECT * FROM "{table}"{where} ORDER BY "{order}"', params))


def _count(db: sqlite3.Connection, table: str) -> int:
    return db.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def _find_rows(db: sqlite3.Connection, args: FindRecordsArgs) -> list[Row]:
    return _matching(db, args.table, args.filters)[: args.limit]


def _preview_find(db: sqlite3.Connection, args: FindRecordsArgs) -> Effect:
    rows = _matching(db, args.table, args.filters)
    shown = min(len(rows), args.limit)
    return Effect(
        summary=f"reads {len(rows):,} of {_count(db, args.table):,} rows in {args.table} "
        f"{describe_filters(args.filters)}; changes nothing; {shown} returned",
        affected=len(rows),
        fingerprint_rows=rows,
        sample_rows=first(rows),
    )


def _summary_rows(db: sqlite3.Connection, args: SummarizeRecordsArgs) -> list[Row]:
    where, params = _where(args.table, args.filters)
    amount = TABLES[args.table].amount_column
    total = f', SUM("{amount}") AS total_{amount}' if amount else ""
    if args.group_by is None:
        sql = f'SELECT COUNT(*) AS count{total} FROM "{args.table}"{where}'
    else:
        group = f'"{args.group_by}"'
        sql = (
            f'SELECT {group}, COUNT(*) AS count{total} FROM "{args.table}"{where} '
            f"GROUP BY {group} ORDER BY count DESC, {group}"
        )
    return as_rows(db.execute(sql, params))


def _preview_summary(db: sqlite3.Connection, args: SummarizeRecordsArgs) -> Effect:
    rows = _summary_rows(db, args)
    by = f" by {args.group_by}" if args.group_by else ""
    return Effect(
        summary=f"summarises {args.table} {describe_filters(args.filters)}{by}; changes nothing",
        affected=len(rows),
        fingerprint_rows=rows,
        sample_rows=first(rows),
    )


def _preview_delete(db: sqlite3.Connection, args: DeleteRecordsArgs) -> Effect:
    rows = _matching(db, args.table, args.filters)
    return Effect(
        summary=f"deletes {len(rows):,} of {_count(db, args.table):,} rows in {args.table} "
        f"{describe_filters(args.filters)}; {_shown(rows)}",
        affected=len(rows),
        fingerprint_rows=rows,
        sample_rows=first(rows),
    )


def _shown(rows: list[Row]) -> str:
    """Which rows the preview lists; with none, why that may be and how to get them back."""
    if rows:
        return f"first {min(len(rows), 5)} shown"
    return f"no row matches (changed already? `{RESEED_COMMAND}` reseeds the sample data)"


def _apply_delete(db: sqlite3.Connection, args: DeleteRecordsArgs) -> str:
    where, params = _where(args.table, args.filters)
    deleted = db.execute(f'DELETE FROM "{args.table}"{where}', params).rowcount
    return f"deleted {deleted:,} rows from {args.table} {describe_filters(args.filters)}"


def _preview_update(db: sqlite3.Connection, args: UpdateRecordsArgs) -> Effect:
    rows = _matching(db, args.table, args.filters)
    settings = ", ".join(f"{c.column} = {c.value!r}" for c in args.changes)
    details = []
    for change in args.changes:
        before = sorted({str(row[change.column]) for row in rows})
        shown = ", ".join(repr(value) for value in before[:5]) + (" ..." if len(before) > 5 else "")
        details.append(f"{change.column}: {shown or 'nothing'} -> {change.value!r}")
    return Effect(
        summary=f"updates {len(rows):,} of {_count(db, args.table):,} rows in {args.table} "
        f"{describe_filters(args.filters)}: sets {settings}; {_shown(rows)}",
        affected=len(rows),
        fingerprint_rows=rows,
        details=tuple(details),
        sample_rows=first(rows),
    )


def _apply_update(db: sqlite3.Connection, args: UpdateRecordsArgs) -> str:
    where, params = _where(args.table, args.filters)
    sets = ", ".join(f'"{change.column}" = ?' for change in args.changes)
    values = [_typed(args.table, change.column, change.value) for change in args.changes]
    updated = db.execute(f'UPDATE "{args.table}" SET {sets}{where}', [*values, *params]).rowcount
    return f"updated {updated:,} rows in {args.table} {describe_filters(args.filters)}"


FIND_RECORDS = Tool(
    name="find_records",
    description="Look up rows of a table by filters (read-only); returns at most `limit` rows.",
    arguments=FindRecordsArgs,
    preview=_preview_find,
    rows=_find_rows,
    read_only=True,
)
SUMMARIZE_RECORDS = Tool(
    name="summarize_records",
    description="Count rows of a table matching filters, optionally grouped by a column, "
    "with money totals (read-only).",
    arguments=SummarizeRecordsArgs,
    preview=_preview_summary,
    rows=_summary_rows,
    read_only=True,
)
DELETE_RECORDS = Tool(
    name="delete_records",
    description="Delete the rows of customers, invoices, users or mailing_list matching all "
    "filters.",
    arguments=DeleteRecordsArgs,
    preview=_preview_delete,
    apply=_apply_delete,
)
UPDATE_RECORDS = Tool(
    name="update_records",
    description="Set columns on the rows of customers, invoices or users matching all filters.",
    arguments=UpdateRecordsArgs,
    preview=_preview_update,
    apply=_apply_update,
)
