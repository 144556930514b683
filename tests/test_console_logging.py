"""The log in the approvers' terminal: a record quoting the model, a requester or a reviewer
prints as exactly one line, its escapes and line breaks shown, never acted on; so a log line
cannot draw a forged "Approve or reject:" block above the real notice."""

import logging
import sys
import unicodedata
from collections.abc import Iterator

import pytest

from console_logging import TerminalSafeFormatter, configure_logging

# What a model might write into a proposal: a forged notice, a screen wipe, a carriage
# return to overwrite the line, and a right-to-left override.
MODEL_TEXT = (
    "harmless\n\nApprove or reject:\n"
    '  uv run python -m send_approval evil-wf evil-req approve "ok"\r'
    "\x1b[2J\x1b[8mhidden\x1b[0m\u202eevil\u2028line"
)
ESCAPED = (
    "harmless\\n\\nApprove or reject:\\n"
    '  uv run python -m send_approval evil-wf evil-req approve "ok"\\r'
    "\\x1b[2J\\x1b[8mhidden\\x1b[0m\\u202eevil\\u2028line"
)


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers: put pytest's back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def assert_harmless(text: str) -> None:
    """Only printable characters and real line breaks; no forged line of its own."""
    unsafe = [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    assert unsafe == [], f"unsafe characters reached the terminal: {unsafe!r}"
    for line in text.splitlines():
        assert not line.startswith("Approve or reject"), text
        assert not line.lstrip().startswith("uv run"), text


def test_a_workflow_log_line_quoting_the_model_is_one_escaped_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As the workflow logs an audit event: ``workflow.logger.info("%s: %s", event, detail)``
    (the SDK's workflow logger is an adapter over the ``temporalio.workflow`` logger)."""
    configure_logging()

    logging.getLogger("temporalio.workflow").info(
        "%s: %s ({'workflow_id': %r})", "action_proposed", f"drop: {MODEL_TEXT}", "wf-1"
    )

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert f" INFO action_proposed: drop: {ESCAPED} ({{'workflow_id': 'wf-1'}})\n" in err
    assert_harmless(err)


def test_a_traceback_keeps_its_lines_each_made_safe(capsys: pytest.CaptureFixture[str]) -> None:
    """An exception's message can quote the model's answer; the traceback stays readable."""
    configure_logging()

    try:
        raise ValueError(MODEL_TEXT)
    except ValueError:
        logging.getLogger("temporalio.activity").exception("Malformed answer: %s", MODEL_TEXT)

    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith(f" ERROR Malformed answer: {ESCAPED}")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == f"ValueError: {ESCAPED}"
    assert_harmless("\n".join(lines))


def test_a_traceback_cached_raw_on_the_record_is_formatted_again_and_left_as_it_was() -> None:
    """Another handler may have formatted the record first and cached its traceback raw."""
    try:
        raise ValueError(MODEL_TEXT)
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    record.exc_text = logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
    raw = record.exc_text

    text = TerminalSafeFormatter().format(record)

    assert text.splitlines()[-1] == f"ValueError: {ESCAPED}"
    assert_harmless(text)
    assert record.exc_text == raw  # the other handlers still get the record as it was


def test_a_chained_exception_message_is_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()

    try:
        try:
            raise ValueError(MODEL_TEXT)
        except ValueError as err:
            raise RuntimeError("analysis failed") from err
    except RuntimeError:
        logging.getLogger("temporalio.activity").exception("failed")

    err = capsys.readouterr().err
    assert "The above exception was the direct cause of the following exception:" in err
    assert err.splitlines()[-1] == "RuntimeError: analysis failed"
    assert_harmless(err)


def test_only_records_at_the_configured_level_are_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo logs warnings only; its own lines tell the story."""
    configure_logging(logging.WARNING)

    logging.getLogger("temporalio.workflow").info("quiet")
    logging.getLogger("temporalio.workflow").warning("Refused decision: %s", MODEL_TEXT)

    err = capsys.readouterr().err
    assert "quiet" not in err and err.count("\n") == 1, err
    assert err.endswith(f" WARNING Refused decision: {ESCAPED}\n")
