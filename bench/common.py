"""What every benchmark shares: HTTP clients for the registry, timing, the table and JSON.

Two kinds of registry client:

- :func:`pooled_session`: one ``requests.Session`` with a pool of 16 keep-alive
  connections, as a well-written client would use;
- :func:`fresh_get`: a new session (so a new TCP and TLS connection) for every request,
  as a naive script calling ``requests.get`` would.

Both verify TLS against the given CA and ignore the environment (``trust_env`` off),
since this machine sets ``REQUESTS_CA_BUNDLE``, which would otherwise replace ``verify``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

ACCEPT_MANIFESTS = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
INDEX_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)
POOL_SIZE = 16
TIMEOUT = 60
MAX_PAGES = 10_000
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class BenchError(RuntimeError):
    """A benchmark could not run (a component failed or answered wrongly)."""


@dataclass
class Measurement:
    """One timed run: what it did, how many HTTP requests, how long."""

    scenario: str
    variant: str
    requests: int
    seconds: float
    notes: dict[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict."""
        return asdict(self)


class Counter:
    """A thread-safe request counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, amount: int = 1) -> None:
        """Count ``amount`` more requests."""
        with self._lock:
            self.value += amount


def pooled_session(ca_cert: str | Path, pool_size: int = POOL_SIZE) -> requests.Session:
    """Return a keep-alive session with ``pool_size`` connections, verifying against ``ca_cert``."""
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = str(ca_cert)
    return session


def fresh_get(url: str, ca_cert: str | Path, headers: dict[str, str] | None = None) -> requests.Response:
    """GET ``url`` on a brand-new connection (what ``requests.get`` does), then close it."""
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(url, headers=headers or {}, verify=str(ca_cert), timeout=TIMEOUT)
        response.content  # noqa: B018 - read the body before the connection closes
        return response


def checked(response: requests.Response, what: str) -> requests.Response:
    """Return ``response`` if it is 200, else raise :class:`BenchError` naming ``what``."""
    if response.status_code != 200:
        raise BenchError(f"{what}: HTTP {response.status_code} {response.text[:200].strip()}")
    return response


Getter = Callable[[str, dict[str, str] | None], requests.Response]


def follow_pages(get: Getter, first_url: str, key: str, counter: Counter) -> list[str]:
    """Collect ``key`` from every page, following the registry's ``Link: <...>; rel="next"``."""
    items: list[str] = []
    url: str | None = first_url
    for _ in range(MAX_PAGES):
        if url is None:
            return items
        response = checked(get(url, None), url)
        counter.add()
        items += response.json().get(key) or []
        following = response.links.get("next", {}).get("url")
        url = urljoin(url, following) if following else None
    raise BenchError(f"more than {MAX_PAGES} pages at {first_url}")


@contextmanager
def timed() -> Iterator[list[float]]:
    """Measure the block with ``time.perf_counter``; the elapsed seconds land in ``box[0]``."""
    box = [0.0]
    started = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = time.perf_counter() - started


def median_of(runs: list[Measurement]) -> Measurement:
    """Return the run with the median time, noting every run's seconds (``runs``)."""
    ordered = sorted(runs, key=lambda run: run.seconds)
    chosen = ordered[(len(ordered) - 1) // 2]
    if len(runs) > 1:
        chosen.notes["runs"] = "/".join(f"{run.seconds:.3f}" for run in runs)
    return chosen


def format_table(rows: list[Measurement]) -> str:
    """Return the measurements as an aligned text table."""
    header = f"{'scenario':<10} {'variant':<14} {'requests':>9} {'seconds':>9}  notes"
    lines = [header, "-" * len(header)]
    for row in rows:
        notes = ", ".join(f"{key}={value}" for key, value in row.notes.items())
        lines.append(f"{row.scenario:<10} {row.variant:<14} {row.requests:>9} {row.seconds:>9.3f}  {notes}")
    return "\n".join(lines)


def ratio(numerator: float | None, denominator: float | None) -> str:
    """Return ``numerator/denominator`` as ``x.xx``, or ``n/a`` when either is missing."""
    if numerator is None or not denominator:
        return "n/a"
    return f"{numerator / denominator:.2f}"


def save_report(name: str, report: dict, target_p95_ms: float, started: float) -> None:
    """Add the target and run facts to ``report``, write it as JSON and say where."""
    import os
    import platform
    from datetime import UTC, datetime

    report["target_p95_ms"] = target_p95_ms
    report["meta"] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    print(f"\nresults: {write_json(name, report)} (total {report['meta']['total_seconds']} s)")


def write_json(name: str, payload: dict[str, object]) -> Path:
    """Write ``payload`` to ``bench/results/<name>.json`` and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
