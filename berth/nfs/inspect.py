"""The registry's NFS storage: how it is mounted, whether it answers, whether it is the storage the registry uses.

:func:`inspect` is the entry point. Everything that touches the mount (stat, statvfs,
a small write/read/delete, the repository walk) runs in a forked child with a deadline:
a process stuck on a hung hard mount cannot be killed or reaped promptly, so the caller
never waits for it. On the deadline the child gets SIGKILL and is left behind; it is
reaped later with ``waitpid(WNOHANG)`` (:func:`berth.nfs.child.reap_abandoned`). Reading
``/proc`` and ``/etc/fstab`` never touches the mount and happens in the caller.

This module holds the probe the child runs and :func:`inspect`, which turns its answers
into an :class:`~berth.nfs.model.NfsReport`; the forking is :mod:`berth.nfs.child`, the
rules :mod:`berth.nfs.rules`, the kernel's tables :mod:`berth.nfs.mounts` and
:mod:`berth.nfs.stats`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from berth.errors import UpstreamUnavailable
from berth.findings import Finding, Level
from berth.nfs.child import ChildResult, oserror_message, run_in_child
from berth.nfs.model import Capacity, NfsReport
from berth.nfs.mounts import FstabEntry, fstab_entry_for, mount_for, parse_fstab, parse_mountinfo
from berth.nfs.rules import (
    boot_order_findings,
    capacity_findings,
    divergence,
    error_finding,
    latency_finding,
    option_findings,
    placement_findings,
)
from berth.nfs.stats import parse_mountstats, stats_findings

REPOSITORIES = "docker/registry/v2/repositories"
WALK_LIMIT = 100_000


# --- what the child does -----------------------------------------------------------------------


def _probe(path: str, write: bool, probe_name: str, walk_until: float, limit: int) -> Iterator[dict]:
    """Child side: stat, statvfs, the write probe and the walk, one message per stage, stopping at a failure."""
    started = time.monotonic()
    try:
        real = os.path.realpath(path)
        mode = os.stat(real).st_mode
    except OSError as exc:
        yield oserror_message("stat", exc)
        return
    yield {"stage": "stat", "realpath": real, "is_dir": stat.S_ISDIR(mode), "ms": _ms(started)}
    if not stat.S_ISDIR(mode):
        return
    try:
        vfs = os.statvfs(real)
    except OSError as exc:
        yield oserror_message("statvfs", exc)
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


def _ms(since: float) -> float:
    return round((time.monotonic() - since) * 1000, 3)


def probe_name() -> str:
    """A fresh, unguessable file name for one write probe (nobody can plant a link there first)."""
    return f".berth-probe-{secrets.token_hex(16)}"


def _write_probe(name: str) -> dict:
    """Write, fsync, read back and delete a small file of our own; report the time it took.

    The file must be new (``O_EXCL``) and is never reached through a symlink (``O_NOFOLLOW``):
    whoever else can write to the share cannot make the probe overwrite another file.
    """
    payload = f"berth probe {time.time()}\n".encode()
    started = time.monotonic()
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        return oserror_message("write", exc)  # not ours: leave it alone
    try:
        try:
            os.write(fd, payload)
            os.fsync(fd)  # make the server commit it, not just the client cache
        finally:
            os.close(fd)
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            echoed = os.read(fd, len(payload) + 1)
        finally:
            os.close(fd)
        os.unlink(name)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(name)
        return oserror_message("write", exc)
    return {"stage": "write", "ms": _ms(started), "intact": echoed == payload}


def _walk(root: str, until: float, limit: int) -> dict:
    """The repository names under ``root``: directories holding ``_manifests`` or ``_layers``."""
    base = os.path.join(root, REPOSITORIES)
    if not os.path.isdir(base):
        return {"stage": "walk", "repositories": [], "truncated": False, "missing": True}
    names: list[str] = []
    pending, truncated = [("", base)], False
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
        return oserror_message("walk", exc)
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
    result = run_in_child(_probe, given, write_probe, probe_name(), until, WALK_LIMIT, deadline=deadline)
    stages = {m.get("stage"): m for m in result.messages if isinstance(m, dict)}
    real = stages.get("stat", {}).get("realpath") or given

    mounts = parse_mountinfo(_read(mountinfo_path) or "")
    fstab_entries = parse_fstab(_read(fstab_path) or "")
    fstab = fstab_entry_for(given, fstab_entries) or fstab_entry_for(real, fstab_entries)
    report.mount = mount_for(real, mounts)
    if report.mount is not None and report.mount.is_nfs:
        report.stats = parse_mountstats(_read(mountstats_path) or "").get(report.mount.mount_point)

    if _probe_failed(report, result, stages, given, fstab, deadline):
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


def _probe_failed(
    report: NfsReport, result: ChildResult, stages: dict, given: str, fstab: FstabEntry | None, deadline: float
) -> bool:
    """Note what went wrong in the probe child; True when nothing more can be said about the path."""
    if result.timed_out or result.failure:
        _unanswered(report, result, stages, deadline)
    elif "errno" in stages.get("stat", {}):
        failed = stages["stat"]
        report.findings.append(error_finding("stat", failed["errno"], failed["reason"], given))
        report.findings += boot_order_findings(given, fstab)
        return True
    elif "probe" in stages:  # an error the probe did not expect (ESTALE from anywhere, say)
        finding = error_finding("probe", stages["probe"]["errno"], stages["probe"]["reason"], given)
        report.error = finding.message
        report.findings.append(finding)
    elif not stages.get("stat", {}).get("is_dir", True):
        report.findings.append(
            Finding(Level.CRITICAL, f"{given} is not a directory.", f"Remove it and mount the NFS share at {given}.")
        )
        return True
    return False


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
        report.findings.append(latency_finding(written["ms"], written["intact"]))
    walked = stages.get("walk")
    if walked is not None and "errno" in walked:
        report.findings.append(error_finding("walk", walked["errno"], walked["reason"], path))
    elif walked is not None:
        _walk_findings(report, walked, path, catalog)


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
