"""A small image with ``python3`` for Berth's per-node checks, made from this machine's Python.

Berth runs its node probe (a standard-library-only script) as ``python3 -I -S -c SOURCE``
in ``BERTH_NODE_CHECK_IMAGE``; in production that is Berth's own image. Nothing can be
pulled here and Berth's image is built elsewhere, so devstack imports this one on every
node: Debian's ``/usr/bin/python3.11``, the libraries ``ldd`` names, and the pure-Python
standard library without tests, GUI and packaging parts (about 25 MB; ``hashlib`` falls
back to the built-in ``_sha256``, ``json`` to its pure-Python code).
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import docker

from devstack import swarm

IMAGE = "berth-nodecheck:1"
PYTHON = "/usr/bin/python3.11"
STDLIB = Path("/usr/lib/python3.11")
_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "distutils", "pydoc_data",
         "dist-packages", "site-packages", "__pycache__", "lib-dynload", "unittest", "venv"}  # fmt: skip


def missing_reason() -> str | None:
    """Why the image cannot be made here, or None."""
    return None if os.access(PYTHON, os.X_OK) and STDLIB.is_dir() else f"{PYTHON} is not installed (python3.11)"


def _add(tar: tarfile.TarFile, source: Path, target: str, made: set[str]) -> None:
    parts = Path(target).parts[1:-1]
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        if name not in made:
            made.add(name)
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
    data = source.read_bytes()
    info = tarfile.TarInfo(target.lstrip("/"))
    info.size, info.mode = len(data), 0o755
    tar.addfile(info, io.BytesIO(data))


def rootfs_tar() -> bytes:
    """The image's root filesystem as a tar."""
    buffer = io.BytesIO()
    made: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add(tar, Path(PYTHON), "/usr/bin/python3", made)
        for library in swarm._libraries(PYTHON):
            _add(tar, Path(library), library, made)
        for path in sorted(STDLIB.rglob("*.py")):
            relative = path.relative_to(STDLIB)
            if not _SKIP.intersection(relative.parts):
                _add(tar, path, f"{STDLIB}/{relative}", made)
        info = tarfile.TarInfo("tmp")
        info.type, info.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(info)
    return buffer.getvalue()


def import_image(clients: list[docker.DockerClient], tag: str = IMAGE) -> None:
    """``docker import`` the image on every engine of ``clients``."""
    data = rootfs_tar()
    repository, _, version = tag.rpartition(":")
    for client in clients:
        client.api.import_image_from_data(data, repository=repository, tag=version,
                                          changes=['ENTRYPOINT ["/usr/bin/python3"]'])  # fmt: skip
