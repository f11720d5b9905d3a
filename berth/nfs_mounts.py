"""Reading the kernel's mount tables: ``/proc/self/mountinfo``, ``/proc/self/mountstats``, ``/etc/fstab``.

Pure functions over text, no I/O, that never raise on odd input: a line they cannot
read is skipped. Formats, as the kernel writes them:

- mountinfo (``fs/proc_namespace.c`` ``show_mountinfo``): ``ID PARENT MAJ:MIN ROOT
  MOUNTPOINT MOUNTOPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS``; paths escape space,
  tab, newline and backslash as octal (``\\040``). For NFS the super options are
  ``nfs_show_options`` (``fs/nfs/super.c``): ``rw,vers=3,rsize=..,hard,nolock,proto=tcp,
  timeo=600,retrans=2,sec=sys,mountaddr=..,local_lock=all,addr=..``.
- mountstats (``nfs_show_stats`` and ``net/sunrpc/stats.c``): a ``device SRC mounted on
  PATH with fstype nfs statvers=1.1`` line, then tab-indented ``opts:``, ``age:``,
  ``xprt:`` and, after ``per-op statistics``, one ``NAME: ops trans timeouts sent recv
  queue_ms rtt_ms exe_ms [errors]`` line per operation.
- fstab (``fstab(5)``): ``SPEC FILE VFSTYPE OPTIONS [FREQ [PASSNO]]``, ``#`` comments.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from berth.findings import Finding, Level

NFS_TYPES = frozenset({"nfs", "nfs4"})
_OCTAL = re.compile(r"\\([0-7]{3})")
# Field names of the xprt: line, per transport (net/sunrpc/xprtsock.c xs_*_print_stats).
_XPRT_FIELDS = {
    "tcp": (
        "srcport",
        "bind_count",
        "connect_count",
        "connect_time",
        "idle_time",
        "sends",
        "recvs",
        "bad_xids",
        "req_u",
        "bklog_u",
        "max_slots",
        "sending_u",
        "pending_u",
    ),
    "udp": (
        "srcport",
        "bind_count",
        "sends",
        "recvs",
        "bad_xids",
        "req_u",
        "bklog_u",
        "max_slots",
        "sending_u",
        "pending_u",
    ),
    "rdma": (
        "srcport",
        "bind_count",
        "connect_count",
        "connect_time",
        "idle_time",
        "sends",
        "recvs",
        "bad_xids",
        "req_u",
        "bklog_u",
    ),
}


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


@dataclass(frozen=True)
class OpStats:
    """Counters of one RPC operation since mount (times are cumulative milliseconds)."""

    ops: int
    transmissions: int
    major_timeouts: int
    bytes_sent: int = 0
    bytes_received: int = 0
    queue_ms: int = 0
    rtt_ms: int = 0
    execute_ms: int = 0
    errors: int | None = None

    @property
    def retransmissions(self) -> int:
        """Transmissions beyond the first of each operation."""
        return max(0, self.transmissions - self.ops)

    @property
    def avg_rtt_ms(self) -> float:
        """Mean time from sending a request to its reply."""
        return self.rtt_ms / self.ops if self.ops else 0.0

    @property
    def avg_exe_ms(self) -> float:
        """Mean time from queueing a request to its completion."""
        return self.execute_ms / self.ops if self.ops else 0.0


@dataclass(frozen=True)
class NfsStats:
    """The mountstats block of one NFS mount."""

    device: str
    mount_point: str
    fs_type: str
    options: dict[str, str | None] = field(default_factory=dict, hash=False)
    age_seconds: int | None = None
    transport: str | None = None
    xprt: dict[str, int] = field(default_factory=dict, hash=False)
    ops: dict[str, OpStats] = field(default_factory=dict, hash=False)

    @property
    def major_timeouts(self) -> int:
        """Requests that went unanswered through all their retries, summed over operations."""
        return sum(op.major_timeouts for op in self.ops.values())

    @property
    def retransmissions(self) -> int:
        """Retransmissions summed over operations."""
        return sum(op.retransmissions for op in self.ops.values())

    @property
    def total_ops(self) -> int:
        """Operations of every kind since mount."""
        return sum(op.ops for op in self.ops.values())


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


def parse_mountstats(text: str) -> dict[str, NfsStats]:
    """The NFS blocks of ``/proc/self/mountstats``, keyed by mount point (the last one wins)."""
    result: dict[str, NfsStats] = {}
    block: dict | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("device "):
            _finish(block, result)
            block = _device_line(line)
        elif block is not None:
            _block_line(block, line)
    _finish(block, result)
    return result


def _device_line(line: str) -> dict | None:
    match = re.match(r"device (\S+) mounted on (\S+) with fstype (\S+)", line)
    if match is None or match.group(3) not in NFS_TYPES:
        return None
    device, point, fs_type = (unescape(g) for g in match.groups())
    return {
        "device": device,
        "mount_point": point,
        "fs_type": fs_type,
        "options": {},
        "age": None,
        "transport": None,
        "xprt": {},
        "ops": {},
        "per_op": False,
    }


def _block_line(block: dict, line: str) -> None:
    key, sep, rest = line.partition(":")
    if not sep:
        block["per_op"] = block["per_op"] or line == "per-op statistics"
        return
    rest = rest.strip()
    if block["per_op"]:
        numbers = _numbers(rest)
        if key and len(numbers) >= 8:
            block["ops"][key] = OpStats(*numbers[:8], errors=numbers[8] if len(numbers) > 8 else None)
    elif key == "opts":
        block["options"] = parse_options(rest)
    elif key == "age":
        ages = _numbers(rest)
        block["age"] = ages[0] if ages else None
    elif key == "xprt":
        _xprt_line(block, rest.split())


def _xprt_line(block: dict, parts: list[str]) -> None:
    """One ``xprt:`` line; with ``nconnect`` there is one per connection, and the counters add up."""
    if not parts:
        return
    transport, numbers = parts[0], _numbers(" ".join(parts[1:]))
    block["transport"] = block["transport"] or transport
    names = _XPRT_FIELDS.get(transport, ())
    for name, value in zip(names, numbers, strict=False):
        if name == "srcport":
            block["xprt"].setdefault(name, value)
        else:
            block["xprt"][name] = block["xprt"].get(name, 0) + value
    block["xprt"]["connections"] = block["xprt"].get("connections", 0) + 1


def _numbers(text: str) -> list[int]:
    """Leading integers of ``text``, stopping at the first word that is not one."""
    numbers = []
    for word in text.split():
        try:
            numbers.append(int(word))
        except ValueError:
            break
    return numbers


def _finish(block: dict | None, result: dict[str, NfsStats]) -> None:
    if block is None:
        return
    result[block["mount_point"]] = NfsStats(
        device=block["device"],
        mount_point=block["mount_point"],
        fs_type=block["fs_type"],
        options=block["options"],
        age_seconds=block["age"],
        transport=block["transport"],
        xprt=block["xprt"],
        ops=block["ops"],
    )


# --- what the options and counters mean for a registry -------------------------------------------


def option_findings(mount: Mount, *, path: str | None = None, write_probe: bool = True) -> list[Finding]:
    """Compare a live NFS mount with the reference ``hard,rw,bg,vers=3,tcp,nolock,timeo=600``."""
    opts, where = mount.all_options, path or mount.mount_point
    vers, proto = opts.get("vers") or "?", opts.get("proto") or "?"
    hardness = "soft" if "soft" in opts or "softerr" in opts else "hard"
    said = f"{where} is NFS v{vers} over {proto} from {mount.source}, {hardness}, {'ro' if 'ro' in opts else 'rw'}."
    findings = [Finding(Level.OK, said)]
    if hardness == "soft":
        findings.append(
            Finding(
                Level.CRITICAL,
                f"{where} is a soft mount: when the server is slow the kernel returns I/O errors to the registry "
                "mid-write, leaving partial or corrupt blobs (silent data loss).",
                f"Remount with 'hard' (the default): umount {where}; mount -o hard,rw,vers=3,tcp,nolock,timeo=600 ...; "
                "and change /etc/fstab to match.",
            )
        )
    if "ro" in mount.super_options:
        findings.append(
            Finding(
                Level.CRITICAL,
                f"{where} is mounted read-only: pushes to the registry fail.",
                f"Remount read-write (mount -o remount,rw {where}) and check that the export "
                "allows writes from this node.",
            )
        )
    elif "ro" in opts:
        level = Level.WARNING if write_probe else Level.INFO
        findings.append(
            Finding(
                level,
                f"Berth sees {where} through a read-only bind mount; the NFS mount itself is read-write.",
                "Fine if Berth is meant to read only; then turn the write probe off (BERTH_NFS_WRITE_PROBE=0)."
                if write_probe
                else "",
            )
        )
    if proto.startswith("udp"):
        findings.append(
            Finding(
                Level.WARNING,
                f"{where} is mounted over UDP: large writes are fragmented and "
                "retransmitted whole, and fail under load.",
                "Remount with 'tcp' (proto=tcp).",
            )
        )
    if "nolock" in opts or opts.get("local_lock") == "all":
        findings.append(
            Finding(
                Level.INFO,
                f"{where} uses local locking only (nolock): fine with one registry writer per node, but the server "
                "does not coordinate writers on several nodes.",
                "Pure's guidance for newer FlashBlade releases is to keep locking: drop 'nolock' when more than one "
                "node writes, or run a single registry replica.",
            )
        )
    if opts.get("timeo") not in (None, "600"):
        findings.append(
            Finding(
                Level.INFO,
                f"{where} has timeo={opts['timeo']} (tenths of a second before a retry); the reference is 600.",
                "Mount with timeo=600.",
            )
        )
    if "vers" in opts and vers != "3" and not vers.startswith("4"):
        findings.append(
            Finding(
                Level.INFO,
                f"{where} speaks NFS version {vers}; the reference is 3 (4.1 works too).",
                "Mount with vers=3.",
            )
        )
    return findings


def stats_findings(stats: NfsStats) -> list[Finding]:
    """What the RPC counters since mount say: requests that timed out completely, retransmissions."""
    findings = []
    if stats.major_timeouts:
        findings.append(
            Finding(
                Level.WARNING,
                f"{stats.major_timeouts} NFS requests went unanswered through all retries since the mount "
                f"({stats.age_seconds or 0} s ago): the server stopped responding at times.",
                "Look for 'server not responding' in the kernel log (dmesg) and check the server's load and network.",
            )
        )
    total = stats.total_ops
    if total >= 1000 and stats.retransmissions * 100 > total:
        share = 100.0 * stats.retransmissions / total
        findings.append(
            Finding(
                Level.WARNING,
                f"{share:.1f} % of NFS requests were retransmitted ({stats.retransmissions} of {total}).",
                "Check the network between this node and the server (drops, MTU).",
            )
        )
    return findings
