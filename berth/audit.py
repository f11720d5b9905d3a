"""The audit log: who did what, from where, and how it ended (SQLite)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

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


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page narrows to: a user, an action, a day (UTC); empty means any."""

    username: str = ""
    action: str = ""
    day: date | None = None

    def sql(self) -> tuple[str, list[object]]:
        """Extra ``AND`` clauses and their parameters."""
        clauses, params = "", list[object]()
        if self.username:
            clauses += " AND username = ?"
            params.append(self.username)
        if self.action:
            clauses += " AND action = ?"
            params.append(self.action)
        if self.day is not None:
            start = datetime.combine(self.day, datetime.min.time(), tzinfo=UTC).timestamp()
            clauses += " AND at >= ? AND at < ?"
            params += [start, start + 86400]
        return clauses, params


@dataclass(frozen=True)
class AuditRow:
    """An entry as the audit page shows it: repeated API logins of one user in one hour are one row."""

    entry: AuditEntry
    count: int = 1

    @property
    def job_id(self) -> int | None:
        """The job a job entry is about ('setup #12' -> 12)."""
        match = re.search(r"#(\d+)\b", self.entry.detail) if self.entry.action == "job" else None
        return int(match.group(1)) if match else None


def grouped(entries: list[AuditEntry]) -> list[AuditRow]:
    """Successful API logins folded per user, address and hour (newest kept); everything else as is."""
    rows: list[AuditRow] = []
    where: dict[tuple, int] = {}
    for entry in entries:
        if entry.action == "login" and entry.outcome == "success" and entry.detail.startswith("api"):
            key = (entry.username, entry.address, entry.at.strftime("%Y-%m-%d %H"))
            if key in where:
                index = where[key]
                rows[index] = AuditRow(rows[index].entry, rows[index].count + 1)
                continue
            where[key] = len(rows)
        rows.append(AuditRow(entry))
    return rows


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

    def recent(
        self, limit: int = 100, before_id: int | None = None, *, filters: AuditFilter | None = None
    ) -> list[AuditEntry]:
        """Newest events first, ``limit`` of them, older than ``before_id`` when given, matching ``filters``."""
        where, params = (filters or AuditFilter()).sql()
        with self._db.connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM audit WHERE id < ?{where} ORDER BY id DESC LIMIT ?",  # noqa: S608 - fixed clauses
                (2**62 if before_id is None else max(-(2**62), min(before_id, 2**62)), *params, limit),
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
