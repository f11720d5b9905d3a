"""The processes a benchmark needs: the devstack, a registry on the dataset, and Berth.

- :func:`bench_stack` starts devstack (slapd for logins, plus its own small seeded
  registry, unused here) under ``.bench-stack/`` and a second Distribution registry on a free
  loopback port, TLS from the devstack CA, log level ``warn``, serving the dataset's
  storage root. The second registry is recorded in the same state directory, so
  ``devstack.down`` stops it with the rest; that is what happens on leaving the block.
- :class:`BerthServer` runs Berth under gunicorn (``gunicorn.conf.py``) on a free loopback
  port with a fresh, empty ``BERTH_DATA_DIR``, and reads its peak memory from ``/proc``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import requests

import devstack
from bench.common import BenchError
from devstack import procs
from devstack import registry as dsregistry
from devstack.ports import LOOPBACK, free_port

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = PROJECT / ".bench-stack"
REGISTRY_NAME = "bench-registry"
GUNICORN = PROJECT / ".venv" / "bin" / "gunicorn"
START_ATTEMPTS = 3


@dataclass(frozen=True)
class BenchStack:
    """The running stack: Berth's environment and the bench registry."""

    env: dict[str, str]
    registry_url: str
    ca_cert: Path
    state_dir: Path
    registry_log: Path
    access_log: bool = False

    def log_offset(self) -> int:
        """Return the current size of the bench registry's log."""
        try:
            return self.registry_log.stat().st_size
        except OSError:
            return 0

    def registry_requests_since(self, offset: int) -> int | None:
        """Count access-log lines (requests to ``/v2/``) written after ``offset``; None if off."""
        if not self.access_log:
            return None
        time.sleep(0.2)  # the registry writes each line after its response
        with open(self.registry_log, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return sum(1 for line in text.splitlines() if '"GET /v2/' in line or '"HEAD /v2/' in line)


def _start_registry(state_dir: Path, storage_root: Path, ca_cert: Path, access_log: bool) -> str:
    """Start the bench registry on a free port (log level warn); return its base URL.

    With ``access_log`` the registry writes one line per request, which lets the benchmark
    count the registry requests Berth makes (at a small CPU cost for everyone).
    """
    tls_dir = state_dir / "tls"
    config = state_dir / "bench-registry" / "config.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    log = state_dir / "logs" / "bench-registry.log"
    log.unlink(missing_ok=True)
    last = ""
    for _ in range(START_ATTEMPTS):
        port = free_port()
        text = dsregistry.render_config(
            port, storage_root, tls_dir / "server.crt", tls_dir / "server.key", log_level="warn"
        )
        if access_log:
            text = text.replace("accesslog:\n    disabled: true", "accesslog:\n    disabled: false")
        config.write_text(text)
        record = procs.start(state_dir, REGISTRY_NAME, [dsregistry.REGISTRY, "serve", str(config)], log)
        url = f"https://{LOOPBACK}:{port}"
        try:
            dsregistry.wait_ready(record, url, ca_cert)
            return url
        except dsregistry.RegistryError as exc:
            last = str(exc)
            procs.stop(state_dir, REGISTRY_NAME)
    raise BenchError(f"bench registry did not start: {last} (log: {log})")


@contextmanager
def bench_stack(
    storage_root: Path, state_dir: Path = DEFAULT_STATE_DIR, access_log: bool = False
) -> Iterator[BenchStack]:
    """Run devstack plus a registry on ``storage_root``; stop all of it on exit."""
    state_dir = Path(state_dir).resolve()
    try:
        env = devstack.up(state_dir)
        ca_cert = Path(env["BERTH_REGISTRY_CA"])
        url = _start_registry(state_dir, Path(storage_root), ca_cert, access_log)
        env = env | {
            "BERTH_REGISTRY_URL": url,
            "BERTH_REGISTRY_CA": str(ca_cert),
            "BERTH_NFS_PATH": str(storage_root),
        }
        log = state_dir / "logs" / "bench-registry.log"
        yield BenchStack(env, url, ca_cert, state_dir, log, access_log)
    finally:
        procs.stop(state_dir, REGISTRY_NAME)
        devstack.down(state_dir)


def _children(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid`` (scanning ``/proc``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _vm_hwm_kib(pid: int) -> int:
    """Return the peak resident set size (``VmHWM``) of ``pid`` in KiB, 0 if unknown."""
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


class BerthServer:
    """Berth under gunicorn on a free loopback port, with its own empty data directory.

    ``berth_dir`` is the checkout to run (default: this one), e.g. a ``git archive`` of a
    commit, to measure a stable version while the working tree is being edited.
    """

    def __init__(self, env: dict[str, str], data_dir: Path, log: Path, berth_dir: Path = PROJECT) -> None:
        self.berth_dir = Path(berth_dir).resolve()
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.data_dir = Path(data_dir)
        self.log = Path(log)
        self._env = os.environ | env | {"BERTH_DATA_DIR": str(self.data_dir)}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start gunicorn with an empty data directory and wait for ``/healthz``."""
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(GUNICORN), "--config", "gunicorn.conf.py", "--bind", f"{LOOPBACK}:{self.port}", "app:app"]
        with open(self.log, "ab") as log, open(os.devnull, "rb") as devnull:
            try:
                self._proc = subprocess.Popen(
                    argv, cwd=self.berth_dir, env=self._env, stdin=devnull, stdout=log, stderr=subprocess.STDOUT
                )
            except OSError as exc:
                raise BenchError(f"cannot run gunicorn in {self.berth_dir}: {exc}") from exc
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        """Poll ``/healthz`` until 200, failing early if gunicorn exits."""
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            session.trust_env = False
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise BenchError(f"berth exited at start (log: {self.log})")
                with suppress(requests.RequestException):
                    if session.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                        return
                time.sleep(0.1)
        raise BenchError(f"berth not healthy in {timeout:.0f}s (log: {self.log})")

    def memory(self) -> dict[str, float]:
        """Return peak RSS in MiB: the master, the largest worker and the sum of all."""
        if self._proc is None:
            return {}
        master = self._proc.pid
        workers = [_vm_hwm_kib(pid) for pid in _children(master)]
        master_kib = _vm_hwm_kib(master)
        return {
            "master_mib": round(master_kib / 1024, 1),
            "max_worker_mib": round(max(workers, default=0) / 1024, 1),
            "sum_mib": round((master_kib + sum(workers)) / 1024, 1),
            "workers": len(workers),
        }

    def stop(self, timeout: float = 25.0) -> None:
        """Stop gunicorn (SIGTERM to the master we started, SIGKILL after ``timeout``)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
