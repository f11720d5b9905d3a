"""Registry events in SQLite: stored once by id, listed newest first, pulls counted per day.

``registry_events`` keeps manifest events (pushes, deletes, mounts and pulls) for the
retention period, with the registry's event id UNIQUE so a retried envelope is stored
once (INSERT OR IGNORE). Pulls are not listed: each new one adds to ``pull_daily``
(repository, tag, day), kept a year, and moves ``pull_last`` (repository, digest), which
retention asks "when was this image last pulled?". Old rows are pruned opportunistically
by whichever worker stores events, at most once an hour.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta

from berth.db import Database
from berth.events.model import LISTED, Activity, RegistryEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT,
    digest TEXT,
    size INTEGER,
    actor TEXT,
    source_addr TEXT,
    listed INTEGER NOT NULL,
    received REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS registry_events_feed ON registry_events (listed, at, seq);
CREATE INDEX IF NOT EXISTS registry_events_repository ON registry_events (repository, action, at);
CREATE TABLE IF NOT EXISTS pull_daily (
    day TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (repository, tag, day)
);
CREATE TABLE IF NOT EXISTS pull_last (
    repository TEXT NOT NULL, digest TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (repository, digest)
);
"""
COLUMNS = "seq, id, at, action, repository, tag, digest, size, actor, source_addr"
PRUNE_EVERY = 3600.0
AGGREGATE_DAYS = 366


class EventStore:
    """Stores registry events idempotently and answers the feed's and retention's questions."""

    def __init__(self, db: Database, retention_days: int = 30, clock: Callable[[], float] = time.time):
        self._db = db
        self.retention_days = retention_days
        self._clock = clock
        self._pruned_at = 0.0
        self._lock = threading.Lock()
        db.add_schema(SCHEMA)

    def record(self, events: Iterable[RegistryEvent]) -> list[RegistryEvent]:
        """Store the events not seen before (by id), in one transaction; return those."""
        new: list[RegistryEvent] = []
        with self._db.connect(immediate=True) as conn:
            for event in events:
                if self._insert(conn, event, self._clock()):
                    new.append(event)
                    if event.action == "pull":
                        _count_pull(conn, event)
        self._maybe_prune()
        return new

    @staticmethod
    def _insert(conn: sqlite3.Connection, event: RegistryEvent, received: float) -> bool:
        listed = event.action in LISTED and (event.action == "delete" or bool(event.tag))
        cursor = conn.execute(
            "INSERT OR IGNORE INTO registry_events (id, at, action, repository, tag, digest, size, actor,"
            " source_addr, listed, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.id, event.at.timestamp(), event.action, event.repository, event.tag, event.digest,
                event.size, event.actor, event.source_addr, int(listed), received,
            ),
        )  # fmt: skip
        return cursor.rowcount == 1

    def recent(
        self,
        limit: int = 50,
        *,
        before: tuple[float, int] | None = None,
        since: datetime | None = None,
        repository: str | None = None,
        actor: str | None = None,
    ) -> list[Activity]:
        """Listed events (pushes, deletes), newest first, filtered; ``before`` is a (time, seq) cursor."""
        where: list[str] = ["listed = 1"]
        args: list[object] = []
        if before is not None:
            where.append("(at < ? OR (at = ? AND seq < ?))")
            args += [before[0], before[0], before[1]]
        if since is not None:
            where.append("at >= ?")
            args.append(since.timestamp())
        for column, value in (("repository", repository), ("actor", actor)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        query = f"SELECT {COLUMNS} FROM registry_events WHERE {' AND '.join(where)} ORDER BY at DESC, seq DESC LIMIT ?"  # noqa: S608 - fixed clauses
        with self._db.connect() as conn:
            rows = conn.execute(query, [*args, limit]).fetchall()
        return [_activity(row) for row in rows]

    def last_pushed(self, repository: str) -> datetime | None:
        """When a tag of ``repository`` was last pushed, as far as the kept events tell."""
        with self._db.connect() as conn:
            row = conn.execute(
                "SELECT MAX(at) FROM registry_events WHERE repository = ? AND action = 'push' AND listed = 1",
                (repository,),
            ).fetchone()
        return _time(row[0])

    def last_pulled(self, repository: str, digest: str) -> datetime | None:
        """When the image ``digest`` of ``repository`` was last pulled (by tag or digest), if ever."""
        with self._db.connect() as conn:
            row = conn.execute(
                "SELECT at FROM pull_last WHERE repository = ? AND digest = ?", (repository, digest)
            ).fetchone()
        return _time(row[0]) if row else None

    def pulls_since(self, repository: str, since: date, tag: str | None = None) -> int:
        """Pulls of ``repository`` (or of one ``tag``) from the day ``since`` on (UTC days)."""
        query = "SELECT COALESCE(SUM(count), 0) FROM pull_daily WHERE repository = ? AND day >= ?"
        args: list = [repository, since.isoformat()]
        if tag is not None:
            query += " AND tag = ?"
            args.append(tag)
        with self._db.connect() as conn:
            return int(conn.execute(query, args).fetchone()[0])

    def _maybe_prune(self) -> None:
        with self._lock:
            if time.monotonic() - self._pruned_at < PRUNE_EVERY and self._pruned_at:
                return
            self._pruned_at = time.monotonic()
        self.prune(datetime.now(UTC))

    def prune(self, now: datetime) -> None:
        """Drop raw events older than the retention and daily counts older than a year."""
        oldest = (now - timedelta(days=self.retention_days)).timestamp()
        oldest_day = (now.date() - timedelta(days=AGGREGATE_DAYS)).isoformat()
        with self._db.connect() as conn:
            # By when Berth received them, not the event's own time: an id must be remembered for the
            # whole retention after it arrived, or a retried batch of old events would be stored again.
            conn.execute("DELETE FROM registry_events WHERE received < ?", (oldest,))
            conn.execute("DELETE FROM pull_daily WHERE day < ?", (oldest_day,))


def _count_pull(conn: sqlite3.Connection, event: RegistryEvent) -> None:
    day = event.at.date().isoformat()
    conn.execute(
        "INSERT INTO pull_daily VALUES (?, ?, ?, 1) ON CONFLICT (repository, tag, day) DO UPDATE SET count = count + 1",
        (day, event.repository, event.tag or ""),
    )
    if event.digest:
        conn.execute(
            "INSERT INTO pull_last VALUES (?, ?, ?)"
            " ON CONFLICT (repository, digest) DO UPDATE SET at = MAX(at, excluded.at)",
            (event.repository, event.digest, event.at.timestamp()),
        )


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _activity(row: sqlite3.Row) -> Activity:
    return Activity(
        seq=row["seq"],
        id=row["id"],
        at=datetime.fromtimestamp(row["at"], UTC),
        action=row["action"],
        repository=row["repository"],
        tag=row["tag"],
        digest=row["digest"],
        size=row["size"],
        actor=row["actor"],
        source_addr=row["source_addr"],
    )
