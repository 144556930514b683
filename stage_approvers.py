"""Who may approve each approval stage: read by whatever starts a run, into its input.

``HITL_STAGE_APPROVERS`` names a JSON file mapping each stage to its members::

    {"manager": ["alice", "bob"], "director": ["carol"], "cfo": ["dana"]}

A run records the members it was started with, so a later change to the file never changes
who may approve a run already waiting. A stage with no members is approved by nobody: an
explicit ``--stage`` without members is refused at start, and a request the risk policy
stages (a large amount: manager, director, cfo) ends ``stage_failed`` at that stage.
"""

import json
import os
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from constants import STAGE_APPROVERS_ENV
from models.validation import summarise

StageApprovers = dict[str, list[str]]
_SHAPE = TypeAdapter(StageApprovers)


class StageApproversError(Exception):
    """The stage approvers file cannot be used; the message names it and the problem."""


def load_stage_approvers() -> StageApprovers:
    """The configured members of each stage; none when ``HITL_STAGE_APPROVERS`` is unset."""
    path = os.environ.get(STAGE_APPROVERS_ENV, "").strip()
    if not path:
        return {}
    try:
        members = _SHAPE.validate_python(json.loads(Path(path).read_text()))
    except OSError as err:
        raise StageApproversError(f"{STAGE_APPROVERS_ENV}={path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise StageApproversError(f"{STAGE_APPROVERS_ENV}={path}: not JSON ({err})") from None
    except ValidationError as err:
        raise StageApproversError(
            f'{STAGE_APPROVERS_ENV}={path}: expected {{"stage": ["name", ...]}} ({summarise(err)})'
        ) from None
    return {stage: names for stage, names in members.items() if names}


def unstaffed(stages: list[str], members: StageApprovers) -> list[str]:
    """The stages among ``stages`` that nobody may approve."""
    return [stage for stage in stages if not members.get(stage)]
