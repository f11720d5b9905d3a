"""A mount whose server never answers: the kernel-level stand-in for a hung NFS hard mount.

This machine's kernel has no NFS client, but it has FUSE. :class:`HungMount` mounts a FUSE
file system over a directory and never answers the kernel (not even its ``INIT``), so every
``stat``, ``open`` or ``statvfs`` below the mount point blocks inside the kernel exactly as on
an NFS mount whose server stopped responding. No library is needed: the mount is one
``mount(2)`` call with the ``/dev/fuse`` descriptor, made through ctypes.

Leaving the context unmounts it (lazily) and closes the descriptor, which aborts the FUSE
connection: whatever was blocked on it fails with ``ENOTCONN`` and goes on. Root only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path
from types import TracebackType

MS_NOSUID = 2
MS_NODEV = 4
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class HungMount:
    """``with HungMount(path):`` — everything under ``path`` hangs until the block ends."""

    def __init__(self, target: Path | str):
        self.target = Path(target)
        self._fd: int | None = None

    def __enter__(self) -> HungMount:
        self.mount()
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.release()

    def mount(self) -> None:
        """Mount the silent file system over the target directory."""
        self._fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        options = f"fd={self._fd},rootmode=40000,user_id=0,group_id=0".encode()
        flags = MS_NOSUID | MS_NODEV
        if _libc.mount(b"berth-hung", str(self.target).encode(), b"fuse", flags, options) != 0:
            errno = ctypes.get_errno()
            os.close(self._fd)
            self._fd = None
            raise OSError(errno, f"mount of a hung FUSE file system on {self.target}: {os.strerror(errno)}")

    def release(self) -> None:
        """Unmount (lazily, so blocked callers do not keep it busy) and abort the connection."""
        if self._fd is None:
            return
        _libc.umount2(str(self.target).encode(), MNT_DETACH)
        os.close(self._fd)  # aborts the FUSE connection: blocked calls return ENOTCONN
        self._fd = None
