"""Long reads shared by every worker: who runs one, how far it got, and what it found so far.

A long read (every tag of a big repository, the whole catalog) runs once for all users and
all gunicorn workers: the worker that ``claim``\\ s a key in SQLite runs it, beats a heartbeat
as it advances, and writes what it found so far as ``partial`` rows, which any worker can
read to answer a first page before the read ends. A reader whose heartbeat is older than
``STALE_AFTER`` (its worker died) is replaced by the next one to claim the key.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from berth.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS loads (
    key TEXT PRIMARY KEY, owner TEXT NOT NULL, done INTEGER NOT NULL, total INTEGER,
    started_at REAL NOT NULL, beat_at REAL NOT NULL, finished_at REAL, error TEXT
);
CREATE TABLE IF NOT EXISTS partial (
    key TEXT NOT NULL, item TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (key, item)
);
"""
STALE_AFTER = 20.0  # seconds without a heartbeat: the reader is gone
SQLITE_BATCH = 500


@dataclass(frozen=True)
class Progress:
    """How far one long read got."""

    key: str
    done: int
    total: int | None
    running: bool
    error: str | None = None

    @property
    def percent(self) -> int | None:
        """Whole percent done, when the total is known."""
        if not self.total:
            return None
        return min(99 if self.running else 100, self.done * 100 // self.total)

    @property
    def remaining(self) -> int | None:
        return None if self.total is None else max(0, self.total - self.done)


class LoadBoard:
    """The ``loads`` and ``partial`` tables: single flight and progress across workers."""

    def __init__(self, db: Database, namespace: str = ""):
        self._db = db
        self._namespace = namespace
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        db.add_schema(SCHEMA)

    def _key(self, key: str) -> str:
        return f"{self._namespace}{key}"

    def claim(self, key: str, total: int | None) -> bool:
        """Become the reader of ``key`` unless a live one runs; True if this process now owns it."""
        now = time.time()
        with self._db.connect(immediate=True) as conn:
            row = conn.execute("SELECT finished_at, beat_at FROM loads WHERE key = ?", (self._key(key),)).fetchone()
            if row is not None and row["finished_at"] is None and now - row["beat_at"] < STALE_AFTER:
                return False
            conn.execute(
                "INSERT OR REPLACE INTO loads VALUES (?, ?, 0, ?, ?, ?, NULL, NULL)",
                (self._key(key), self.owner, total, now, now),
            )
        return True

    def advance(self, key: str, done: int, total: int | None = None) -> None:
        """Record progress (and the heartbeat) of the read this process owns."""
        with self._db.connect() as conn:
            conn.execute(
                "UPDATE loads SET done = ?, total = COALESCE(?, total), beat_at = ? WHERE key = ? AND owner = ?",
                (done, total, time.time(), self._key(key), self.owner),
            )

    def finish(self, key: str, error: str | None = None) -> None:
        """The read ended (with ``error`` if it failed); its partial rows go."""
        with self._db.connect() as conn:
            conn.execute(
                "UPDATE loads SET finished_at = ?, error = ?, done = CASE WHEN ? IS NULL THEN COALESCE(total, done)"
                " ELSE done END WHERE key = ? AND owner = ?",
                (time.time(), error, error, self._key(key), self.owner),
            )
            conn.execute("DELETE FROM partial WHERE key = ?", (self._key(key),))

    def status(self, key: str) -> Progress | None:
        """The last read of ``key``: running, finished or failed; None if there never was one."""
        with self._db.connect() as conn:
            row = conn.execute("SELECT * FROM loads WHERE key = ?", (self._key(key),)).fetchone()
        if row is None:
            return None
        running = row["finished_at"] is None and time.time() - row["beat_at"] < STALE_AFTER
        return Progress(key, row["done"], row["total"], running, row["error"])

    def put_partial(self, key: str, values: Mapping[str, str]) -> None:
        """Remember ``item -> value`` found so far."""
        if values:
            full = self._key(key)
            with self._db.connect() as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO partial VALUES (?, ?, ?)", [(full, k, v) for k, v in values.items()]
                )

    def partial(self, key: str, items: Iterable[str] | None = None) -> dict[str, str]:
        """What was found so far: all of it, or only ``items``."""
        full = self._key(key)
        with self._db.connect() as conn:
            if items is None:
                rows = conn.execute("SELECT item, value FROM partial WHERE key = ?", (full,)).fetchall()
                return {row["item"]: row["value"] for row in rows}
            wanted = list(dict.fromkeys(items))
            found: dict[str, str] = {}
            for start in range(0, len(wanted), SQLITE_BATCH):
                batch = wanted[start : start + SQLITE_BATCH]
                marks = ",".join("?" * len(batch))
                query = f"SELECT item, value FROM partial WHERE key = ? AND item IN ({marks})"  # noqa: S608
                found.update({row["item"]: row["value"] for row in conn.execute(query, [full, *batch])})
            return found


STREAM_THREAD_PREFIX = "berth-stream"


def in_stream() -> bool:
    """Whether the current thread runs a long shared read (it has its own registry pool)."""
    import threading

    return threading.current_thread().name.startswith(STREAM_THREAD_PREFIX)
