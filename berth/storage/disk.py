"""What the registry's blob store holds on disk: blob count and bytes, and the filesystem's free space.

Garbage collection reports what it freed from these, measured before and after: the
blob files under ``docker/registry/v2/blobs`` (exact, whatever else shares the
filesystem) and ``statvfs`` of the storage path (what the NFS server sees).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BLOBS = Path("docker/registry/v2/blobs")


@dataclass(frozen=True)
class DiskUsage:
    """Blob files and the filesystem's space at one moment."""

    blobs: int
    blob_bytes: int
    free_bytes: int | None
    total_bytes: int | None


def blob_usage(root: Path) -> DiskUsage:
    """Count the blob ``data`` files under the registry root ``root`` and read its statvfs."""
    count = size = 0
    base = Path(root) / BLOBS
    for algorithm in _entries(base):
        for prefix in _entries(algorithm):
            for blob in _entries(prefix):
                try:
                    size += os.stat(os.path.join(blob.path, "data")).st_size
                    count += 1
                except FileNotFoundError:
                    continue
    free: int | None = None
    total: int | None = None
    try:
        stat = os.statvfs(root)
        free, total = stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize
    except OSError:
        pass
    return DiskUsage(count, size, free, total)


def _entries(path: Path | str | os.DirEntry) -> list[os.DirEntry]:
    try:
        with os.scandir(os.fspath(path)) as entries:
            return [e for e in entries if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
