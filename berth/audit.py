"""The audit log: who did what, from where, and how it ended (SQLite)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from berth.db import Database

MAX_FIELD = 256


@dataclass(frozen=True)
class AuditEntry:
    """One audited event."""

    id: int
    at: datetime
    action: str
    outcome: str
    username: str
    address: str
    detail: str


def printable(value: str, limit: int = MAX_FIELD) -> str:
    """A user-supplied string made safe to store and show: no control characters, bounded."""
    cleaned = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in value)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


class AuditLog:
    """Appends events and reads them back, newest first."""

    def __init__(self, db: Database):
        self._db = db

    def record(self, action: str, outcome: str, username: str, address: str, detail: str = "") -> None:
        """Append one event; user-supplied text is sanitised, never secrets."""
        with self._db.connect() as conn:
            conn.execute(
                "INSERT INTO audit (at, action, outcome, username, address, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), action, outcome, printable(username), printable(address), printable(detail, 1000)),
            )

    def recent(self, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
        """Newest events first, ``limit`` of them, older than ``before_id`` when given."""
        with self._db.connect() as conn:
            rows = conn.execute(
                "SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
                (2**62 if before_id is None else max(-(2**62), min(before_id, 2**62)), limit),
            ).fetchall()
        return [
            AuditEntry(
                id=row["id"],
                at=datetime.fromtimestamp(row["at"], tz=UTC),
                action=row["action"],
                outcome=row["outcome"],
                username=row["username"],
                address=row["address"],
                detail=row["detail"],
            )
            for row in rows
        ]
