"""Receiving one envelope: parse it, keep what matters, store it once, update the catalog, count it.

Kept: manifest events (pushes, deletes, mounts and pulls by tag or digest). Not kept:
layer and config blobs (the registry endpoint can also be told to skip them with
``ignoredmediatypes``), actions Berth does not know, and Berth's own reads of the
registry (its HEAD revalidations would otherwise count as pulls).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from berth.catalog.service import CatalogService
from berth.events.model import ACTIONS, IngestResult, PullSummary, RegistryEvent
from berth.events.parse import parse_envelope
from berth.events.store import EventStore

EVENTS = Counter(
    "berth_registry_events",
    "Registry events Berth received and stored (each once), by action and repository namespace.",
    ["action", "namespace"],
)
OWN_USER_AGENT = "berth"  # what berth.registry.client sends


def kept(event: RegistryEvent) -> bool:
    """Whether Berth stores ``event`` (see the module docstring)."""
    if event.action not in ACTIONS or not event.is_manifest:
        return False
    return not (event.action == "pull" and event.user_agent == OWN_USER_AGENT)


class EventIngest:
    """The receiver's domain side and the questions pages ask about activity."""

    def __init__(self, store: EventStore, catalog: CatalogService):
        self.store = store
        self.catalog = catalog

    def receive(self, body: bytes, content_type: str | None) -> IngestResult:
        """Parse, store once, apply to the catalog; BadRequest (nothing stored) when the envelope is wrong."""
        events = parse_envelope(body, content_type)
        wanted = [e for e in events if kept(e)]
        new = self.store.record(wanted)
        self.catalog.apply_events(new)
        for event in new:
            EVENTS.labels(event.action, event.namespace).inc()
        return IngestResult(received=len(events), stored=len(new), ignored=len(events) - len(wanted))

    def summary(self, repository: str, tag: str | None = None, now: datetime | None = None) -> PullSummary:
        """Pulls in the last 7 and 30 days (of one tag, or all), and when it was last pushed."""
        today = (now or datetime.now(UTC)).date()
        return PullSummary(
            last_7_days=self.store.pulls_since(repository, today - timedelta(days=6), tag),
            last_30_days=self.store.pulls_since(repository, today - timedelta(days=29), tag),
            last_pushed=self.store.last_pushed(repository),
        )
