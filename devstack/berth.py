"""Berth itself under gunicorn, started as the README deploys it, for tests and benchmarks.

:class:`BerthServer` runs ``gunicorn --config gunicorn.conf.py app:app`` (or another entry
point) on a free loopback port with its own empty data directory, waits until ``/healthz``
answers, and stops it with its whole process group. The browser journeys, the fault tests
and every benchmark start Berth through it, so all of them run what users run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import requests

from devstack.ports import LOOPBACK, free_port

PROJECT = Path(__file__).resolve().parent.parent
GUNICORN = PROJECT / ".venv" / "bin" / "gunicorn"


class BerthStartError(RuntimeError):
    """Berth did not start or did not become healthy; the message names its log."""


def children(pid: int) -> list[int]:
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


def peak_rss_kib(pid: int) -> int:
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

    def __init__(
        self,
        env: dict[str, str],
        data_dir: Path,
        log: Path,
        berth_dir: Path = PROJECT,
        app: str = "app:app",
        clean_env: bool = False,
    ) -> None:
        self.berth_dir = Path(berth_dir).resolve()
        self.app = app
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.data_dir = Path(data_dir)
        self.log = Path(log)
        inherited = dict(os.environ)
        if clean_env:  # only the given settings: none leak in from the caller's shell
            inherited = {k: v for k, v in inherited.items() if not k.startswith(("BERTH_", "DOCKER_", "PROMETHEUS_"))}
        self.env = inherited | env | {"BERTH_DATA_DIR": str(self.data_dir)}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, fresh: bool = True) -> None:
        """Start gunicorn and wait for ``/healthz``, on an empty data directory (``fresh=False``: the one it has)."""
        if fresh and self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(GUNICORN), "--config", "gunicorn.conf.py", "--bind", f"{LOOPBACK}:{self.port}", self.app]
        with open(self.log, "ab") as log, open(os.devnull, "rb") as devnull:
            try:
                self._proc = subprocess.Popen(
                    argv,
                    cwd=self.berth_dir,
                    env=self.env,
                    stdin=devnull,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a stuck worker can be killed with its group
                )
            except OSError as exc:
                raise BerthStartError(f"cannot run gunicorn in {self.berth_dir}: {exc}") from exc
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        """Poll ``/healthz`` until 200, failing early if gunicorn exits."""
        deadline = time.monotonic() + timeout
        with requests.Session() as session:
            session.trust_env = False
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise BerthStartError(f"berth exited at start (log: {self.log})")
                with suppress(requests.RequestException):
                    if session.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                        return
                time.sleep(0.1)
        raise BerthStartError(f"berth not healthy in {timeout:.0f}s (log: {self.log})")

    def memory(self) -> dict[str, float]:
        """Return peak RSS in MiB: the master, the largest worker and the sum of all."""
        if self._proc is None:
            return {}
        master = self._proc.pid
        workers = [peak_rss_kib(pid) for pid in children(master)]
        master_kib = peak_rss_kib(master)
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
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    @property
    def master_pid(self) -> int | None:
        """The gunicorn master's pid, while it runs."""
        return self._proc.pid if self._proc is not None else None

    def log_tail(self, size: int = 3000) -> str:
        """The end of gunicorn's log, for a failure message."""
        with suppress(OSError):
            return self.log.read_text(errors="replace")[-size:]
        return ""
