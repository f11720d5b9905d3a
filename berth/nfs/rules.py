"""Rules over what an NFS inspection saw: capacity, placement, boot order, mount options, errors, divergence.

Pure functions from what was seen to findings, each saying what to do.
"""

from __future__ import annotations

import errno

from berth.findings import Finding, Level
from berth.nfs.model import Capacity
from berth.nfs.mounts import FstabEntry, Mount

GIB = 1024**3

REFERENCE_FSTAB = "SERVER:/docker {path} nfs hard,rw,bg,vers=3,tcp,nolock,timeo=600 0 0"


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


def latency_finding(ms: float, intact: bool) -> Finding:
    """What the write probe's round trip says: corruption, a slow server, or its time."""
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
