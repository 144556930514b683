"""Previewing a tool call, and executing it once, only if the approved preview still holds.

Both open one transaction on the operations database:
- ``preview_call`` works the effect out and rolls back: nothing changes.
- ``execute_call`` takes the write lock (``BEGIN IMMEDIATE``), then: if the idempotency key
  is already in ``tool_executions``, returns the outcome recorded with it (a retry acts
  once); otherwise previews again *inside the same transaction*, refuses without acting
  if the fingerprint differs from the approved one (the rows changed since people looked),
  and else applies the effect and records the key and the outcome, then commits. Effect
  and key commit together or not at all, so a worker killed at any point leaves either
  both or neither.
A read-only tool runs without the write lock and records nothing: repeating it is harmless.
"""

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools.base import Effect, Tool, ToolRefused, fingerprint
from tools.database import connect, ensure_database
from tools.models import EffectPreview, ExecuteToolInput, ToolCall, ToolOutcome, ToolStatus
from tools.registry import validated_arguments


class IdempotencyKeyReused(ValueError):
    """The key was already used for a different call: acting, or answering with the other
    call's outcome, would both be wrong."""


class ApprovalMissing(ValueError):
    """A tool that changes data was asked to run with no approved preview."""


def preview_call(path: Path, call: ToolCall) -> EffectPreview:
    """What the call would change, without changing anything."""
    tool, args = validated_arguments(call)
    ensure_database(path)
    with closing(connect(path)) as db:
        db.execute("BEGIN")
        try:
            return _preview(db, tool, args)
        finally:
            db.execute("ROLLBACK")


def execute_call(path: Path, request: ExecuteToolInput) -> ToolOutcome:
    """Execute once per idempotency key, and only the effect that was approved."""
    tool, args = validated_arguments(request.call)
    ensure_database(path)
    if tool.read_only:
        return _read(path, tool, args, request)
    if request.approved_fingerprint is None:
        raise ApprovalMissing(f"{tool.name} changes data and needs an approved preview")
    with closing(connect(path)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            recorded = _recorded(db, request)
            if recorded is not None:
                return recorded
            preview = _preview(db, tool, args)
            if preview.fingerprint != request.approved_fingerprint:
                return _refusal(request, preview, ToolStatus.DRIFTED)
            if not preview.feasible:
                return _refusal(request, preview, ToolStatus.INFEASIBLE)
            assert tool.apply is not None
            outcome = ToolOutcome(
                idempotency_key=request.idempotency_key,
                tool=tool.name,
                status=ToolStatus.EXECUTED,
                summary=tool.apply(db, args),
                preview=preview,
                executed_at=datetime.now(UTC),
            )
            _record(db, request, outcome)
            db.execute("COMMIT")
            return outcome
        finally:
            if db.in_transaction:  # a repeat, a refusal, or the effect failed
                db.execute("ROLLBACK")


def _preview(db: sqlite3.Connection, tool: Tool[Any], args: BaseModel) -> EffectPreview:
    try:
        effect = tool.preview(db, args)
    except ToolRefused as err:  # e.g. no such user: shown, and refused at execution
        effect = Effect(summary=f"cannot: {err}", affected=0, fingerprint_rows=[str(err)],
                        feasible=False)  # fmt: skip
    return EffectPreview(
        tool=tool.name,
        summary=effect.summary,
        affected=effect.affected,
        details=list(effect.details),
        sample_rows=list(effect.sample_rows),
        amount_cents=effect.amount_cents,
        feasible=effect.feasible,
        fingerprint=fingerprint(tool.name, args.model_dump(mode="json"), effect.fingerprint_rows),
    )


def _read(path: Path, tool: Tool[Any], args: BaseModel, request: ExecuteToolInput) -> ToolOutcome:
    with closing(connect(path)) as db:
        db.execute("BEGIN")
        try:
            preview = _preview(db, tool, args)
            rows = tool.rows(db, args) if tool.rows is not None else []
        finally:
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
