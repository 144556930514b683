"""Argument types and defaults the scripts share: a bad value is a usage error, and a
reviewer is named, never guessed."""

import argparse
import getpass

from models.models import MAX_WAIT_SECONDS


def positive_int(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
    return value


def wait_seconds(text: str) -> int:
    """A positive number of seconds a run may wait, within what a workflow accepts."""
    value = positive_int(text)
    if value > MAX_WAIT_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_WAIT_SECONDS} seconds (365 days), not {text}"
        )
    return value


def os_user() -> str | None:
    """The OS user name, or None where there is none (a container running as a bare UID):
    a decision must name a real reviewer, never a guessed one."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None
