"""The health monitor: probes run in the background, pages read the latest snapshot.

A slow or hung component never delays a page: probes run on a schedule in a daemon
thread, each with its own deadline, and write their reports to SQLite, from which any
gunicorn worker reads. A lease in SQLite makes one worker at a time do the probing.
A probe that overruns its deadline is reported as such and is not started again
while its thread is still stuck.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from berth.db import Database
from berth.findings import Finding, Level

log = logging.getLogger(__name__)

COMPONENTS = ("registry", "nfs", "swarm", "certs")
#: The per-node checks' row (a list of node reports, not a part of its own).
NODES = "nodes"
SCHEMA = """
CREATE TABLE IF NOT EXISTS health (component TEXT PRIMARY KEY, report TEXT NOT NULL, checked_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS health_lease (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL,
                                         expires REAL NOT NULL);
"""

Probe = Callable[[], dict]

#: A report older than this many probe intervals is ``stale``: nobody has checked lately.
STALE_INTERVALS = 3


def with_state(report: dict, age: float | None, stale_after: float) -> dict:
    """``report`` with its ``state``; ``unknown`` (never checked) and ``stale`` are never ``ok``.

    A monitor polling ``/api/v1/status`` must not read "healthy" from a component nobody
    checked, nor from a check so old it says nothing about now.
    """
    if age is None or report.get("checked_at") is None:
        return {**report, "ok": False, "state": "unknown", "age_seconds": age}
    if age > stale_after:
        return {**report, "ok": False, "state": "stale", "age_seconds": age}
    levels = {finding.get("level") for finding in report.get("findings", [])}
    if report.get("unchecked") and report.get("ok") and not levels & {Level.WARNING.value, Level.CRITICAL.value}:
        return {**report, "ok": False, "state": "unknown", "age_seconds": age}
    if not report.get("ok") or Level.CRITICAL.value in levels:
        state = "critical"
    else:
        state = "warning" if Level.WARNING.value in levels else "healthy"
    return {**report, "state": state, "age_seconds": age}


def placeholder(message: str, level: Level = Level.INFO) -> dict:
    """A report for a component that has no real one (yet)."""
    return {
        "ok": level != Level.CRITICAL,
        "error": message if level == Level.CRITICAL else None,
        "findings": [Finding(level, message).as_dict()],
        "details": {},
        "checked_at": None,
    }


class HealthMonitor:
    """Runs ``probes`` every ``interval`` seconds and keeps their latest reports."""

    def __init__(
        self,
        db: Database,
        probes: dict[str, Probe],
        interval: float = 10.0,
        deadline: float = 8.0,
        background: bool = True,
    ):
        self._db = db
        self.background = background
        self._probes = probes
        self.interval = interval
        self.deadline = deadline
        self._holder = f"{os.getpid()}-{id(self)}"
        self._running: dict[str, threading.Thread] = {}
        self._started_at: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._cycle_lock = threading.Lock()
        self._cache: tuple[float, dict] | None = None
        self._cache_seconds = min(1.0, interval / 2)
        db.add_schema(SCHEMA)

    # --- reading -----------------------------------------------------------------

    def current(self) -> dict[str, dict]:
        """What pages and the API show: the latest snapshot (probed inline first when there is no thread)."""
        if self.background:
            self.start()
            return self.snapshot()
        return self.fresh_snapshot()

    def snapshot(self) -> dict[str, dict]:
        """The latest report of every component, each with ``age_seconds`` and ``state``.

        Decoded reports are kept for up to a second per process: under load, pages
        would otherwise spend most of their time re-reading the same rows.
        """
        now = time.time()
        cached = self._cache
        if cached is None or now - cached[0] > self._cache_seconds:
            with self._db.connect() as conn:
                rows = {
                    r["component"]: (json.loads(r["report"]), r["checked_at"])
                    for r in conn.execute("SELECT * FROM health")
                }
            cached = self._cache = (now, rows)
        result = {}
        # Three intervals, but never less than one whole cycle (probes run to their deadline, then sleep).
        stale_after = max(self.interval * STALE_INTERVALS, self.interval + self.deadline + 1)
        for name in COMPONENTS:
            if name not in cached[1]:
                result[name] = with_state(placeholder("Not checked yet."), None, stale_after)
                continue
            report, checked_at = cached[1][name]
            result[name] = with_state(report, round(now - checked_at, 1), stale_after)
        return result

    def nodes(self, stale_after: float) -> list[dict] | None:
        """The per-node reports of the last node check, each part with its state (None: never run, one node)."""
        with self._db.connect() as conn:
            row = conn.execute("SELECT report, checked_at FROM health WHERE component = ?", (NODES,)).fetchone()
        nodes = json.loads(row["report"]).get("nodes") if row else None
        if not nodes:
            return None
        age = round(time.time() - row["checked_at"], 1)
        return [node | {part: with_state(node[part], age, stale_after) for part in ("nfs", "ca")} for node in nodes]

    def fresh_snapshot(self) -> dict[str, dict]:
        """The snapshot, probing first (inline) if it is older than the interval."""
        snapshot = self.snapshot()
        ages = [part["age_seconds"] for part in snapshot.values()]
        if any(age is None or age > self.interval for age in ages):
            self.run_once()
            snapshot = self.snapshot()
        return snapshot

    # --- probing -----------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (once per process)."""
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive() and self._holder.startswith(f"{os.getpid()}-"):
                return
            self._holder = f"{os.getpid()}-{id(self)}"
            self._thread = threading.Thread(target=self._loop, name="berth-health", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                if self._acquire_lease():
                    self.run_once()
            except Exception:  # the loop must survive anything a probe or SQLite throws
                log.exception("health cycle failed")
            time.sleep(self.interval)

    def _acquire_lease(self) -> bool:
        now = time.time()
        expires = now + self.interval * 3
        with self._db.connect() as conn:
            conn.execute("INSERT OR IGNORE INTO health_lease VALUES (1, ?, ?)", (self._holder, expires))
            cursor = conn.execute(
                "UPDATE health_lease SET holder = ?, expires = ? WHERE id = 1 AND (holder = ? OR expires < ?)",
                (self._holder, expires, self._holder, now),
            )
            return cursor.rowcount == 1

    def run_once(self) -> None:
        """Run every probe (concurrently, each with the deadline) and store the reports."""
        with self._cycle_lock:
            results: dict[str, dict] = {}
            threads = {}
            for name, probe in self._probes.items():
                stuck = self._running.get(name)
                if stuck is not None and stuck.is_alive():
                    since = time.time() - self._started_at[name]
                    results[name] = placeholder(
                        f"The {name} check has not finished for {since:.0f} s; it is still waiting on the component.",
                        Level.CRITICAL,
                    )
                    continue
                thread = threading.Thread(target=self._run_probe, args=(name, probe, results), daemon=True)
                self._running[name], self._started_at[name] = thread, time.time()
                threads[name] = thread
                thread.start()
            deadline = time.monotonic() + self.deadline
            for name, thread in threads.items():
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    results[name] = placeholder(
                        f"The {name} check did not finish within {self.deadline:g} s.", Level.CRITICAL
                    )
            self._store(results)

    def _run_probe(self, name: str, probe: Probe, results: dict[str, dict]) -> None:
        try:
            results.setdefault(name, probe())
        except Exception as exc:  # a probe bug must show as a finding, not kill the monitor
            log.exception("%s probe failed", name)
            results.setdefault(name, placeholder(f"The {name} check failed: {type(exc).__name__}.", Level.CRITICAL))

    def _store(self, results: dict[str, dict]) -> None:
        now = time.time()
        checked = datetime.now(UTC).isoformat()
        with self._db.connect() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO health VALUES (?, ?, ?)",
                [
                    (name, json.dumps({**report, "checked_at": report.get("checked_at") or checked}), now)
                    for name, report in results.items()
                ],
            )
        self._cache = None  # this process reads its own new reports at once
