"""The audit trail within bounds, whatever a client sends.

The trail is workflow state: it is in every status answer and in the result, so it must
never grow towards Temporal's 2 MB payload limit, however many decisions a noisy or hostile
client sends. Three bounds (constants in ``models/limits.py``):
- every detail is cut to a fixed length, saying how long it was;
- refused decisions are itemised up to ``MAX_ITEMISED_REFUSALS``; later ones are counted;
- the other events are itemised within ``AUDIT_STORY_MAX_CHARS``; later ones are counted.
What is counted goes into one ``not_itemised`` entry, kept last, which names the latest
event it counted. The workflow's history still holds every signal and update.

Plain code, deterministic, run inside the workflow; it changes only what the trail shows,
never which commands the workflow issues.
"""

from dataclasses import dataclass, field

from temporalio import workflow

from models.limits import (
    AUDIT_STORY_MAX_CHARS,
    MAX_AUDIT_DETAIL_CHARS,
    MAX_ITEMISED_REFUSALS,
    MAX_REFUSAL_DETAIL_CHARS,
    cut,
)
from models.models import AuditEvent

REFUSED = "decision_refused"
NOT_ITEMISED = "not_itemised"
LATEST_SHOWN_CHARS = 200
# What an entry costs beside its event name and detail: its time and field names in JSON.
ENTRY_CHARS = 64


@dataclass
class AuditBounds:
    """What has been itemised and counted so far, beside the trail it bounds."""

    refusals_itemised: int = 0
    story_chars: int = 0
    refusals_counted: int = 0
    others_counted: int = 0

    def append(self, trail: list[AuditEvent], entry: AuditEvent) -> None:
        """Append ``entry`` to ``trail`` if it fits; otherwise count it in the summary."""
        refusal = entry.event == REFUSED
        limit = MAX_REFUSAL_DETAIL_CHARS if refusal else MAX_AUDIT_DETAIL_CHARS
        if len(entry.detail) > limit:
            entry = entry.model_copy(update={"detail": cut(entry.detail, limit)})
        cost = ENTRY_CHARS + len(entry.event) + len(entry.detail)
        if refusal and self.refusals_itemised < MAX_ITEMISED_REFUSALS:
            self.refusals_itemised += 1
        elif not refusal and self.story_chars + cost <= AUDIT_STORY_MAX_CHARS:
            self.story_chars += cost
        else:
            self._count(trail, entry, refusal)
            return
        trail.append(entry)

    def _count(self, trail: list[AuditEvent], entry: AuditEvent, refusal: bool) -> None:
        if refusal:
            self.refusals_counted += 1
        else:
            self.others_counted += 1
        earlier = [n for n, event in enumerate(trail) if event.event == NOT_ITEMISED]
        if earlier:  # one summary, kept last: it is as recent as what it counted last
            del trail[earlier[0]]
        counted = [
            f"{count:,} {what}"
            for count, what in (
                (self.refusals_counted, "more refused decisions"),
                (self.others_counted, "more events (the trail is full)"),
            )
            if count
        ]
        latest = cut(f"{entry.event}: {entry.detail}", LATEST_SHOWN_CHARS)
        detail = (
            f"{' and '.join(counted)} not itemised; the workflow history keeps every signal "
            f"and update. Latest: {latest}"
        )
        trail.append(AuditEvent(at=entry.at, event=NOT_ITEMISED, detail=detail))


@dataclass
class AuditTrail:
    """A run's audit trail: every event stamped with workflow time, within bounds."""

    events: list[AuditEvent] = field(default_factory=list)
    bounds: AuditBounds = field(default_factory=AuditBounds)

    def record(self, event: str, detail: str) -> None:
        """Append an event; the worker's log gets it too (its formatter makes it safe)."""
        self.bounds.append(self.events, AuditEvent(at=workflow.now(), event=event, detail=detail))
        workflow.logger.info("%s: %s", event, cut(detail, MAX_AUDIT_DETAIL_CHARS))

    @classmethod
    def carried(cls, events: list[AuditEvent]) -> "AuditTrail":
        """The trail a run carried into this one, with its bounds counted again."""
        trail = cls()
        for event in events:
            trail.bounds.append(trail.events, event)
        return trail

    @property
    def last_detail(self) -> str:
        return self.events[-1].detail if self.events else ""
