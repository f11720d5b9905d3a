"""What the registry tells Berth, as frozen dataclasses handed out by this package."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: Actions Distribution sends (``mount``: a blob mounted from another repository).
ACTIONS = frozenset({"push", "pull", "delete", "mount"})
#: Actions that appear in the activity feed (pulls are only counted).
LISTED = ("push", "delete")


@dataclass(frozen=True)
class RegistryEvent:
    """One event of the registry's notification envelope, as Berth keeps it."""

    id: str
    at: datetime
    action: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    media_type: str | None = None
    size: int | None = None
    actor: str | None = None
    source_addr: str | None = None
    request_addr: str | None = None
    user_agent: str | None = None

    @property
    def is_manifest(self) -> bool:
        """Whether this event is about a manifest (or a tag), not a layer or config blob."""
        if self.action == "delete":
            return True  # Distribution sends deletes for manifests and tags only
        media_type = self.media_type or ""
        return bool(self.tag) or ("manifest" in media_type or "image.index" in media_type)

    @property
    def namespace(self) -> str:
        """The first path segment of the repository (the Prometheus label)."""
        return self.repository.split("/", 1)[0]


@dataclass(frozen=True)
class Activity:
    """A listed event (push or delete) as the activity feed shows it."""

    seq: int
    id: str
    at: datetime
    action: str
    repository: str
    tag: str | None
    digest: str | None
    size: int | None
    actor: str | None
    source_addr: str | None

    def as_dict(self) -> dict:
        """The JSON shape of ``GET /api/v1/events``."""
        return {
            "id": self.id,
            "action": self.action,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "size": self.size,
            "actor": self.actor,
            "source": self.source_addr,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class PullSummary:
    """Pull counts of a repository (or one tag) over the last 7 and 30 days."""

    last_7_days: int
    last_30_days: int
    last_pushed: datetime | None = None
    last_pulled: datetime | None = None


@dataclass(frozen=True)
class IngestResult:
    """What one envelope did: events received, newly stored, ignored (blobs, unknown actions)."""

    received: int
    stored: int
    ignored: int
