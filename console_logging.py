"""Log output a terminal shows as written: the one logging setup every script uses.

Log messages quote the request, the model's proposal and reviewers' notes (an audit event,
a refused decision, a malformed answer). Printed raw, a newline or an escape sequence in
them could draw a forged "Approve or reject:" block just above the real notice in the
terminal approvers watch. Here every record goes through ``terminal_safe``: its message is
always exactly one line, and an appended traceback keeps its lines, each made safe, with
each exception's message (which may quote the model) on one line of its own.
"""

import logging
import traceback
from collections.abc import Callable, Iterator
from types import TracebackType

from console_format import terminal_safe

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class TerminalSafeFormatter(logging.Formatter):
    """A formatter whose output holds only printable characters and real line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().formatMessage(record))

    def formatException(self, ei: _ExcInfo) -> str:
        exc_type, exc, tb = ei
        if exc_type is None or exc is None:
            return super().formatException(ei)
        # As the base class formats it, but no exception's message can start a line.
        summary = traceback.TracebackException(exc_type, exc, tb, compact=True)
        for each in _chained(summary):
            each.format_exception_only = _one_line_each(each.format_exception_only)  # type: ignore[method-assign]
        return _safe_lines("".join(summary.format()).removesuffix("\n"))

    def formatStack(self, stack_info: str) -> str:
        return _safe_lines(super().formatStack(stack_info))

    def format(self, record: logging.LogRecord) -> str:
        # Another handler's formatter may have cached the traceback raw on the record: it is
        # formatted again here, or without the exception at hand made safe line by line.
        cached = record.exc_text
        record.exc_text = _safe_lines(cached) if cached and not record.exc_info else None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached


def _safe_lines(text: str) -> str:
    """Each line made safe, the line breaks between them kept (a traceback stays readable)."""
    return "\n".join(terminal_safe(line) for line in text.split("\n"))


def _chained(summary: traceback.TracebackException) -> Iterator[traceback.TracebackException]:
    """``summary`` and every exception it shows: causes, contexts, a group's members."""
    seen: set[int] = set()
    pending = [summary]
    while pending:
        each = pending.pop()
        if id(each) in seen:
            continue
        seen.add(id(each))
        yield each
        pending += [e for e in (each.__cause__, each.__context__) if e is not None]
        pending += getattr(each, "exceptions", None) or []


def _one_line_each(lines: Callable[..., Iterator[str]]) -> Callable[..., Iterator[str]]:
    """``lines`` with every line it yields made safe: a message's newlines are escaped."""

    def safe(*args: object, **kwargs: object) -> Iterator[str]:
        for line in lines(*args, **kwargs):
            yield terminal_safe(line.removesuffix("\n")) + "\n"

    return safe


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr through ``TerminalSafeFormatter``, replacing any earlier setup."""
    handler = logging.StreamHandler()
    handler.setFormatter(TerminalSafeFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
