"""Running code where a hung mount cannot reach the caller: a forked child with a deadline.

:func:`run_in_child` forks, streams what the child's function yields back over a pipe as
JSON lines, and never waits beyond the deadline: a process stuck on a hung hard mount
cannot be killed or reaped promptly, so on the deadline the child gets SIGKILL and is left
behind, to be reaped later with ``waitpid(WNOHANG)`` (:func:`reap_abandoned`).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1

_PRCTL: Callable[..., int] | None
try:  # resolved here, in the parent: dlopen in a forked child of a threaded process can deadlock
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


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
            _send(write_fd, {"message": oserror_message("probe", exc)})
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
    buffer = bytearray()
    messages: list[dict] = []
    failure: str | None = None
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


def oserror_message(stage: str, exc: OSError) -> dict:
    """An ``OSError`` met at ``stage`` as a probe message: ``{"stage", "errno", "reason"}``."""
    return {"stage": stage, "errno": exc.errno or 0, "reason": exc.strerror or str(exc)}
