"""Caches that are always right, shared by every worker through SQLite.

- ``ContentCache``: documents by digest (manifests, image configs). Content-addressed,
  so they never change: no expiry, and a restart or another worker starts warm.
- ``FactCache``: what changes (the catalog, a repository's tags, tag -> digest): kept
  ``ttl`` seconds, in memory and in SQLite, so a second worker does not start cold; a large
  fact that a refresh finds unchanged is kept longer (:mod:`berth.catalog.backoff`).
  A registry event changes an entry in place (``update``) and logs the key in
  ``fact_changes``; every process reads that log at most every ``SYNC_EVERY`` seconds
  and drops exactly those keys from its memory, so all workers see a push within that.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from berth.catalog import backoff
from berth.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS content (digest TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT NOT NULL, fetched_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS fact_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS fact_changes_key ON fact_changes (key, at);
"""
SQLITE_BATCH = 500  # stays under SQLite's bound-parameter limit
SYNC_EVERY = 0.2  # seconds between two looks at the change log (one indexed query per process)
CHANGES_KEPT = 3600.0  # seconds a change stays in the log (longer than any load or sync gap)


class ContentCache:
    """Immutable documents by digest, in SQLite."""

    def __init__(self, db: Database):
        self._db = db
        db.add_schema(SCHEMA)

    def get_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The stored documents among ``digests``."""
        wanted = list(dict.fromkeys(digests))
        found: dict[str, bytes] = {}
        with self._db.connect() as conn:
            for start in range(0, len(wanted), SQLITE_BATCH):
                batch = wanted[start : start + SQLITE_BATCH]
                marks = ",".join("?" * len(batch))
                for row in conn.execute(f"SELECT digest, data FROM content WHERE digest IN ({marks})", batch):  # noqa: S608
                    found[row["digest"]] = bytes(row["data"])
        return found

    def put_many(self, documents: Mapping[str, bytes]) -> None:
        """Store documents whose content was verified against their digest."""
        if documents:
            with self._db.connect() as conn:
                conn.executemany("INSERT OR IGNORE INTO content VALUES (?, ?)", documents.items())


class FactCache:
    """JSON values that expire ``ttl`` seconds after they were fetched."""

    def __init__(self, db: Database, ttl: float, namespace: str, max_entries: int = 4096):
        self._db = db
        self.ttl = ttl
        self._namespace = namespace
        self._memory: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._ttls: dict[str, float] = {}  # keys whose TTL was stretched (backoff); others have ``ttl``
        self._max = max_entries
        self._lock = threading.Lock()
        self._synced_at = 0.0
        self._seen_change: int | None = None
        db.add_schema(SCHEMA)
        db.add_schema(backoff.SCHEMA)

    def ttl_of(self, key: str) -> float:
        """How long ``key`` stays fresh: the base TTL, or longer after unchanged refreshes."""
        return self._ttls.get(f"{self._namespace}{key}", self.ttl)

    def get(self, key: str, allow_stale: bool = False) -> Any | None:
        """The value if it was fetched less than ``ttl`` seconds ago (or ever, with allow_stale)."""
        self._sync()
        now = time.time()
        full = f"{self._namespace}{key}"
        max_age = float("inf") if allow_stale else self._ttls.get(full, self.ttl)
        with self._lock:
            hit = self._memory.get(full)
            if hit and now - hit[0] < max_age:
                self._memory.move_to_end(full)
                return hit[1]
        stored = self._stored(full, hit)
        if stored is None or now - stored[0] >= max(max_age, self._ttls.get(full, self.ttl)):
            return None
        return stored[1]

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The fresh values among ``keys`` (memory first, then one SQLite query for the rest)."""
        now = time.time()
        found: dict[str, Any] = {}
        missing: dict[str, str] = {}
        with self._lock:
            for key in keys:
                full = f"{self._namespace}{key}"
                hit = self._memory.get(full)
                if hit is not None and now - hit[0] < self._ttls.get(full, self.ttl):
                    found[key] = hit[1]
                else:
                    missing[full] = key
        wanted = list(missing)
        with self._db.connect() as conn:
            for start in range(0, len(wanted), SQLITE_BATCH):
                batch = wanted[start : start + SQLITE_BATCH]
                marks = ",".join("?" * len(batch))
                columns = "key, value, fetched_at, ttl FROM facts LEFT JOIN fact_ttls USING (key)"
                query = f"SELECT {columns} WHERE key IN ({marks})"  # noqa: S608 (placeholders only)
                for row in conn.execute(query, batch):
                    if now - row["fetched_at"] < (row["ttl"] or self.ttl):
                        value = json.loads(row["value"])
                        self._remember(row["key"], row["fetched_at"], value)
                        found[missing[row["key"]]] = value
        return found

    def _stored(self, full: str, hit: tuple[float, Any] | None) -> tuple[float, Any] | None:
        """(fetched_at, value) as stored in SQLite, reusing the memory copy ``hit`` when it is that one.

        The value (200 KB of JSON for a 10,000-name catalog) is read and decoded only when the
        stored one is newer than the copy in memory; the stretched TTL is noted on the way.
        """
        known = hit[0] if hit is not None else -1.0
        with self._db.connect() as conn:
            row = conn.execute(
                "SELECT CASE WHEN fetched_at > ? THEN value END AS value, fetched_at, ttl"
                " FROM facts LEFT JOIN fact_ttls USING (key) WHERE key = ?",
                (known, full),
            ).fetchone()
        if row is None:
            return hit
        with self._lock:
            if row["ttl"] is not None:
                self._ttls[full] = row["ttl"]
            else:
                self._ttls.pop(full, None)
        if row["value"] is None and hit is not None:
            return hit
        value = json.loads(row["value"])
        self._remember(full, row["fetched_at"], value)
        return row["fetched_at"], value

    def entry(self, key: str) -> tuple[Any, float] | None:
        """The value and its age in seconds, however old, or None if never fetched."""
        self._sync()
        full = f"{self._namespace}{key}"
        now = time.time()
        with self._lock:
            hit = self._memory.get(full)
        if hit is not None and now - hit[0] < self._ttls.get(full, self.ttl):
            return hit[1], now - hit[0]
        stored = self._stored(full, hit)
        return (stored[1], now - stored[0]) if stored is not None else None

    def shared(self, key: str) -> Any | None:
        """The value as every worker sees it now (SQLite, never this worker's memory), however old."""
        with self._db.connect() as conn:
            row = conn.execute("SELECT value FROM facts WHERE key = ?", (f"{self._namespace}{key}",)).fetchone()
        return None if row is None else json.loads(row["value"])

    def put(self, key: str, value: Any, loaded_since: float | None = None) -> Any:
        """Remember ``value`` as fetched now, and return the value in force.

        With ``loaded_since`` (when the load began), a value that an event changed in
        the meantime wins over the loaded one, which may predate the event. A large value
        that a refresh finds unchanged stays fresh longer (:mod:`berth.catalog.backoff`).
        """
        now = time.time()
        full = f"{self._namespace}{key}"
        previous = self.entry(key) if backoff.size_of(value) >= backoff.LARGE else None
        ttl = backoff.next_ttl(self.ttl, self.ttl_of(key), previous[0] if previous else None, value)
        with self._db.connect(immediate=loaded_since is not None) as conn:
            if loaded_since is not None:
                changed = conn.execute(
                    "SELECT 1 FROM fact_changes WHERE key = ? AND at >= ? LIMIT 1", (full, loaded_since)
                ).fetchone()
                row = conn.execute("SELECT value, fetched_at FROM facts WHERE key = ?", (full,)).fetchone()
                if changed and row is not None:
                    current = json.loads(row["value"])
                    self._remember(full, row["fetched_at"], current)
                    return current
            conn.execute("INSERT OR REPLACE INTO facts VALUES (?, ?, ?)", (full, json.dumps(value), now))
            if ttl != self.ttl:
                conn.execute("INSERT OR REPLACE INTO fact_ttls VALUES (?, ?)", (full, ttl))
            elif full in self._ttls:
                conn.execute("DELETE FROM fact_ttls WHERE key = ?", (full,))
        with self._lock:
            if ttl != self.ttl:
                self._ttls[full] = ttl
            else:
                self._ttls.pop(full, None)
        self._remember(full, now, value)
        return value

    def update(self, key: str, change: Callable[[Any], Any | None]) -> bool:
        """Apply ``change`` to the stored value of ``key`` (if any) for every process; False if unchanged.

        ``change`` returns the new value, or None for "no change". The entry keeps its
        fetch time, so the TTL still reloads it from the registry as a safety net.
        """
        full = f"{self._namespace}{key}"
        now = time.time()
        with self._db.connect(immediate=True) as conn:
            row = conn.execute("SELECT value, fetched_at FROM facts WHERE key = ?", (full,)).fetchone()
            new = change(json.loads(row["value"])) if row is not None else None
            if new is None:
                return False
            conn.execute("UPDATE facts SET value = ? WHERE key = ?", (json.dumps(new), full))
            seq = conn.execute("INSERT INTO fact_changes (key, at) VALUES (?, ?)", (full, now)).lastrowid or 0
            if seq % 1000 == 0:
                conn.execute("DELETE FROM fact_changes WHERE at < ?", (now - CHANGES_KEPT,))
        self._remember(full, row["fetched_at"], new)
        return True

    def _sync(self) -> None:
        """Forget the remembered entries that another process changed (at most every SYNC_EVERY s)."""
        now = time.monotonic()
        if now - self._synced_at < SYNC_EVERY:
            return
        self._synced_at = now
        with self._db.connect() as conn:
            if self._seen_change is None:
                self._seen_change = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM fact_changes").fetchone()[0]
                return
            rows = conn.execute(
                "SELECT seq, key FROM fact_changes WHERE seq > ? ORDER BY seq", (self._seen_change,)
            ).fetchall()
        if rows:
            with self._lock:
                for row in rows:
                    self._memory.pop(row["key"], None)
                self._seen_change = max(self._seen_change or 0, rows[-1]["seq"])

    def expire(self, key: str) -> None:
        """Make ``key`` due for reloading now (its value stays readable with ``allow_stale``)."""
        full = f"{self._namespace}{key}"
        with self._db.connect() as conn:
            conn.execute("UPDATE facts SET fetched_at = 0 WHERE key = ?", (full,))
        with self._lock:
            self._memory.pop(full, None)

    def _remember(self, key: str, fetched_at: float, value: Any) -> None:
        with self._lock:
            self._memory[key] = (fetched_at, value)
            self._memory.move_to_end(key)
            while len(self._memory) > self._max:
                self._memory.popitem(last=False)


class Memo:
    """A bounded, thread-safe LRU of parsed immutable objects (by digest, or any hashable key)."""

    def __init__(self, max_entries: int = 50_000):
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The remembered object, if any."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        """Remember ``value``; the least recently used entry goes when full."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)
