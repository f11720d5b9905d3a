"""The registry's NFS storage: how it is mounted, whether it answers, whether it is the storage the registry uses.

:func:`inspect` is the entry point. Everything that touches the mount (stat, statvfs,
a small write/read/delete, the repository walk) runs in a forked child with a deadline:
a process stuck on a hung hard mount cannot be killed or reaped promptly, so the caller
never waits for it. On the deadline the child gets SIGKILL and is left behind; it is
reaped later with ``waitpid(WNOHANG)`` (:func:`reap_abandoned`). Reading ``/proc`` and
``/etc/fstab`` never touches the mount and happens in the caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import json
import os
import posixpath
import select
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from berth.errors import UpstreamUnavailable
from berth.findings import Finding, Level, worst
from berth.nfs_mounts import (
    FstabEntry,
    Mount,
    NfsStats,
    OpStats,
    fstab_entry_for,
    mount_for,
    option_findings,
    parse_fstab,
    parse_mountinfo,
    parse_mountstats,
    stats_findings,
)

__all__ = [
    "Capacity",
    "ChildResult",
    "FstabEntry",
    "Mount",
    "NfsReport",
    "NfsStats",
    "OpStats",
    "boot_order_findings",
    "capacity_findings",
    "divergence",
    "error_finding",
    "inspect",
    "mount_for",
    "option_findings",
    "parse_fstab",
    "parse_mountinfo",
    "parse_mountstats",
    "fstab_entry_for",
    "placement_findings",
    "reap_abandoned",
    "repositories_on_disk",
    "run_in_child",
    "stats_findings",
]

GIB = 1024**3
REPOSITORIES = "docker/registry/v2/repositories"
WALK_LIMIT = 100_000
PR_SET_PDEATHSIG = 1
try:  # resolved here, in the parent: dlopen in a forked child of a threaded process can deadlock
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None
REFERENCE_FSTAB = "SERVER:/docker {path} nfs hard,rw,bg,vers=3,tcp,nolock,timeo=600 0 0"


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


# --- rules over what was seen (pure) ---------------------------------------------------------


def capacity_findings(capacity: Capacity) -> list[Finding]:
    """Space: warning under 15 % or 10 GiB free, critical under 5 % or 2 GiB; inodes: 10 % and 2 %."""
    free_gib, total_gib, percent = capacity.free_bytes / GIB, capacity.total_bytes / GIB, capacity.free_percent
    said = f"{free_gib:.1f} GiB free of {total_gib:.1f} GiB" + (f" ({percent:.1f} %)" if percent is not None else "")
    fix = "Delete unused tags and run the registry's garbage collection, or grow the export on the NFS server."
    if capacity.free_bytes < 2 * GIB or (percent is not None and percent < 5):
        findings = [Finding(Level.CRITICAL, f"The registry storage is almost full: {said}; pushes will fail.", fix)]
    elif capacity.free_bytes < 10 * GIB or (percent is not None and percent < 15):
        findings = [Finding(Level.WARNING, f"The registry storage is filling up: {said}.", fix)]
    else:
        findings = [Finding(Level.OK, f"Space: {said}.")]
    inodes = capacity.inodes_free_percent
    if inodes is not None and inodes < 10:
        level = Level.CRITICAL if inodes < 2 else Level.WARNING
        findings.append(
            Finding(
                level,
                f"Only {inodes:.1f} % of inodes are free ({capacity.inodes_free:,} of "
                f"{capacity.inodes_total:,}): every layer and link takes some.",
                "Raise the inode count of the export on the NFS server, or clean up as for space.",
            )
        )
    return findings


def boot_order_findings(path: str, fstab: FstabEntry | None) -> list[Finding]:
    """The fstab ``bg`` trap: the registry can start, and write locally, before the share is mounted."""
    if fstab is None or "bg" not in fstab.options:
        return []
    return [
        Finding(
            Level.WARNING,
            f"/etc/fstab mounts {path} with 'bg': at boot Docker can start the registry before the background "
            "mount completes; its task then writes into the local directory under the mount point, and those "
            "images vanish from view when the mount arrives.",
            "Drop 'bg' (mount in the foreground) and add '_netdev'; make Docker wait for the mount "
            f"(systemd: RequiresMountsFor={path} in a docker.service drop-in).",
        )
    ]


def placement_findings(
    path: str, mount: Mount | None, fstab: FstabEntry | None, *, expect_nfs: bool = False
) -> list[Finding]:
    """Is ``path`` on the NFS share it should be on? (``path`` resolved, ``mount`` the one holding it.)"""
    should_be_nfs = expect_nfs or (fstab is not None and fstab.is_nfs)
    if mount is not None and mount.is_nfs and (mount.mount_point == path or fstab is None):
        return []
    where = "an unknown file system" if mount is None else f"{mount.fs_type} ({mount.source} at {mount.mount_point})"
    if should_be_nfs:
        share = f" {fstab.source}" if fstab is not None else ""
        return [
            Finding(
                Level.CRITICAL,
                f"NFS share{share} not mounted: {path} is on {where}, so the registry writes to the local disk "
                "under the mount point.",
                f"Stop the registry (docker service scale registry=0), mount the share (mount {path}), move anything "
                "written to the local directory meanwhile onto the share, then scale the registry back up.",
            )
        ]
    return [
        Finding(
            Level.WARNING,
            f"{path} is not on NFS but on {where}: only this node sees the data (Swarm may reschedule the "
            "registry to a node that has none of it).",
            f"Mount the NFS share at {path} on every Swarm node, e.g. in /etc/fstab: "
            f"{REFERENCE_FSTAB.format(path=path)}; or pin the registry to this node.",
        )
    ]


def divergence(on_disk: set[str], catalog: set[str], *, path: str = "the storage") -> list[Finding]:
    """Compare the repositories on disk with the registry's catalog; any difference is critical."""
    only_catalog, only_disk = sorted(catalog - on_disk), sorted(on_disk - catalog)
    if not only_catalog and not only_disk:
        return [Finding(Level.OK, f"The {len(on_disk)} repositories in {path} match the registry's catalog.")]
    parts = []
    if only_catalog:
        parts.append(f"{len(only_catalog)} only in the catalog ({_sample(only_catalog)})")
    if only_disk:
        parts.append(f"{len(only_disk)} only on disk ({_sample(only_disk)})")
    return [
        Finding(
            Level.CRITICAL,
            f"The registry does not use the storage Berth sees in {path}: " + "; ".join(parts) + ".",
            "Check on the node running the registry task that the share is mounted (findmnt on the path) and that "
            "storage.filesystem.rootdirectory points at it; a registry started before its NFS mount writes to the "
            "local directory underneath. Move such stray repositories onto the share.",
            f"{len(on_disk)} repositories on disk, {len(catalog)} in the catalog.",
        )
    ]


def _sample(names: list[str], count: int = 5) -> str:
    return ", ".join(names[:count]) + (", …" if len(names) > count else "")


def error_finding(stage: str, code: int, reason: str, path: str) -> Finding:
    """What an errno met by a probe stage (stat, statvfs, write, walk, probe) means for the registry."""
    subject = {
        "stat": f"{path} cannot be looked at",
        "statvfs": f"The size of {path} cannot be read",
        "write": f"Berth cannot write a test file in {path}",
        "walk": f"The repositories in {path} cannot be listed",
    }.get(stage, f"{path} cannot be probed")
    if code == errno.ESTALE:
        return Finding(
            Level.CRITICAL,
            f"{path}: stale file handle; the server no longer knows the exported directory.",
            f"Remount: umount -f {path} && mount {path} (umount -l if busy), then restart the registry's "
            "tasks on this node (docker service update --force registry).",
        )
    if code == errno.ENOENT and stage == "stat":
        return Finding(
            Level.CRITICAL,
            f"{path} does not exist.",
            f"Create the mount point (mkdir -p {path}) and mount the NFS share on it (mount {path}).",
        )
    if code in (errno.EACCES, errno.EPERM):
        return Finding(
            Level.WARNING,
            f"{subject}: permission denied; if the registry runs as the same user, it fails too.",
            "Check the export's squash options and the owner of the directory, or turn the write probe off "
            "(BERTH_NFS_WRITE_PROBE=0) if Berth is meant to read only.",
        )
    if code == errno.EROFS:
        return Finding(
            Level.CRITICAL,
            f"{path} is read-only: pushes to the registry fail.",
            "Check that the export is read-write for this node, then remount.",
        )
    if code in (errno.ENOSPC, errno.EDQUOT):
        return Finding(
            Level.CRITICAL,
            f"{path} is full ({reason}): pushes to the registry fail.",
            "Free space (garbage collection) or grow the export.",
        )
    return Finding(
        Level.CRITICAL,
        f"{subject}: {reason} (errno {code}).",
        "Check the NFS server and the network; kernel messages (dmesg) name the failing server.",
    )


# --- running code where a hung mount cannot reach the caller ----------------------------------


@dataclass(frozen=True)
class ChildResult:
    """What a child reported before it finished, failed or ran out of time."""

    messages: list[dict]
    timed_out: bool = False
    failure: str | None = None
    elapsed_ms: float = 0.0


_abandoned: set[int] = set()
_abandoned_lock = threading.Lock()


def reap_abandoned() -> int:
    """Reap killed children that have exited since; return how many are still stuck."""
    with _abandoned_lock:
        for pid in list(_abandoned):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): nothing left to do
                done = pid
            if done:
                _abandoned.discard(pid)
        return len(_abandoned)


def run_in_child(fn: Callable[..., Iterable[dict]], *args: object, deadline: float) -> ChildResult:
    """Run ``fn(*args)`` in a forked child; collect the dicts it yields until it ends or ``deadline`` seconds pass.

    Never waits for the child beyond the deadline: a late child is killed and abandoned.
    """
    reap_abandoned()
    started = time.monotonic()
    read_fd, write_fd = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        return ChildResult([], failure=f"cannot start a probe process: {exc.strerror}")
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        _child_main(read_fd, write_fd, fn, args, parent)
    os.close(write_fd)
    try:
        messages, finished, failure = _collect(read_fd, started + deadline)
    finally:
        os.close(read_fd)
    _settle(pid, finished)
    elapsed = (time.monotonic() - started) * 1000
    return ChildResult(messages, timed_out=not finished, failure=failure, elapsed_ms=elapsed)


def _child_main(read_fd: int, write_fd: int, fn: Callable[..., Iterable[dict]], args: tuple, parent: int) -> None:
    """In the child: keep only the pipe, stream each result as a JSON line, and leave without cleanup."""
    code = 0
    try:
        gc.disable()  # no finalizer may run on objects whose descriptors are closed below
        _die_with_parent(parent)
        os.close(read_fd)
        os.closerange(3, write_fd)
        os.closerange(write_fd + 1, _max_fd())
        _detach_stdio()
        for message in fn(*args):
            _send(write_fd, {"message": message})
    except OSError as exc:  # a system error the function did not expect is still an answer about the mount
        with contextlib.suppress(BaseException):
            _send(write_fd, {"message": _oserror("probe", exc)})
    except BaseException as exc:  # anything else: report it, never return into the parent's code
        code = 1
        with contextlib.suppress(BaseException):  # the parent may be gone; nothing else to do
            _send(write_fd, {"failure": f"{type(exc).__name__}: {exc}"})
    finally:
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this child when the thread that forked it exits (Linux).

    A probe stuck on a hung mount must not outlive the gunicorn worker that started it
    (a restart or deploy would otherwise leave one orphan per stuck probe).
    """
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _detach_stdio() -> None:
    """Point 0-2 at /dev/null so a stuck child holds none of the worker's pipes open."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _max_fd() -> int:
    try:
        return min(os.sysconf("SC_OPEN_MAX"), 1 << 20)
    except (OSError, ValueError):
        return 4096


def _send(fd: int, payload: dict) -> None:
    data = memoryview(json.dumps(payload).encode() + b"\n")
    while data:
        data = data[os.write(fd, data) :]


def _collect(fd: int, until: float) -> tuple[list[dict], bool, str | None]:
    """Read JSON lines from ``fd`` until end of file (finished) or ``until`` (not finished)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    buffer, messages, failure = bytearray(), [], None
    while True:
        remaining = until - time.monotonic()
        if remaining <= 0:
            return messages, False, failure
        if not poller.poll(remaining * 1000):
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return messages, True, failure if failure or not buffer else "the probe's output was cut short"
        buffer += chunk
        *lines, rest = buffer.split(b"\n")
        buffer = bytearray(rest)
        for line in lines:
            try:
                record = json.loads(line)
                if "failure" in record:
                    failure = str(record["failure"])
                else:
                    messages.append(record["message"])
            except (ValueError, TypeError, KeyError):
                failure = "the probe's output was garbled"


def _settle(pid: int, finished: bool) -> None:
    """Reap ``pid`` if it has exited; otherwise kill it and leave it for :func:`reap_abandoned`."""
    if not finished:
        _kill(pid)
    for _ in range(20 if finished else 5):  # a child that closed its pipe is exiting: give it a moment
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.001)
    _kill(pid)
    with _abandoned_lock:
        _abandoned.add(pid)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# --- what the child does -----------------------------------------------------------------------


def _probe(path: str, write: bool, probe_name: str, walk_until: float, limit: int) -> Iterator[dict]:
    """Child side: stat, statvfs, the write probe and the walk, one message per stage, stopping at a failure."""
    started = time.monotonic()
    try:
        real = os.path.realpath(path)
        mode = os.stat(real).st_mode
    except OSError as exc:
        yield _oserror("stat", exc)
        return
    yield {"stage": "stat", "realpath": real, "is_dir": stat.S_ISDIR(mode), "ms": _ms(started)}
    if not stat.S_ISDIR(mode):
        return
    try:
        vfs = os.statvfs(real)
    except OSError as exc:
        yield _oserror("statvfs", exc)
        return
    yield {
        "stage": "statvfs",
        "total": vfs.f_blocks * vfs.f_frsize,
        "free": vfs.f_bavail * vfs.f_frsize,
        "files": vfs.f_files,
        "ffree": vfs.f_favail,
    }
    if write:
        yield _write_probe(os.path.join(real, probe_name))
    yield _walk(real, walk_until, limit)


def _oserror(stage: str, exc: OSError) -> dict:
    return {"stage": stage, "errno": exc.errno or 0, "reason": exc.strerror or str(exc)}


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 3)


def _write_probe(name: str) -> dict:
    """Write, fsync, read back and delete a small file; report the time it took."""
    payload = f"berth probe {time.time()}\n".encode()
    started = time.monotonic()
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)  # make the server commit it, not just the client cache
        finally:
            os.close(fd)
        fd = os.open(name, os.O_RDONLY)
        try:
            echoed = os.read(fd, len(payload) + 1)
        finally:
            os.close(fd)
        os.unlink(name)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(name)
        return _oserror("write", exc)
    return {"stage": "write", "ms": _ms(started), "intact": echoed == payload}


def _walk(root: str, until: float, limit: int) -> dict:
    """The repository names under ``root``: directories holding ``_manifests`` or ``_layers``."""
    base = os.path.join(root, REPOSITORIES)
    if not os.path.isdir(base):
        return {"stage": "walk", "repositories": [], "truncated": False, "missing": True}
    names, pending, truncated = [], [("", base)], False
    try:
        while pending:
            if len(names) >= limit or time.monotonic() > until:
                truncated = True
                break
            prefix, directory = pending.pop()
            with os.scandir(directory) as entries:
                children = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
            if "_manifests" in children or "_layers" in children:
                names.append(prefix)
            # Repository name components never start with "_": _manifests, _layers, _uploads hold data.
            pending += [
                (f"{prefix}/{c}" if prefix else c, os.path.join(directory, c))
                for c in children
                if not c.startswith("_")
            ]
    except OSError as exc:
        return _oserror("walk", exc)
    return {"stage": "walk", "repositories": sorted(n for n in names if n), "truncated": truncated, "missing": False}


def repositories_on_disk(root: Path, *, deadline: float = 3.0, limit: int = WALK_LIMIT) -> set[str]:
    """The repositories stored under ``root`` (walked in a child process, bounded by ``limit`` and ``deadline``).

    Raises :class:`UpstreamUnavailable` when the walk fails or does not finish.
    """
    until = time.monotonic() + deadline * 0.8
    result = run_in_child(lambda: iter([_walk(str(root), until, limit)]), deadline=deadline)
    walked = result.messages[0] if result.messages else {}
    if result.timed_out or result.failure or "errno" in walked or walked.get("truncated"):
        reason = walked.get("reason") or result.failure or f"no answer within {deadline:g} s"
        raise UpstreamUnavailable(
            f"Cannot list the repositories in {root}: {reason}", upstream="nfs", timeout=result.timed_out
        )
    return set(walked.get("repositories", []))


# --- putting it together ------------------------------------------------------------------------


def inspect(
    path: Path,
    *,
    mountinfo_path: str = "/proc/self/mountinfo",
    mountstats_path: str = "/proc/self/mountstats",
    fstab_path: str = "/etc/fstab",
    deadline: float = 3.0,
    write_probe: bool = True,
    catalog: set[str] | None = None,
    expect_nfs: bool = False,
) -> NfsReport:
    """Check the registry's storage at ``path``; returns within about ``deadline`` seconds, whatever the mount does.

    ``catalog`` (the registry's repository names), when given, is compared with what is on disk.
    ``expect_nfs`` makes a path that is not on NFS critical even without an fstab entry (containers).
    """
    report = NfsReport(path=Path(path))
    given = posixpath.normpath(str(path))
    until = time.monotonic() + deadline * 0.8  # the walk stops early enough to report in time
    probe_name = f".berth-probe-{socket.gethostname()}-{os.getpid()}"
    result = run_in_child(_probe, given, write_probe, probe_name, until, WALK_LIMIT, deadline=deadline)
    stages = {m.get("stage"): m for m in result.messages if isinstance(m, dict)}
    real = stages.get("stat", {}).get("realpath") or given

    mounts = parse_mountinfo(_read(mountinfo_path) or "")
    fstab_entries = parse_fstab(_read(fstab_path) or "")
    fstab = fstab_entry_for(given, fstab_entries) or fstab_entry_for(real, fstab_entries)
    report.mount = mount_for(real, mounts)
    if report.mount is not None and report.mount.is_nfs:
        report.stats = parse_mountstats(_read(mountstats_path) or "").get(report.mount.mount_point)

    if result.timed_out or result.failure:
        _unanswered(report, result, stages, deadline)
    elif "errno" in stages.get("stat", {}):
        failed = stages["stat"]
        report.findings.append(error_finding("stat", failed["errno"], failed["reason"], given))
        report.findings += boot_order_findings(given, fstab)
        return _sorted(report)
    elif "probe" in stages:  # an error the probe did not expect (ESTALE from anywhere, say)
        finding = error_finding("probe", stages["probe"]["errno"], stages["probe"]["reason"], given)
        report.error = finding.message
        report.findings.append(finding)
    elif not stages.get("stat", {}).get("is_dir", True):
        report.findings.append(
            Finding(Level.CRITICAL, f"{given} is not a directory.", f"Remove it and mount the NFS share at {given}.")
        )
        return _sorted(report)

    if not mounts:
        report.findings.append(
            Finding(
                Level.WARNING, f"Cannot read the mount table ({mountinfo_path}).", "Run Berth where /proc is mounted."
            )
        )
    report.findings += boot_order_findings(real, fstab)
    report.findings += placement_findings(real, report.mount, fstab, expect_nfs=expect_nfs)
    if report.mount is not None and report.mount.is_nfs:
        report.findings += option_findings(report.mount, path=real, write_probe=write_probe)
        report.findings += stats_findings(report.stats) if report.stats is not None else []
    _stage_findings(report, stages, given, write_probe, catalog)
    return _sorted(report)


def _read(name: str) -> str | None:
    """A local file's text (``/proc``, ``/etc``: never on the mount), or None if unreadable."""
    try:
        with open(name, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError:
        return None


def _unanswered(report: NfsReport, result: ChildResult, stages: dict, deadline: float) -> None:
    """The probe hung (or died): say so, and which stages answered before."""
    answered = ", ".join(s for s in ("stat", "statvfs", "write", "walk") if s in stages) or "nothing"
    server = report.mount.server if report.mount is not None and report.mount.is_nfs else None
    if result.timed_out:
        report.error = f"NFS server not responding after {deadline:g} s ({report.path})"
        fix = (
            f"Check that the NFS server{' ' + server if server else ''} is up and reachable from this node "
            "(ping, rpcinfo -p, showmount -e); the registry's own reads and writes hang too. A hard mount "
            "resumes by itself when the server answers again."
        )
        report.findings.append(Finding(Level.CRITICAL, report.error + ".", fix, f"Answered before: {answered}."))
    else:
        report.error = f"The storage probe failed: {result.failure}"
        report.findings.append(Finding(Level.CRITICAL, report.error, "See Berth's log.", f"Answered: {answered}."))


def _stage_findings(report: NfsReport, stages: dict, path: str, write_probe: bool, catalog: set[str] | None) -> None:
    """Findings from what the probe child reported: capacity, write probe, the walk."""
    vfs = stages.get("statvfs")
    if vfs is not None and "errno" in vfs:
        report.findings.append(error_finding("statvfs", vfs["errno"], vfs["reason"], path))
    elif vfs is not None:
        report.capacity = Capacity(
            vfs["total"], vfs["free"], vfs["files"] or None, vfs["ffree"] if vfs["files"] else None
        )
        report.findings += capacity_findings(report.capacity)
    written = stages.get("write")
    read_only_here = report.mount is not None and "ro" in report.mount.all_options
    if not write_probe:
        report.findings.append(
            Finding(
                Level.INFO,
                "The write probe is off: Berth did not check that the share accepts writes.",
                "Set BERTH_NFS_WRITE_PROBE=1 to check it.",
            )
        )
    elif written is not None and "errno" in written:
        if not (written["errno"] == errno.EROFS and read_only_here):  # the mount options already said so
            report.findings.append(error_finding("write", written["errno"], written["reason"], path))
    elif written is not None:
        report.probe_latency_ms = written["ms"]
        report.findings.append(_latency_finding(written["ms"], written["intact"]))
    walked = stages.get("walk")
    if walked is not None and "errno" in walked:
        report.findings.append(error_finding("walk", walked["errno"], walked["reason"], path))
    elif walked is not None:
        _walk_findings(report, walked, path, catalog)


def _latency_finding(ms: float, intact: bool) -> Finding:
    if not intact:
        return Finding(
            Level.CRITICAL,
            "A test file read back differs from what was written: the storage corrupts data.",
            "Check the NFS server and its disks now; stop pushes.",
        )
    if ms > 1000:
        return Finding(
            Level.WARNING,
            f"Writing, reading back and deleting a small file took {ms:.0f} ms.",
            "The server or the network is overloaded; pushes will be slow.",
        )
    return Finding(Level.OK, f"Writing, reading back and deleting a small file took {ms:.1f} ms.")


def _walk_findings(report: NfsReport, walked: dict, path: str, catalog: set[str] | None) -> None:
    names = set(walked["repositories"])
    report.repositories_on_disk = len(names)
    if walked["truncated"]:
        report.findings.append(
            Finding(
                Level.INFO,
                f"Stopped counting repositories in {path} at {len(names)} "
                "(time or size limit); not compared with the catalog.",
            )
        )
    elif catalog is not None:
        report.findings += divergence(names, set(catalog), path=path)
    elif walked["missing"]:
        report.findings.append(Finding(Level.INFO, f"{path} holds no registry data yet ({REPOSITORIES} is missing)."))


def _sorted(report: NfsReport) -> NfsReport:
    report.findings.sort(key=lambda f: -f.level.rank)
    return report
