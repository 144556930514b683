"""Statuses of the runs a list shows, kept between page loads.

Which runs wait comes from visibility on every load, so a run appears or leaves at once.
A run's details (request, votes, stage) come from its status query, which a worker answers
one run at a time: a thousand of them per load would take seconds. So a run is queried
when first listed, and afterwards refreshed in the background once its answer is older
than ``FRESH_SECONDS``, at most ``CONCURRENT_QUERIES`` at a time (the rest wait for a later
load): a vote or an escalation reaches the list within seconds, a load never waits for
more than the runs it has not seen yet, and the workers answer a bounded stream of queries
however many people keep the list open.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

from models.models import WorkflowStatus

FRESH_SECONDS = 2.0
CONCURRENT_QUERIES = 32

Fetch = Callable[[str], Awaitable[WorkflowStatus | None]]


class StatusCache:
    def __init__(self, fetch: Fetch, fresh_seconds: float = FRESH_SECONDS) -> None:
        self._fetch = fetch
        self._fresh_seconds = fresh_seconds
        self._entries: dict[str, tuple[float, WorkflowStatus | None]] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._gate = asyncio.Semaphore(CONCURRENT_QUERIES)

    async def statuses(self, workflow_ids: list[str]) -> dict[str, WorkflowStatus | None]:
        listed = set(workflow_ids)
        for gone in self._entries.keys() - listed:  # decided or closed: forget it
            del self._entries[gone]
        unseen = [wid for wid in workflow_ids if wid not in self._entries]
        stale_before = time.monotonic() - self._fresh_seconds
        stale = sorted((at, wid) for wid, (at, _) in self._entries.items() if at < stale_before)
        for _, wid in stale:  # the oldest first
            self._refresh_later(wid)
        await asyncio.gather(*(self._refresh(wid) for wid in unseen))
        return {wid: self._entries[wid][1] for wid in workflow_ids if wid in self._entries}

    def forget(self, workflow_id: str) -> None:
        """Drop a run's entry (it was just decided here): the next load asks again."""
        self._entries.pop(workflow_id, None)

    async def _refresh(self, workflow_id: str) -> None:
        async with self._gate:
            status = await self._fetch(workflow_id)
        self._entries[workflow_id] = (time.monotonic(), status)

    def _refresh_later(self, workflow_id: str) -> None:
        if workflow_id in self._refreshing or len(self._refreshing) >= CONCURRENT_QUERIES:
            return
        task = asyncio.create_task(self._refresh(workflow_id))
        self._refreshing[workflow_id] = task
        task.add_done_callback(lambda _: self._refreshing.pop(workflow_id, None))
