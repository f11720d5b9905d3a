"""Berth with an NFS probe that hangs: the gunicorn entry point ``bench.hung_app:app``.

Why it exists: ``bench.health`` measures ``/health`` while the NFS mount is hung, and this
machine has no kernel NFS client (nor a server to stop) to hang a real mount with. So the
app is built exactly as ``gunicorn app:app`` builds it, and only the part of the NFS probe
that touches the mount is swapped: the child that :func:`berth.nfs.inspect.inspect` forks (through
:func:`berth.nfs.inspect.run_in_child`) opens a FIFO for reading that no process ever writes to.
That ``open`` sleeps in the kernel forever, as a ``stat`` on a dead hard mount does, so the
real deadline, SIGKILL and abandon/reap path of ``berth.nfs.inspect`` runs on every cycle, and the
report is the real one ("NFS server not responding after ... s").

The FIFO is ``BERTH_DATA_DIR/hung-nfs.fifo`` (fresh for each bench run).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

from app import create_app
from berth.nfs import inspect as nfs

FIFO_NAME = "hung-nfs.fifo"


def _make_fifo(path: Path) -> None:
    """Create the FIFO once (both gunicorn workers import this module)."""
    with suppress(FileExistsError):
        os.mkfifo(path, 0o600)


def _hung_child(path: str, write: bool, probe_name: str, walk_until: float, limit: int) -> Iterator[dict]:
    """Child side, in place of ``berth.nfs.inspect._probe``: block in ``open(fifo, O_RDONLY)`` forever."""
    fd = os.open(_fifo, os.O_RDONLY)  # no writer ever comes: the child sleeps here until SIGKILL
    os.close(fd)
    yield {"stage": "probe", "errno": 0, "reason": f"a writer appeared on the bench FIFO for {path}"}


def hung_nfs_probe() -> dict:
    """The NFS probe: the real :func:`berth.nfs.inspect.inspect`, whose forked child now hangs."""
    return nfs.inspect(
        _settings.nfs_path, deadline=_settings.nfs_deadline, write_probe=_settings.nfs_write_probe
    ).as_dict()


app = create_app()
_services = app.extensions["berth"]
_settings = _services.settings
_fifo = _settings.data_dir / FIFO_NAME
_make_fifo(_fifo)
# The mount is "hung" for the whole process: whatever forks a probe child through
# nfs.inspect gets the hanging one. HealthMonitor keeps its probes by component name.
nfs._probe = _hung_child  # noqa: SLF001
_services.health._probes["nfs"] = hung_nfs_probe  # noqa: SLF001
