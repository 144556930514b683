"""Previewing a tool call, and executing it once, only if its effect is the approved one.

A preview's fingerprint covers the call, the rows it reads, and the change itself: every
row it would write, before and after (``change_log.py``). So both work the change out:
- ``preview_call`` applies the call to a private in-memory copy of the database and throws
  the copy away: nothing changes, and no lock another run needs is taken.
- ``execute_call`` takes the write lock (``BEGIN IMMEDIATE``), then: if the idempotency key
  is already in ``tool_executions``, returns the outcome recorded with it (a retry acts
  once); otherwise applies the call *inside that transaction*, and commits only if the
  fingerprint of what it did equals the approved one. If it differs (the rows changed since
  people looked, or the statement did something else this time), it rolls back and reports
  the drift with the effect it found. The key is recorded in the same transaction as the
  effect, so a worker killed at any point leaves either both or neither.
A read-only tool runs without the write lock and records nothing: repeating it is harmless.
Every call runs under a ``CallGuard`` (``budget.py``): past its time, or cancelled, it is
interrupted and rolled back, never left running.
"""

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from models.tools import EffectPreview, ExecuteToolInput, ToolCall, ToolOutcome, ToolStatus
from tools.base import Effect, Tool, ToolRefused, fingerprint
from tools.budget import CallGuard
from tools.change_log import changes_digest, forget_changes, log_changes
from tools.database import connect, ensure_database, private_copy
from tools.registry import validated_arguments


class IdempotencyKeyReused(ValueError):
    """The key was already used for a different call: acting, or answering with the other
    call's outcome, would both be wrong."""


class ApprovalMissing(ValueError):
    """A tool that changes data was asked to run with no approved preview."""


@dataclass(frozen=True)
class _Applied:
    """The effect a call had inside a transaction, and what its tool says it did (None:
    it could not be carried out, and did nothing)."""

    preview: EffectPreview
    summary: str | None


def preview_call(path: Path, call: ToolCall, guard: CallGuard | None = None) -> EffectPreview:
    """What the call would change, without changing anything."""
    tool, args = validated_arguments(call)
    guard = guard or CallGuard()
    ensure_database(path)
    with closing(private_copy(path)) as db, guard.watching(db):
        if tool.read_only:
            return _stamped(tool, args, _effect(db, tool, args), change=None)
        log_changes(db)
        db.execute("BEGIN")
        try:
            return _apply(db, tool, args).preview
        finally:
            if db.in_transaction:  # an interrupted write rolls back by itself
                db.execute("ROLLBACK")


def execute_call(
    path: Path, request: ExecuteToolInput, guard: CallGuard | None = None
) -> ToolOutcome:
    """Execute once per idempotency key, and only the effect that was approved."""
    tool, args = validated_arguments(request.call)
    guard = guard or CallGuard()
    ensure_database(path)
    if tool.read_only:
        return _read(path, tool, args, request, guard)
    if request.approved_fingerprint is None:
        raise ApprovalMissing(f"{tool.name} changes data and needs an approved preview")
    with closing(connect(path)) as db, guard.watching(db):
        log_changes(db)
        db.execute("BEGIN IMMEDIATE")
        guard.restart_clock()
        try:
            recorded = _recorded(db, request)
            if recorded is not None:
                return recorded
            applied = _apply(db, tool, args)
            if applied.preview.fingerprint != request.approved_fingerprint:
                return _refusal(request, applied.preview, ToolStatus.DRIFTED)
            if applied.summary is None:
                return _refusal(request, applied.preview, ToolStatus.INFEASIBLE)
            outcome = ToolOutcome(
                idempotency_key=request.idempotency_key,
                tool=tool.name,
                status=ToolStatus.EXECUTED,
                summary=applied.summary,
                preview=applied.preview,
                executed_at=datetime.now(UTC),
            )
            _record(db, request, outcome)
            guard.raise_if_stopped()  # cancelled meanwhile: roll back, nothing happened
            db.execute("COMMIT")
            return outcome
        finally:
            if db.in_transaction:  # a repeat, a refusal, a drift, or the effect failed
                db.execute("ROLLBACK")


def _apply(db: sqlite3.Connection, tool: Tool[Any], args: BaseModel) -> _Applied:
    """Apply the call in the caller's transaction and stamp its effect: what the tool's
    preview says, and the rows it changed. The caller commits or rolls back."""
    effect = _effect(db, tool, args)
    if not effect.feasible:
        return _Applied(_stamped(tool, args, effect, change=None), None)
    assert tool.apply is not None
    forget_changes(db)
    try:
        summary = tool.apply(db, args)
    except (ToolRefused, sqlite3.IntegrityError) as err:  # the caller rolls it back
        return _Applied(_stamped(tool, args, _infeasible(err), change=None), None)
    return _Applied(_stamped(tool, args, effect, change=changes_digest(db)), summary)


def _effect(db: sqlite3.Connection, tool: Tool[Any], args: BaseModel) -> Effect:
    try:
        return tool.preview(db, args)
    except ToolRefused as err:  # e.g. no such user: shown, and refused at execution
        return _infeasible(err)


def _infeasible(err: Exception) -> Effect:
    return Effect(summary=f"cannot: {err}", affected=0, fingerprint_rows=[str(err)],
                  feasible=False)  # fmt: skip


def _stamped(tool: Tool[Any], args: BaseModel, effect: Effect, change: str | None) -> EffectPreview:
    return EffectPreview(
        tool=tool.name,
        summary=effect.summary,
        affected=effect.affected,
        details=list(effect.details),
        sample_rows=list(effect.sample_rows),
        amount_cents=effect.amount_cents,
        feasible=effect.feasible,
        fingerprint=fingerprint(
            tool.name, args.model_dump(mode="json"), effect.fingerprint_rows, change
        ),
    )


def _read(
    path: Path, tool: Tool[Any], args: BaseModel, request: ExecuteToolInput, guard: CallGuard
) -> ToolOutcome:
    with closing(connect(path)) as db, guard.watching(db):
        db.execute("BEGIN")
        try:
            preview = _stamped(tool, args, _effect(db, tool, args), change=None)
            rows = tool.rows(db, args) if tool.rows is not None else []
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
    return ToolOutcome(
        idempotency_key=request.idempotency_key,
        tool=tool.name,
        status=ToolStatus.EXECUTED,
        summary=preview.summary,
        preview=preview,
        rows=rows,
        executed_at=datetime.now(UTC),
    )


def _refusal(request: ExecuteToolInput, preview: EffectPreview, status: ToolStatus) -> ToolOutcome:
    why = (
        "the data changed since the approved preview"
        if status is ToolStatus.DRIFTED
        else "the approved action can no longer be carried out"
    )
    return ToolOutcome(
        idempotency_key=request.idempotency_key,
        tool=request.call.tool,
        status=status,
        summary=f"not executed: {why}; now it {preview.summary}",
        preview=preview,
    )


def _canonical(call: ToolCall) -> str:
    return json.dumps(call.model_dump(mode="json"), sort_keys=True)


def _recorded(db: sqlite3.Connection, request: ExecuteToolInput) -> ToolOutcome | None:
    row = db.execute(
        "SELECT tool, arguments, outcome, executed_at FROM tool_executions"
        " WHERE idempotency_key = ?",
        (request.idempotency_key,),
    ).fetchone()
    if row is None:
        return None
    tool, arguments, outcome, executed_at = row
    if tool != request.call.tool or arguments != _canonical(request.call):
        raise IdempotencyKeyReused(
            f"idempotency key {request.idempotency_key} was already used at {executed_at} "
            f"for another call ({tool}); refusing to act or to report that call as this one"
        )
    return ToolOutcome.model_validate_json(outcome)


def _record(db: sqlite3.Connection, request: ExecuteToolInput, outcome: ToolOutcome) -> None:
    db.execute(
        "INSERT INTO tool_executions VALUES (?, ?, ?, ?, ?)",
        (
            request.idempotency_key,
            request.call.tool,
            _canonical(request.call),
            outcome.model_dump_json(),
            (outcome.executed_at or datetime.now(UTC)).isoformat(),
        ),
    )
