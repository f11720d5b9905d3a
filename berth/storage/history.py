"""The storage report kept in SQLite: the latest one, a daily sample for growth, and a background refresh.

Any worker may compute; the others read what it stored. A computation in progress is a
row with its progress and a heartbeat, so a page polled by htmx in another worker shows
how far it got, and a second worker does not start another one. One sample per day (the
last computation of that day) is kept for :data:`HISTORY_DAYS` days.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from berth.catalog.service import CatalogService
from berth.db import Database
from berth.storage.accounting import compute
from berth.storage.model import StorageReport

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS storage_reports (id INTEGER PRIMARY KEY CHECK (id = 1), report TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS storage_samples (
    day TEXT PRIMARY KEY, referenced_bytes INTEGER NOT NULL, total_bytes INTEGER, free_bytes INTEGER
);
CREATE TABLE IF NOT EXISTS storage_progress (
    id INTEGER PRIMARY KEY CHECK (id = 1), done INTEGER NOT NULL, total INTEGER NOT NULL,
    started_at REAL NOT NULL, heartbeat REAL NOT NULL
);
"""
HISTORY_DAYS = 90
STALE_PROGRESS = 30.0


@dataclass(frozen=True)
class Sample:
    """One day's figures."""

    day: str
    referenced_bytes: int
    total_bytes: int | None
    free_bytes: int | None


class StorageAccounting:
    """The registry's storage report: computed in the background, kept in SQLite."""

    def __init__(self, db: Database, catalog: CatalogService, capacity: Callable[[], dict], workers: int = 8):
        self._db = db
        self._catalog = catalog
        self._capacity = capacity
        self._workers = workers
        self._lock = threading.Lock()
        db.add_schema(SCHEMA)

    def latest(self) -> StorageReport | None:
        """The last report computed by any worker, if any."""
        with self._db.connect() as conn:
            row = conn.execute("SELECT report FROM storage_reports WHERE id = 1").fetchone()
        return StorageReport.from_dict(json.loads(row["report"])) if row else None

    def progress(self) -> tuple[int, int] | None:
        """``(done, total)`` of a computation in progress anywhere, or None."""
        with self._db.connect() as conn:
            row = conn.execute("SELECT * FROM storage_progress WHERE id = 1").fetchone()
        if row is None or time.time() - row["heartbeat"] > STALE_PROGRESS:
            return None
        return row["done"], row["total"]

    def current(self, max_age: float) -> StorageReport:
        """The latest report when younger than ``max_age`` seconds, else one computed now."""
        latest = self.latest()
        if latest is not None and (datetime.now(UTC) - latest.computed_at).total_seconds() < max_age:
            return latest
        return self.compute_now()

    def compute_now(self) -> StorageReport:
        """Compute, store and sample a report (in this thread)."""
        with self._lock:
            self._set_progress(0, 0, started=True)
            try:
                report = compute(self._catalog, self._capacity(), self._set_progress, self._workers)
            finally:
                with self._db.connect() as conn:
                    conn.execute("DELETE FROM storage_progress")
        self._store(report)
        return report

    def refresh_in_background(self) -> bool:
        """Start a computation in a thread unless one runs anywhere; whether one was started."""
        if self.progress() is not None or self._lock.locked():
            return False
        self._set_progress(0, 0, started=True)

        def run() -> None:
            try:
                self.compute_now()
            except Exception:  # a background refresh must not kill the worker; the page shows the old report
                log.exception("storage accounting failed")

        threading.Thread(target=run, name="berth-storage", daemon=True).start()
        return True

    def samples(self, days: int = HISTORY_DAYS) -> list[Sample]:
        """The daily samples of the last ``days`` days, oldest first."""
        since = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d")
        with self._db.connect() as conn:
            rows = conn.execute("SELECT * FROM storage_samples WHERE day >= ? ORDER BY day", (since,)).fetchall()
        return [Sample(r["day"], r["referenced_bytes"], r["total_bytes"], r["free_bytes"]) for r in rows]

    def _set_progress(self, done: int, total: int, started: bool = False) -> None:
        now = time.time()
        with self._db.connect() as conn:
            if started:
                conn.execute("INSERT OR REPLACE INTO storage_progress VALUES (1, 0, 0, ?, ?)", (now, now))
            else:
                conn.execute("UPDATE storage_progress SET done = ?, total = ?, heartbeat = ?", (done, total, now))

    def _store(self, report: StorageReport) -> None:
        day = report.computed_at.strftime("%Y-%m-%d")
        cutoff = (report.computed_at - timedelta(days=HISTORY_DAYS)).strftime("%Y-%m-%d")
        capacity = report.capacity or {}
        with self._db.connect() as conn:
            conn.execute("INSERT OR REPLACE INTO storage_reports VALUES (1, ?)", (json.dumps(report.as_dict()),))
            conn.execute(
                "INSERT OR REPLACE INTO storage_samples VALUES (?, ?, ?, ?)",
                (day, report.referenced_bytes, capacity.get("total_bytes"), capacity.get("free_bytes")),
            )
            conn.execute("DELETE FROM storage_samples WHERE day < ?", (cutoff,))
