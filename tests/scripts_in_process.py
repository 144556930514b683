"""The project's scripts called as ``main(argv)`` in the test process, as a user runs them.

A new Python spends one to three seconds of CPU importing temporalio, openai, pydantic and
fastapi before a script's first line; called here, a script costs only what it does. It
sees what a process would: its arguments (``sys.argv[0]`` is its file, for its usage line),
the environment the test gave it, an empty stdin, and its own stdout and stderr; its exit
status is ``main``'s answer, ``SystemExit``'s code, or 1 with the traceback an uncaught
error would print. Those are the process's own globals, so one script runs at a time.

What a call cannot show is what only a real process has (a signal, a kill, the
interpreter's exit): those tests start ``python -m`` with ``subprocess``.
"""

import contextlib
import importlib
import importlib.util
import io
import logging
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence

_ONE_AT_A_TIME = threading.Lock()


def call_main(
    module: str, args: Sequence[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` with ``env`` as the environment, called in this process."""
    spec = importlib.util.find_spec(module)
    is_package = spec is not None and spec.submodule_search_locations is not None
    script = importlib.import_module(f"{module}.__main__" if is_package else module)
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        _ONE_AT_A_TIME,
        _environment(env),
        _logging_kept(),
        _argv([script.__file__ or module, *args]),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
        _stdin(io.StringIO("")),
    ):
        # A thread of its own: the script's ``asyncio.run`` never meets the tests' loop.
        code: list[int] = []
        thread = threading.Thread(
            target=lambda: code.append(_exit_status(script.main, list(args), stderr))
        )
        thread.start()
        thread.join()
    return subprocess.CompletedProcess(
        [module, *args], code[0], stdout.getvalue(), stderr.getvalue()
    )


def _exit_status(main: object, args: list[str], stderr: io.StringIO) -> int:
    """What the interpreter would exit with, printing what it would print."""
    try:
        return int(main(args) or 0)  # type: ignore[operator]
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            return exit.code or 0
        print(exit.code, file=stderr)
        return 1
    except Exception:
        stderr.write(traceback.format_exc())
        return 1


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """Scripts set up the root logger for their process; this one's is pytest's."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


@contextlib.contextmanager
def _stdin(stream: io.StringIO) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = stream
    try:
        yield
    finally:
        sys.stdin = saved
