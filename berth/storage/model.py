"""What storage accounting hands out: per-repository usage and the whole report, with their JSON shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ImageBlobs:
    """One image of a repository: its tags and every blob it references (manifests, configs, layers)."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    blobs: dict[str, int] = field(hash=False)
    created: datetime | None = None

    @property
    def size_bytes(self) -> int:
        """The bytes of its distinct blobs (what it would take alone)."""
        return sum(self.blobs.values())


@dataclass(frozen=True)
class RepositoryUsage:
    """One repository's share of the storage."""

    name: str
    tags: int
    images: int
    unique_bytes: int
    shared_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.unique_bytes + self.shared_bytes

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "tags": self.tags,
            "images": self.images,
            "unique_bytes": self.unique_bytes,
            "shared_bytes": self.shared_bytes,
        }


@dataclass(frozen=True)
class StorageReport:
    """The storage of the whole registry at ``computed_at``."""

    computed_at: datetime
    capacity: dict
    referenced_bytes: int
    blobs: int
    repositories: tuple[RepositoryUsage, ...]
    largest_image: dict | None = None
    newest_push: dict | None = None
    errors: tuple[str, ...] = ()
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """The JSON of ``GET /api/v1/storage``."""
        return {
            "computed_at": self.computed_at.isoformat().replace("+00:00", "Z"),
            "capacity": self.capacity,
            "referenced_bytes": self.referenced_bytes,
            "blobs": self.blobs,
            "repositories": [r.as_dict() for r in self.repositories],
            "largest_image": self.largest_image,
            "newest_push": self.newest_push,
            "errors": list(self.errors),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, data: dict) -> StorageReport:
        """The report stored as JSON (SQLite) back as a report."""
        return cls(
            computed_at=datetime.fromisoformat(data["computed_at"].replace("Z", "+00:00")),
            capacity=data.get("capacity") or {},
            referenced_bytes=data["referenced_bytes"],
            blobs=data.get("blobs", 0),
            repositories=tuple(RepositoryUsage(**r) for r in data["repositories"]),
            largest_image=data.get("largest_image"),
            newest_push=data.get("newest_push"),
            errors=tuple(data.get("errors") or ()),
            seconds=data.get("seconds", 0.0),
        )
