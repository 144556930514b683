"""The Slack settings, read from the environment (names in ``constants.py``) and checked
when a program starts, so a half-configured app is one clear message, not failed notices.

The worker posts with the bot token into one channel; the inbox's route needs only the
signing secret (to know a press came from Slack) and the reviewers file (to know who
pressed). The reviewers file maps Slack user IDs to the reviewer names the workflow knows:
``{"U012AB3CD": "alice"}``. It is read again on every press, so removing a line revokes
that person at once, without a restart.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path

from constants import (
    SLACK_BOT_TOKEN_ENV,
    SLACK_CHANNEL_ENV,
    SLACK_REVIEWERS_ENV,
    SLACK_SIGNING_SECRET_ENV,
)
from models.limits import MAX_NAME_CHARS


class SlackSettingsError(ValueError):
    """A Slack setting cannot work; the message names it, never a secret's value."""


@dataclass(frozen=True)
class SlackPosting:
    """Where the worker posts approval messages, and with which bot token."""

    token: str
    channel: str

    @classmethod
    def from_env(cls) -> "SlackPosting | None":
        """None when Slack is not configured; both settings or neither."""
        token = os.environ.get(SLACK_BOT_TOKEN_ENV, "").strip()
        channel = os.environ.get(SLACK_CHANNEL_ENV, "").strip()
        if not token and not channel:
            return None
        if not token or not channel:
            missing = SLACK_CHANNEL_ENV if token else SLACK_BOT_TOKEN_ENV
            raise SlackSettingsError(f"Slack needs {missing} too (docs/slack.md)")
        return cls(token, channel)


def load_reviewers(path: Path) -> dict[str, str]:
    """The Slack user ID -> reviewer name mapping; SlackSettingsError if unusable."""
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise SlackSettingsError(f"{SLACK_REVIEWERS_ENV}: cannot read {path}: {reason}") from None
    except (ValueError, UnicodeDecodeError):
        raise SlackSettingsError(f"{SLACK_REVIEWERS_ENV}: {path} is not JSON") from None
    if not isinstance(mapping, dict):
        raise SlackSettingsError(
            f'{SLACK_REVIEWERS_ENV}: {path} must be an object, {{"U012AB3CD": "alice"}}'
        )
    for user_id, name in mapping.items():
        if not isinstance(name, str) or not _usable_name(name):
            raise SlackSettingsError(
                f"{SLACK_REVIEWERS_ENV}: the reviewer for Slack user {user_id!r} must be a "
                f"printable name of 1 to {MAX_NAME_CHARS} characters, without outer spaces"
            )
    return mapping


def _usable_name(name: str) -> bool:
    """A name the audit trail and approver lists can show (the inbox's rule for accounts)."""
    fits = 0 < len(name) <= MAX_NAME_CHARS
    return fits and name == name.strip() and name.isprintable()


@dataclass(frozen=True)
class SlackEndpoint:
    """What the interactions route needs: Slack's signing secret and the reviewers file."""

    signing_secret: str
    reviewers_file: Path

    def __post_init__(self) -> None:
        load_reviewers(self.reviewers_file)  # checked at start: a typo fails there

    def reviewer(self, slack_user_id: str) -> str | None:
        """The reviewer this Slack user is, or None: unmapped (or the file broke since)."""
        try:
            return load_reviewers(self.reviewers_file).get(slack_user_id)
        except SlackSettingsError:
            return None

    @classmethod
    def from_env(cls) -> "SlackEndpoint | None":
        """None when no signing secret is set (the route is then not mounted)."""
        secret = os.environ.get(SLACK_SIGNING_SECRET_ENV, "").strip()
        if not secret:
            return None
        reviewers = os.environ.get(SLACK_REVIEWERS_ENV, "").strip()
        if not reviewers:
            raise SlackSettingsError(
                f"{SLACK_SIGNING_SECRET_ENV} is set but {SLACK_REVIEWERS_ENV} is not: without "
                "it no Slack user can be told apart from another (docs/slack.md)"
            )
        return cls(secret, Path(reviewers))
