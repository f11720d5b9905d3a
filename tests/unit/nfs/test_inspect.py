"""NFS inspection on captured kernel text (tests/data/nfs) and on this machine's own, non-NFS, disks."""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berth.errors import UpstreamUnavailable
from berth.findings import Finding, Level, worst
from berth.nfs import child as nfs_child
from berth.nfs import inspect as nfs
from berth.nfs import model as nfs_report
from berth.nfs import mounts as nfs_mounts
from berth.nfs import rules as nfs_rules
from berth.nfs import stats as nfs_stats

DATA = Path(__file__).resolve().parents[2] / "data" / "nfs"
REGISTRY = "/var/lib/registry"
GIB = 1024**3


def text(name: str) -> str:
    """A captured file from tests/data/nfs."""
    return (DATA / name).read_text()


def registry_mount(mountinfo: str) -> nfs_mounts.Mount:
    """The mount holding /var/lib/registry in a captured mountinfo."""
    mount = nfs_mounts.mount_for(REGISTRY, nfs_mounts.parse_mountinfo(text(mountinfo)))
    assert mount is not None
    return mount


def levels(findings: list[Finding]) -> dict[Level, list[str]]:
    """Messages grouped by level."""
    grouped: dict[Level, list[str]] = {}
    for finding in findings:
        grouped.setdefault(finding.level, []).append(finding.message)
    return grouped


def children_of_this_process() -> set[int]:
    """Pids whose parent is this test process, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry.name))
    return found


# --- findings --------------------------------------------------------------------------------------


def test_levels_are_ordered_and_worst_picks_the_most_severe():
    assert Level.OK < Level.INFO < Level.WARNING < Level.CRITICAL
    assert Level.CRITICAL.rank == 3 and max(Level) == Level.CRITICAL
    assert worst([]) == Level.OK
    assert worst([Finding(Level.INFO, "a"), Finding(Level.WARNING, "b"), Finding(Level.OK, "c")]) == Level.WARNING
    assert Finding(Level.WARNING, "m", "f").as_dict() == {"level": "warning", "message": "m", "fix": "f", "detail": ""}


# --- mountinfo ---------------------------------------------------------------------------------------


def test_reference_v3_mount_is_parsed_with_super_options():
    mount = registry_mount("mountinfo-v3-reference.txt")
    assert mount.is_nfs and mount.fs_type == "nfs"
    assert (mount.mount_id, mount.parent_id, mount.device) == (312, 28, "0:302")
    assert (mount.server, mount.export, mount.mount_point) == ("10.21.0.50", "/docker", REGISTRY)
    assert mount.options == ("rw", "relatime")
    assert mount.super_options["vers"] == "3" and mount.super_options["timeo"] == "600"
    assert mount.super_options["proto"] == "tcp" and mount.super_options["local_lock"] == "all"
    assert "hard" in mount.super_options and "nolock" in mount.super_options
    options = mount.all_options
    assert "relatime" in options and "rw" in options and "bg" not in options


def test_octal_escapes_in_paths_are_decoded():
    mounts = nfs_mounts.parse_mountinfo(text("mountinfo-v3-reference.txt"))
    old = nfs_mounts.mount_for("/mnt/old backups/2019", mounts)
    assert old is not None and old.mount_point == "/mnt/old backups"
    assert old.source == "10.21.0.60:/backups old" and old.export == "/backups old"


def test_v41_mount():
    mount = registry_mount("mountinfo-v41.txt")
    assert mount.fs_type == "nfs4" and mount.is_nfs
    assert mount.super_options["vers"] == "4.1" and mount.super_options["clientaddr"] == "10.21.0.11"


def test_mount_for_respects_component_boundaries_and_stacking():
    mounts = nfs_mounts.parse_mountinfo(text("mountinfo-v3-reference.txt"))
    assert nfs_mounts.mount_for("/var/lib/registry/docker/registry/v2", mounts).mount_id == 312
    assert nfs_mounts.mount_for("/var/lib/registry-old", mounts).mount_point == "/"
    assert nfs_mounts.mount_for("/var/lib/registry/../registry/.", mounts).mount_id == 312
    assert nfs_mounts.mount_for("relative/path", mounts) is None
    stacked = nfs_mounts.parse_mountinfo(
        "30 28 0:50 / /var/lib/registry rw,relatime - ext4 /dev/sdb1 rw\n"
        "31 30 0:51 / /var/lib/registry rw,relatime - nfs 10.21.0.50:/docker rw,vers=3,hard,proto=tcp\n"
        "28 1 253:0 / / rw - ext4 /dev/sda1 rw\n"
    )
    assert nfs_mounts.mount_for(REGISTRY, stacked).mount_id == 31


def test_malformed_mountinfo_lines_are_skipped():
    mounts = nfs_mounts.parse_mountinfo("garbage\n1 2 3\nx 1 0:1 / /a rw - ext4 /dev/a rw\n5 1 0:1 / /b rw - tmpfs\n")
    assert [(m.mount_point, m.fs_type, m.source) for m in mounts] == [("/b", "tmpfs", "")]


# --- mountstats ----------------------------------------------------------------------------------------


def test_v3_mountstats_per_op_averages_and_retransmissions():
    stats = nfs_stats.parse_mountstats(text("mountstats-v3-reference.txt"))
    assert set(stats) == {REGISTRY, "/mnt/old backups"}
    registry = stats[REGISTRY]
    assert (registry.device, registry.fs_type, registry.transport) == ("10.21.0.50:/docker", "nfs", "tcp")
    assert registry.age_seconds == 1893410
    assert registry.options["vers"] == "3" and registry.options["acregmin"] == "3"
    assert len(registry.ops) == 22
    read, write = registry.ops["READ"], registry.ops["WRITE"]
    assert (read.ops, read.transmissions, read.retransmissions) == (2284410, 2284441, 31)
    assert read.avg_rtt_ms == pytest.approx(2018331 / 2284410)
    assert write.avg_exe_ms == pytest.approx(7529881 / 3642702)
    assert registry.ops["LOOKUP"].errors == 163201
    assert registry.major_timeouts == 0 and registry.retransmissions == 2 + 31 + 58
    assert registry.xprt["connect_count"] == 3 and registry.xprt["sends"] == 7689231
    assert registry.xprt["connections"] == 1


def test_v41_and_udp_mountstats():
    v41 = nfs_stats.parse_mountstats(text("mountstats-v41.txt"))[REGISTRY]
    assert v41.fs_type == "nfs4" and v41.options["vers"] == "4.1"
    assert v41.ops["SEQUENCE"].ops == 7620 and "LAYOUTGET" in v41.ops
    udp = nfs_stats.parse_mountstats(text("mountstats-v3-udp.txt"))[REGISTRY]
    assert udp.transport == "udp" and udp.xprt["sends"] == 1703822 and "connect_count" not in udp.xprt
    assert udp.major_timeouts == 41 + 3
    assert udp.ops["WRITE"].retransmissions == 371055 - 364270


def test_mountstats_of_older_kernels_and_nconnect():
    sample = (
        "device srv:/x mounted on /x with fstype nfs statvers=1.1\n"
        "\tage:\t10\n"
        "\txprt:\ttcp 700 1 1 0 0 10 10 0 10 0 2 0 0\n"
        "\txprt:\ttcp 701 1 2 0 0 5 5 0 5 0 2 0 0\n"
        "\tper-op statistics\n"
        "\t        READ: 4 6 1 10 20 1 8 12\n"
    )
    stats = nfs_stats.parse_mountstats(sample)["/x"]
    read = stats.ops["READ"]
    assert read.errors is None and read.retransmissions == 2 and read.avg_rtt_ms == 2.0
    assert stats.xprt["connections"] == 2 and stats.xprt["sends"] == 15 and stats.xprt["srcport"] == 700


# --- fstab ---------------------------------------------------------------------------------------------


def test_fstab_reference_line():
    entries = nfs_mounts.parse_fstab(text("fstab-reference.txt"))
    entry = nfs_mounts.fstab_entry_for(REGISTRY, entries)
    assert entry is not None and entry.is_nfs and entry.source == "10.21.0.50:/docker"
    assert entry.options == ("hard", "rw", "bg", "vers=3", "tcp", "nolock", "timeo=600")
    assert nfs_mounts.fstab_entry_for("/mnt/old backups", entries).options == ("defaults", "_netdev")
    assert nfs_mounts.fstab_entry_for("/srv", entries) is None


# --- option findings for each captured variant ---------------------------------------------------------


def test_reference_options_give_only_the_nolock_note():
    found = levels(nfs_rules.option_findings(registry_mount("mountinfo-v3-reference.txt")))
    assert set(found) == {Level.OK, Level.INFO}
    assert "NFS v3 over tcp from 10.21.0.50:/docker, hard, rw" in found[Level.OK][0]
    assert len(found[Level.INFO]) == 1 and "nolock" in found[Level.INFO][0]


def test_v41_options_are_fine():
    assert {f.level for f in nfs_rules.option_findings(registry_mount("mountinfo-v41.txt"))} == {Level.OK}


def test_soft_mount_is_critical():
    found = levels(nfs_rules.option_findings(registry_mount("mountinfo-v3-soft.txt")))
    assert any("soft mount" in m and "silent data loss" in m for m in found[Level.CRITICAL])
    assert any("timeo=100" in m for m in found[Level.INFO])


def test_udp_mount_is_a_warning():
    found = levels(nfs_rules.option_findings(registry_mount("mountinfo-v3-udp.txt")))
    assert Level.CRITICAL not in found
    assert any("UDP" in m for m in found[Level.WARNING])


def test_read_only_mount_is_critical():
    found = levels(nfs_rules.option_findings(registry_mount("mountinfo-v3-ro.txt")))
    assert any("read-only" in m for m in found[Level.CRITICAL])


@pytest.mark.parametrize(("write_probe", "level"), [(True, Level.WARNING), (False, Level.INFO)])
def test_read_only_bind_mount_in_berths_container(write_probe, level):
    mount = registry_mount("mountinfo-container-ro-bind.txt")
    assert mount.is_nfs and "ro" in mount.all_options and "ro" not in mount.super_options
    findings = nfs_rules.option_findings(mount, write_probe=write_probe)
    assert worst(findings) == level
    assert any("read-only bind mount" in f.message for f in findings)


@pytest.mark.parametrize(
    ("super_options", "expected"),
    [
        ("rw,vers=3,hard,proto=tcp,timeo=600,local_lock=all", "nolock"),  # kernels that print only local_lock
        ("rw,vers=2,hard,proto=tcp,timeo=600,local_lock=none", "version 2"),
        ("rw,vers=3,hard,proto=tcp,timeo=300,local_lock=none", "timeo=300"),
    ],
)
def test_info_notes(super_options, expected):
    mount = nfs_mounts.parse_mountinfo(f"1 0 0:1 / /r rw - nfs s:/e {super_options}\n")[0]
    infos = [f.message for f in nfs_rules.option_findings(mount) if f.level == Level.INFO]
    assert len(infos) == 1 and expected in infos[0]


def test_udp_stats_report_major_timeouts():
    stats = nfs_stats.parse_mountstats(text("mountstats-v3-udp.txt"))[REGISTRY]
    findings = nfs_stats.stats_findings(stats)
    assert [f.level for f in findings] == [Level.WARNING] and "44 NFS requests" in findings[0].message
    assert nfs_stats.stats_findings(nfs_stats.parse_mountstats(text("mountstats-v3-reference.txt"))[REGISTRY]) == []


# --- placement: on NFS, not mounted, not on NFS ----------------------------------------------------------


def test_share_not_mounted_while_fstab_names_it_is_critical_and_bg_warns():
    mount = registry_mount("mountinfo-not-mounted.txt")
    fstab = nfs_mounts.fstab_entry_for(REGISTRY, nfs_mounts.parse_fstab(text("fstab-reference.txt")))
    placed = nfs_rules.placement_findings(REGISTRY, mount, fstab)
    assert [f.level for f in placed] == [Level.CRITICAL]
    assert "NFS share 10.21.0.50:/docker not mounted" in placed[0].message
    assert "writes to the local disk under the mount point" in placed[0].message
    boot = nfs_rules.boot_order_findings(REGISTRY, fstab)
    assert [f.level for f in boot] == [Level.WARNING] and "before the background mount completes" in boot[0].message
    foreground = nfs_mounts.fstab_entry_for(REGISTRY, nfs_mounts.parse_fstab(text("fstab-foreground.txt")))
    assert nfs_rules.boot_order_findings(REGISTRY, foreground) == []


def test_not_on_nfs_without_fstab_is_a_warning_unless_nfs_is_expected():
    mount = registry_mount("mountinfo-not-mounted.txt")
    assert [f.level for f in nfs_rules.placement_findings(REGISTRY, mount, None)] == [Level.WARNING]
    assert [f.level for f in nfs_rules.placement_findings(REGISTRY, mount, None, expect_nfs=True)] == [Level.CRITICAL]
    assert nfs_rules.placement_findings(REGISTRY, registry_mount("mountinfo-v3-reference.txt"), None) == []


@pytest.mark.parametrize("where", ["/", "tmp"])
def test_this_machine_is_not_on_nfs(where, tmp_path):
    path = Path("/") if where == "/" else tmp_path
    report = nfs.inspect(path, write_probe=where != "/")
    assert report.error is None and report.mount is not None and not report.mount.is_nfs
    warnings = [f.message for f in report.findings if f.level == Level.WARNING]
    assert any("is not on NFS" in m and "only this node sees the data" in m for m in warnings)
    assert report.capacity is not None and report.capacity.total_bytes > 0
    json.dumps(report.as_dict())


# --- inspect end to end, with the captured tables moved onto a temporary directory -------------------------


def captured(tmp_path: Path, mountinfo: str, mountstats: str | None = None, fstab: str | None = None) -> dict:
    """Keyword arguments for inspect(): captured files with /var/lib/registry replaced by ``tmp_path/registry``."""
    target = tmp_path / "registry"
    target.mkdir(exist_ok=True)
    paths = {}
    for key, name in (("mountinfo_path", mountinfo), ("mountstats_path", mountstats), ("fstab_path", fstab)):
        copy = tmp_path / f"{key}.txt"
        copy.write_text(text(name).replace(REGISTRY, str(target)) if name else "")
        paths[key] = str(copy)
    return paths


def make_repositories(root: Path, names: list[str]) -> None:
    """A registry storage layout holding ``names``."""
    for name in names:
        (root / "docker/registry/v2/repositories" / name / "_manifests/tags/latest").mkdir(parents=True)
        (root / "docker/registry/v2/repositories" / name / "_layers").mkdir()
        (root / "docker/registry/v2/repositories" / name / "_uploads/abc/startedat").mkdir(parents=True)


def test_inspect_reference_mount(tmp_path):
    kwargs = captured(tmp_path, "mountinfo-v3-reference.txt", "mountstats-v3-reference.txt", "fstab-reference.txt")
    make_repositories(tmp_path / "registry", ["centos", "library/debian", "team/app/api"])
    report = nfs.inspect(tmp_path / "registry", catalog={"centos", "library/debian", "team/app/api"}, **kwargs)
    assert report.ok, report.findings
    assert report.mount.is_nfs and report.stats is not None and report.stats.transport == "tcp"
    assert report.repositories_on_disk == 3 and report.probe_latency_ms is not None
    found = levels(report.findings)
    assert any("'bg'" in m for m in found[Level.WARNING])
    assert any("match the registry's catalog" in m for m in found[Level.OK])
    assert report.findings[0].level == Level.WARNING  # most severe first
    data = json.loads(json.dumps(report.as_dict()))
    assert data["ok"] is True and data["error"] is None
    assert data["details"]["stats"]["ops"]["READ"]["retransmissions"] == 31
    assert data["details"]["mount"]["server"] == "10.21.0.50"
    assert not list((tmp_path / "registry").glob(".berth-probe-*"))


def test_inspect_finds_divergence(tmp_path):
    kwargs = captured(tmp_path, "mountinfo-v3-reference.txt", "mountstats-v3-reference.txt", "fstab-foreground.txt")
    make_repositories(tmp_path / "registry", ["centos"])
    report = nfs.inspect(tmp_path / "registry", catalog={"centos", "node", "wordpress"}, **kwargs)
    assert not report.ok
    critical = [f for f in report.findings if f.level == Level.CRITICAL]
    assert len(critical) == 1 and "2 only in the catalog (node, wordpress)" in critical[0].message


def test_inspect_not_mounted_share(tmp_path):
    kwargs = captured(tmp_path, "mountinfo-not-mounted.txt", "mountstats-not-mounted.txt", "fstab-reference.txt")
    report = nfs.inspect(tmp_path / "registry", **kwargs)
    assert not report.ok and report.error is None
    assert any("not mounted" in f.message for f in report.findings if f.level == Level.CRITICAL)


def test_inspect_missing_path(tmp_path):
    report = nfs.inspect(tmp_path / "nowhere", fstab_path=str(tmp_path / "no-fstab"))
    assert [f.level for f in report.findings] == [Level.CRITICAL]
    assert "does not exist" in report.findings[0].message and "mkdir -p" in report.findings[0].fix


def test_read_only_bind_with_write_probe_off(tmp_path):
    kwargs = captured(tmp_path, "mountinfo-container-ro-bind.txt", "mountstats-v3-reference.txt")
    report = nfs.inspect(tmp_path / "registry", write_probe=False, **kwargs)
    assert report.ok and report.probe_latency_ms is None
    infos = [f.message for f in report.findings if f.level == Level.INFO]
    assert any("write probe is off" in m for m in infos) and any("read-only bind mount" in m for m in infos)


# --- probes that cannot hang the caller ----------------------------------------------------------------------


def test_hung_mount_returns_within_the_deadline_and_leaves_no_child(tmp_path, monkeypatch):
    fifo = tmp_path / "hang"
    os.mkfifo(fifo)

    def hang(*args):
        os.open(fifo, os.O_RDONLY)  # blocks until a writer comes: never
        yield {"stage": "stat"}

    monkeypatch.setattr(nfs, "_probe", hang)
    before = children_of_this_process()
    started = time.monotonic()
    report = nfs.inspect(tmp_path, deadline=1.0)
    assert time.monotonic() - started < 2.0
    assert not report.ok and report.error and "not responding after 1 s" in report.error
    assert report.findings[0].level == Level.CRITICAL and str(tmp_path) in report.findings[0].message
    for _ in range(50):
        if nfs_child.reap_abandoned() == 0:
            break
        time.sleep(0.05)
    assert nfs_child.reap_abandoned() == 0
    assert children_of_this_process() - before == set()


def test_probe_does_not_leak_descriptors(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        nfs_child.run_in_child(lambda: iter([{"stage": "x"}]), deadline=2.0)
        nfs_child.run_in_child(lambda: time.sleep(5) or iter([]), deadline=0.05)
    assert len(os.listdir("/proc/self/fd")) == before
    time.sleep(0.2)
    assert nfs_child.reap_abandoned() == 0


@pytest.mark.parametrize("call", ["stat", "statvfs"])
def test_stale_file_handle_is_critical(tmp_path, monkeypatch, call):
    def stale(*args, **kwargs):
        raise OSError(errno.ESTALE, os.strerror(errno.ESTALE))

    monkeypatch.setattr(nfs.os, call, stale)  # only the child calls these on the path
    report = nfs.inspect(tmp_path, fstab_path=str(tmp_path / "no-fstab"))
    critical = [f for f in report.findings if f.level == Level.CRITICAL]
    assert len(critical) == 1 and "stale file handle" in critical[0].message and "umount" in critical[0].fix


def test_stale_file_handle_raised_anywhere_in_the_child(tmp_path, monkeypatch):
    def stale(*args):
        raise OSError(errno.ESTALE, "Stale file handle")
        yield {}

    monkeypatch.setattr(nfs, "_probe", stale)
    report = nfs.inspect(tmp_path)
    assert not report.ok and "stale file handle" in report.error


@pytest.mark.parametrize(
    ("code", "level"), [(errno.EACCES, Level.WARNING), (errno.EROFS, Level.CRITICAL), (errno.EIO, Level.CRITICAL)]
)
def test_write_probe_errors(tmp_path, monkeypatch, code, level):
    monkeypatch.setattr(
        nfs, "_write_probe", lambda name: nfs_child.oserror_message("write", OSError(code, os.strerror(code)))
    )
    report = nfs.inspect(tmp_path)
    written = [f for f in report.findings if str(tmp_path) in f.message and f.level == level]
    assert written and report.probe_latency_ms is None


# --- capacity ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "free", "level"),
    [
        (1000 * GIB, 500 * GIB, Level.OK),
        (1000 * GIB, 140 * GIB, Level.WARNING),  # 14 %
        (1000 * GIB, 40 * GIB, Level.CRITICAL),  # 4 %
        (20 * GIB, 9 * GIB, Level.WARNING),  # 45 % but under 10 GiB
        (20 * GIB, 1 * GIB, Level.CRITICAL),  # under 2 GiB
    ],
)
def test_capacity_thresholds(total, free, level):
    assert worst(nfs_rules.capacity_findings(nfs_report.Capacity(total, free))) == level


@pytest.mark.parametrize(("free_inodes", "level"), [(50, Level.OK), (9, Level.WARNING), (1, Level.CRITICAL)])
def test_inode_thresholds(free_inodes, level):
    capacity = nfs_report.Capacity(1000 * GIB, 500 * GIB, inodes_total=100, inodes_free=free_inodes)
    assert worst(nfs_rules.capacity_findings(capacity)) == level


# --- repositories on disk and divergence ------------------------------------------------------------------------


def test_walker_finds_nested_names(tmp_path):
    make_repositories(tmp_path, ["centos", "team/app/api", "team/app", "a/b/c/d"])
    (tmp_path / "docker/registry/v2/repositories/empty/dir").mkdir(parents=True)
    assert nfs.repositories_on_disk(tmp_path) == {"centos", "team/app/api", "team/app", "a/b/c/d"}
    assert nfs.repositories_on_disk(tmp_path / "nothing-here") == set()
    with pytest.raises(UpstreamUnavailable):
        nfs.repositories_on_disk(tmp_path, limit=2)


def test_divergence():
    assert [f.level for f in nfs_rules.divergence({"a", "b"}, {"b", "a"})] == [Level.OK]
    findings = nfs_rules.divergence({"a", "stray/one"}, {"a", "b", "c"})
    assert [f.level for f in findings] == [Level.CRITICAL]
    assert "2 only in the catalog (b, c)" in findings[0].message and "1 only on disk (stray/one)" in findings[0].message
    many = nfs_rules.divergence(set(), {f"r{i:02}" for i in range(12)})[0].message
    assert "12 only in the catalog (r00, r01, r02, r03, r04, …)" in many


# --- parsers never raise ------------------------------------------------------------------------------------------

lines = st.lists(
    st.one_of(
        st.text(),
        st.sampled_from(
            [
                "device a:/b mounted on /c with fstype nfs statvers=1.1",
                "\tper-op statistics",
                "\txprt:\ttcp 1 2 x",
                "\t READ: 1 2 3",
                "\t WRITE: 1 2 3 4 5 6 7 8 9 10",
                "1 2 0:1 / /x rw - nfs",
                "1 2 0:1 / /x rw - nfs a:/b rw,vers=3,=,,timeo",
                "a b nfs bg,hard",
                "\\999 \\040 #",
            ]
        ),
    )
).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(lines)
def test_parsers_never_raise(sample):
    for mount in nfs_mounts.parse_mountinfo(sample):
        assert isinstance(mount.all_options, dict)
        mount.server, mount.export, nfs_rules.option_findings(mount)
    for stats in nfs_stats.parse_mountstats(sample).values():
        stats.major_timeouts, stats.retransmissions, nfs_stats.stats_findings(stats)
    assert isinstance(nfs_mounts.parse_fstab(sample), list)
    nfs_mounts.mount_for("/x", nfs_mounts.parse_mountinfo(sample))
