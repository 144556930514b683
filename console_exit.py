"""What a script does on its way out: one line for Ctrl-C, a quiet end on a closed pipe,
and an exit that skips the interpreter's teardown."""

import os
import sys
from collections.abc import Callable
from typing import NoReturn

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT: what shells report for Ctrl-C


def interrupted(what_it_leaves: str) -> int:
    """Ctrl-C: one line on stderr saying what state the script leaves behind, no traceback;
    returns the exit code. ``asyncio.run`` turns Ctrl-C into a KeyboardInterrupt once the
    running coroutine has been cancelled, so each script catches that around its run."""
    print(f"\nInterrupted: {what_it_leaves}", file=sys.stderr)
    return INTERRUPTED_EXIT_CODE


def exit_process(code: int) -> NoReturn:
    """Exit without interpreter teardown, once output is flushed.

    The SDK's native threads can outlive the event loop, and CPython's finalisation then
    aborts with "PyGILState_Release ... must be current" (temporalio/sdk-python#300),
    turning a clean exit into SIGABRT. Every script ends here instead of with sys.exit.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


BROKEN_PIPE_EXIT_CODE = 141  # 128 + SIGPIPE: what shells report when the reader went away


def run_script(main: Callable[[], int]) -> NoReturn:
    """Run a script's ``main`` and exit with its code (``exit_process``).

    A reader that went away (``approval_status --pending | head``) ends the script quietly:
    the rest of the output has nowhere to go, and a traceback would only say so. Standard
    output is pointed at the null device so the final flush does not fail again.
    """
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = BROKEN_PIPE_EXIT_CODE
    exit_process(code)
