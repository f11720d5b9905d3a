"""The NFS write probe: a name nobody can guess, never an existing file, never through a symlink."""

from __future__ import annotations

import errno
import os
import socket

from berth.nfs import inspect as nfs


def test_the_probe_never_follows_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    storage = tmp_path / "storage"
    storage.mkdir()
    # the name the old probe used, predictable from outside
    (storage / f".berth-probe-{socket.gethostname()}-{os.getpid()}").symlink_to(victim)
    report = nfs.inspect(storage, deadline=5.0, write_probe=True)
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in storage.iterdir()) == [f".berth-probe-{socket.gethostname()}-{os.getpid()}"]
    assert not any("write" in f.message.lower() and f.level.value == "critical" for f in report.findings)


def test_the_write_probe_refuses_symlinks_and_existing_files(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "link"
    link.symlink_to(victim)
    result = nfs._write_probe(str(link))
    assert result["stage"] == "write" and result["errno"] in (errno.EEXIST, errno.ELOOP)
    assert victim.read_text() == "precious" and link.is_symlink()
    result = nfs._write_probe(str(victim))
    assert result["errno"] == errno.EEXIST and victim.read_text() == "precious"


def test_probe_names_are_random():
    names = {nfs.probe_name() for _ in range(20)}
    assert len(names) == 20
    assert all(name.startswith(".berth-probe-") and str(os.getpid()) not in name for name in names)
