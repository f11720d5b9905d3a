"""What an NFS inspection holds: the storage's capacity and the report, with its JSON shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from berth.findings import Finding, Level, worst
from berth.nfs.mounts import Mount
from berth.nfs.stats import NfsStats


@dataclass(frozen=True)
class Capacity:
    """Space and inodes as ``statvfs`` reports them to an unprivileged writer."""

    total_bytes: int
    free_bytes: int
    inodes_total: int | None = None
    inodes_free: int | None = None

    @property
    def free_percent(self) -> float | None:
        """Free space as a percentage of the total."""
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else None

    @property
    def inodes_free_percent(self) -> float | None:
        """Free inodes as a percentage of the total (None when the server reports none)."""
        return 100.0 * (self.inodes_free or 0) / self.inodes_total if self.inodes_total else None


@dataclass
class NfsReport:
    """What :func:`inspect` found about the registry's storage path."""

    path: Path
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    mount: Mount | None = None
    stats: NfsStats | None = None
    capacity: Capacity | None = None
    probe_latency_ms: float | None = None
    repositories_on_disk: int | None = None
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        """No critical finding and no error."""
        return self.error is None and worst(self.findings) != Level.CRITICAL

    def as_dict(self) -> dict:
        """JSON-ready, in the shape of the ``/api/v1/status`` parts: ok, error, findings, details."""
        mount = self.mount
        details = {
            "path": str(self.path),
            "mount": None
            if mount is None
            else {
                "mount_point": mount.mount_point,
                "fs_type": mount.fs_type,
                "source": mount.source,
                "server": mount.server,
                "export": mount.export,
                "options": mount.all_options,
            },
            "capacity": None
            if self.capacity is None
            else {
                "total_bytes": self.capacity.total_bytes,
                "free_bytes": self.capacity.free_bytes,
                "inodes_total": self.capacity.inodes_total,
                "inodes_free": self.capacity.inodes_free,
            },
            "stats": None if self.stats is None else _stats_details(self.stats),
            "probe_latency_ms": self.probe_latency_ms,
            "repositories_on_disk": self.repositories_on_disk,
        }
        return {
            "ok": self.ok,
            "error": self.error,
            "findings": [f.as_dict() for f in self.findings],
            "details": details,
            "checked_at": self.checked_at.isoformat(),
        }


def _stats_details(stats: NfsStats) -> dict:
    ops = {
        name: {
            "ops": op.ops,
            "retransmissions": op.retransmissions,
            "major_timeouts": op.major_timeouts,
            "avg_rtt_ms": round(op.avg_rtt_ms, 3),
            "avg_exe_ms": round(op.avg_exe_ms, 3),
        }
        for name, op in stats.ops.items()
        if op.ops
    }
    return {
        "transport": stats.transport,
        "age_seconds": stats.age_seconds,
        "major_timeouts": stats.major_timeouts,
        "retransmissions": stats.retransmissions,
        "xprt": stats.xprt,
        "ops": ops,
    }
