"""Start, identify and stop the stack's background processes.

Each process runs in its own session with stdout/stderr to a log file, so it outlives
the ``up`` command. Its pid is recorded in ``DIR/pids/NAME.pid`` as JSON together with
the binary name and the kernel start time of the process; a pid is only ever signalled
when both still match, so a recycled pid is never killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcRecord:
    """What identifies a started process: pid, binary name, kernel start time, log."""

    name: str
    pid: int
    binary: str
    start_time: int
    log: str


def _pid_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "pids"


def _start_time(pid: int) -> int | None:
    """Return the process start time (clock ticks since boot) or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces or parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # zombie or dead: not running any more
        return None
    return int(fields[19])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_running(record: ProcRecord) -> bool:
    """Return True if the recorded process is still the same live process."""
    _reap(record.pid)
    start = _start_time(record.pid)
    if start is None or start != record.start_time:
        return False
    # Same pid and same start time is the same process; the name check guards against a
    # hand-edited record. An empty cmdline means the process is in exec or exit.
    argv0 = _cmdline(record.pid)[:1]
    return not argv0 or _program(argv0[0]) == record.binary


def _program(argv0: str) -> str:
    """The binary name in ``argv[0]``; Samba rewrites its title to ``samba: root process``."""
    return os.path.basename(argv0).split(":", 1)[0]


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own finished child (in-process use)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def start(
    state_dir: Path,
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    pass_fds: tuple[int, ...] = (),
    binary: str | None = None,
) -> ProcRecord:
    """Start ``argv`` detached (new session, output to ``log_path``) and record its pid.

    ``pass_fds`` are inherited (e.g. a lock the process holds for as long as it lives).
    ``binary`` names the program the process ends up as when ``argv`` is a wrapper that
    execs it (``nsenter ... unshare ... dockerd``); by default the basename of ``argv[0]``.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            list(argv),
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            pass_fds=pass_fds,
            env=env,
            cwd=cwd,
        )
    # Popen returns once exec has begun, which can be before the kernel has set up the
    # new argv: wait (briefly) until /proc shows the new program, so the record is exact.
    binary = binary or os.path.basename(argv[0])
    start_time = None
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and proc.poll() is None:
        start_time = _start_time(proc.pid)
        argv0 = _cmdline(proc.pid)[:1]
        if start_time is not None and argv0 and _program(argv0[0]) == binary:
            break
        time.sleep(0.002)
    record = ProcRecord(
        name=name,
        pid=proc.pid,
        binary=binary,
        start_time=start_time if start_time is not None else -1,
        log=str(log_path),
    )
    pid_dir = _pid_dir(state_dir)
    pid_dir.mkdir(parents=True, exist_ok=True)
    (pid_dir / f"{name}.pid").write_text(json.dumps(asdict(record)) + "\n")
    return record


def load(state_dir: Path, name: str) -> ProcRecord | None:
    """Return the record of process ``name`` or None if there is none (or it is unreadable)."""
    try:
        data = json.loads((_pid_dir(state_dir) / f"{name}.pid").read_text())
        return ProcRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def load_all(state_dir: Path) -> list[ProcRecord]:
    """Return every recorded process of the state directory."""
    pid_dir = _pid_dir(state_dir)
    if not pid_dir.is_dir():
        return []
    records = [load(state_dir, path.stem) for path in sorted(pid_dir.glob("*.pid"))]
    return [record for record in records if record is not None]


def stop(state_dir: Path, name: str, timeout: float = 5.0) -> None:
    """Stop process ``name`` if it is still the one we started, then remove its pid file.

    SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. A dead or recycled pid is
    left alone; the pid file is removed either way.
    """
    record = load(state_dir, name)
    if record is not None and is_running(record):
        _signal(record, signal.SIGTERM)
        if not _wait_gone(record, timeout):
            _signal(record, signal.SIGKILL)
            _wait_gone(record, 2.0)
    (_pid_dir(state_dir) / f"{name}.pid").unlink(missing_ok=True)


def _signal(record: ProcRecord, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signum)


def _wait_gone(record: ProcRecord, timeout: float) -> bool:
    """Wait until the recorded process has exited (reaping it if it is our child)."""
    deadline = time.monotonic() + timeout
    while True:
        _reap(record.pid)
        start = _start_time(record.pid)
        if start is None or start != record.start_time:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def log_tail(path: Path | str, lines: int = 5) -> str:
    """Return the last ``lines`` non-empty lines of a log file, joined with ' | '."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)
