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

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import devstack
from bench.common import BenchError
from devstack import procs
from devstack import registry as dsregistry
from devstack.berth import BerthServer, BerthStartError, children, peak_rss_kib  # noqa: F401  (bench API)
from devstack.ports import LOOPBACK, free_port

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = PROJECT / ".bench-stack"
REGISTRY_NAME = "bench-registry"
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


def _start_registry(state_dir: Path, storage_root: Path, ca_cert: Path, access_log: bool, extra_yaml: str = "") -> str:
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
        config.write_text(text + extra_yaml)
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
    storage_root: Path, state_dir: Path = DEFAULT_STATE_DIR, access_log: bool = False, registry_yaml: str = ""
) -> Iterator[BenchStack]:
    """Run devstack plus a registry on ``storage_root`` (``registry_yaml`` appended to its config); stop all on exit."""
    state_dir = Path(state_dir).resolve()
    try:
        env = devstack.up(state_dir)
        ca_cert = Path(env["BERTH_REGISTRY_CA"])
        url = _start_registry(state_dir, Path(storage_root), ca_cert, access_log, registry_yaml)
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
