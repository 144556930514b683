"""Versions of what a running workflow does: the one module that calls ``workflow.patched``.

A run waits days for a person, and a worker that replays it must issue the commands the
run's history holds. So a change that alters a running workflow's commands comes with a
version, asked here and nowhere else:

1. add ``"hitl-<date>-<what>"`` first in ``LIVE_VERSIONS`` and branch on
   ``since(version)``: new runs record its marker and take the new path, runs started
   before it keep the old one;
2. once no run started before it is still open (``temporal workflow list --query
   'ExecutionStatus="Running" AND TemporalChangeVersion IS NULL'``), call
   ``workflow.deprecate_patch`` instead for one release, then delete the old branch and the
   version. At most two versions are ever live.

Ask once a run, in the workflow's ``__init__`` (before any handler: an update's validator
may not ask), keep the answer, and carry it into a continued run, which asks only if its
first run took the version. The old branches live in one module (``legacy_1_0.py``).
Record a history of each new path (``python -m tests.record_histories``) and keep the old
ones (``tests/histories/1.0/``); ``tests/test_replay.py`` replays every one. 1.0 is the
baseline: runs started before 1.0 must drain before workers are upgraded to it.
"""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from constants import LIVE_VERSIONS


def since(version: str) -> bool:
    """Whether this run takes ``version``'s path (a new run does, and records its marker)."""
    if version not in LIVE_VERSIONS:
        raise ValueError(f"{version!r} is not a live version (constants.LIVE_VERSIONS)")
    return workflow.patched(version)
