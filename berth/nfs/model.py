"""What an NFS inspection holds: the storage's capacity and the report, with its JSON shape."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from berth.nfs.mounts import Mount
from berth.nfs.stats import NfsStats
from berth.report import ComponentReport


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


@dataclass(kw_only=True)
class NfsReport(ComponentReport):
    """What :func:`inspect` found about the registry's storage path."""

    path: Path
    mount: Mount | None = None
    stats: NfsStats | None = None
    capacity: Capacity | None = None
    probe_latency_ms: float | None = None
    repositories_on_disk: int | None = None

    def detail_dict(self) -> dict:
        """Mount, capacity, client counters and what the probes saw."""
        mount = self.mount
        return {
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
