"""Every patch a run started by today's code has, behind one version marker.

Each change to what a run in flight does went behind its own ``workflow.patched(id)``, and
for a new run each of those calls records a ``MarkerRecorded`` event and an upsert of the
``TemporalChangeVersion`` search attribute (SDK core adds one per new patch): a dozen extra
commands, each a history event and a server write, on every run. A run started now records
one marker instead, the newest of ``WORKFLOW_VERSIONS``, and every patch from before it
counts as applied without a call of its own.

Why this is replay-safe (``temporalio`` 1.35, ``worker/_workflow_instance.py`` and core's
``patch_state_machine.rs``):

- ``workflow.patched(id)`` is memoised per run: the first answer for an ``id`` holds for
  the rest of the run, and while replaying it is True only if the history has that id's
  marker (core announces the markers of the workflow task being replayed before the code
  runs). Not replaying, it records the marker and answers True.
- The version is asked in ``__init__`` (``@workflow.init``). The SDK builds the workflow
  object in the first activation before it runs anything else: the run method, and every
  signal or update handler, including those delivered with the start (signal-with-start,
  update-with-start). So the version marker is the run's first command, in its first
  workflow task, before any patch a handler could ask for.
- A run started by this code recorded the version marker and no other: on replay it is
  announced, the answer is True again, the other patches are again not asked, and the
  commands match. A run started by older code has no version marker (its first workflow
  task was completed without one): the answer is False on replay and stays False when it
  then runs on, so every patch is asked as before, at the same places, and matches the
  markers its history holds (or writes them, where the older code had not reached them).
- A run whose first workflow task no worker completed yet has no history to match: it is
  new, whichever code started it.

Versions follow one another (``WORKFLOW_VERSIONS`` in ``constants.py``, newest first). A
new run records the newest. The constructor asks them in order and stops at the first a run
recorded, so a run of an older version replays with that version's answers: ``since`` is
False for every version after its own, and it keeps the commands it ran with. A change made
from now on comes with a version of its own, added first, and is asked with
``since(version)``. ``applied`` is for the patches from before the first version only: it
answers True for any versioned run."""

from collections.abc import Sequence

from temporalio import workflow


class Patches:
    """The patch answers of one run: create it once per run, in the workflow's ``__init__``."""

    def __init__(self, versions: Sequence[str]) -> None:
        """``versions`` newest first; a new run records the first."""
        self._versions = tuple(versions)
        self._recorded = next(
            (index for index, version in enumerate(self._versions) if workflow.patched(version)),
            None,
        )

    @property
    def versioned(self) -> bool:
        """Whether this run recorded a version marker (any): started since the first."""
        return self._recorded is not None

    def since(self, version: str) -> bool:
        """Whether this run recorded ``version`` or a newer one."""
        return self._recorded is not None and self._recorded <= self._versions.index(version)

    def applied(self, patch_id: str) -> bool:
        """Whether a patch from before the first version applies to this run; only runs
        started before it ask ``workflow.patched`` (which records its marker, or not, as
        before). Never for a change made since: give that a version (``since``)."""
        return self.versioned or workflow.patched(patch_id)
