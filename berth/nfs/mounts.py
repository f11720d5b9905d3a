"""Reading the kernel's mount tables: ``/proc/self/mountinfo`` and ``/etc/fstab``.

Pure functions over text, no I/O, that never raise on odd input: a line they cannot
read is skipped. Formats, as the kernel writes them (``/proc/self/mountstats`` is
:mod:`berth.nfs.stats`):

- mountinfo (``fs/proc_namespace.c`` ``show_mountinfo``): ``ID PARENT MAJ:MIN ROOT
  MOUNTPOINT MOUNTOPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS``; paths escape space,
  tab, newline and backslash as octal (``\\040``). For NFS the super options are
  ``nfs_show_options`` (``fs/nfs/super.c``): ``rw,vers=3,rsize=..,hard,nolock,proto=tcp,
  timeo=600,retrans=2,sec=sys,mountaddr=..,local_lock=all,addr=..``.
- fstab (``fstab(5)``): ``SPEC FILE VFSTYPE OPTIONS [FREQ [PASSNO]]``, ``#`` comments.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

NFS_TYPES = frozenset({"nfs", "nfs4"})
_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(text: str) -> str:
    """Decode the kernel's octal escapes (``\\040`` is a space)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text)


def parse_options(text: str) -> dict[str, str | None]:
    """``rw,vers=3,hard`` -> ``{"rw": None, "vers": "3", "hard": None}``."""
    options: dict[str, str | None] = {}
    for item in text.split(","):
        if item:
            key, sep, value = item.partition("=")
            options[key] = value if sep else None
    return options


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``."""

    mount_id: int
    parent_id: int
    device: str
    root: str
    mount_point: str
    options: tuple[str, ...]
    fs_type: str
    source: str
    super_options: dict[str, str | None] = field(default_factory=dict, hash=False)

    @property
    def is_nfs(self) -> bool:
        """True for NFS (v2/v3 ``nfs``, v4.x ``nfs4``)."""
        return self.fs_type in NFS_TYPES

    @property
    def server(self) -> str | None:
        """The NFS server named in the source (``SERVER:/export``), else its ``addr=``."""
        host, sep, _ = self.source.partition(":/")
        if sep and host:
            return host
        return self.super_options.get("addr") if self.is_nfs else None

    @property
    def export(self) -> str | None:
        """The exported path on the server (``/docker``)."""
        _, sep, path = self.source.partition(":/")
        return "/" + path if sep else None

    @property
    def all_options(self) -> dict[str, str | None]:
        """Effective options: the super options plus the per-mount ones; ``ro`` on either wins."""
        merged = dict(self.super_options)
        merged.update(parse_options(",".join(self.options)))
        if "ro" in self.options or "ro" in self.super_options:
            merged.pop("rw", None)
            merged["ro"] = None
        return merged


@dataclass(frozen=True)
class FstabEntry:
    """One line of ``/etc/fstab``."""

    source: str
    mount_point: str
    fs_type: str
    options: tuple[str, ...]

    @property
    def is_nfs(self) -> bool:
        """True when the entry mounts NFS."""
        return self.fs_type in NFS_TYPES


def parse_mountinfo(text: str) -> list[Mount]:
    """Every readable line of ``/proc/self/mountinfo``, in the kernel's order."""
    mounts = []
    for line in text.splitlines():
        mount = _mountinfo_line(line.split())
        if mount is not None:
            mounts.append(mount)
    return mounts


def _mountinfo_line(parts: list[str]) -> Mount | None:
    if "-" not in parts[6:]:
        return None
    dash = parts.index("-", 6)
    tail = parts[dash + 1 :]
    if not tail or not parts[0].isdecimal() or not parts[1].isdecimal() or not parts[4].startswith("/"):
        return None
    return Mount(
        mount_id=int(parts[0]),
        parent_id=int(parts[1]),
        device=parts[2],
        root=unescape(parts[3]),
        mount_point=unescape(parts[4]),
        options=tuple(o for o in parts[5].split(",") if o),
        fs_type=tail[0],
        source=unescape(tail[1]) if len(tail) > 1 else "",
        super_options=parse_options(tail[2]) if len(tail) > 2 else {},
    )


def mount_for(path: object, mounts: list[Mount]) -> Mount | None:
    """The mount holding ``path``: the longest mount point on a component boundary, the last one if stacked."""
    text = _absolute(path)
    if text is None:
        return None
    best: tuple[int, int] | None = None
    found = None
    for index, mount in enumerate(mounts):
        point = mount.mount_point
        inside = point == "/" or text == point or text.startswith(point.rstrip("/") + "/")
        if inside and (best is None or (len(point), index) > best):
            best, found = (len(point), index), mount
    return found


def _absolute(path: object) -> str | None:
    """``path`` normalised as written (no symlinks resolved: that would touch the mount); None if relative."""
    text = posixpath.normpath(str(path))
    return "/" + text.lstrip("/") if text.startswith("/") else None


def parse_fstab(text: str) -> list[FstabEntry]:
    """Every readable entry of an fstab; comments and short lines are skipped."""
    entries = []
    for line in text.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) < 3:
            continue
        options = parts[3] if len(parts) > 3 else "defaults"
        entries.append(
            FstabEntry(
                source=unescape(parts[0]),
                mount_point=unescape(parts[1]),
                fs_type=parts[2],
                options=tuple(o for o in options.split(",") if o),
            )
        )
    return entries


def fstab_entry_for(path: object, entries: list[FstabEntry]) -> FstabEntry | None:
    """The last fstab entry whose mount point is exactly ``path``."""
    text = _absolute(path)
    matches = [e for e in entries if text is not None and _absolute(e.mount_point) == text]
    return matches[-1] if matches else None
