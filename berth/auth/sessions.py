"""Server-side login sessions: the browser cookie only carries a random id.

Keeping sessions here (not just in a signed cookie) makes logout final — a copied or
replayed cookie is worthless afterwards — and lets roles be re-checked against the
directory on a schedule.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from berth.db import Database
from berth.roles import Role


@dataclass(frozen=True)
class SessionRecord:
    """A logged-in user as Berth last saw them in the directory."""

    id: str
    username: str
    dn: str
    display_name: str
    role: Role
    address: str
    created_at: float
    checked_at: float


class SessionStore:
    """Creates, reads, refreshes and ends sessions.

    Reads are kept for ``cache_seconds`` per process (every request reads its session);
    a logout in one worker therefore reaches the others within that time.
    """

    def __init__(self, db: Database, lifetime: int, cache_seconds: float = 2.0):
        self._db = db
        self.lifetime = lifetime
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, SessionRecord]] = {}
        self._lock = threading.Lock()

    def create(self, username: str, dn: str, display_name: str, role: Role, address: str) -> SessionRecord:
        """Start a session; the returned id goes into the cookie."""
        now = time.time()
        record = SessionRecord(secrets.token_urlsafe(32), username, dn, display_name, role, address, now, now)
        with self._db.connect() as conn:
            conn.execute("DELETE FROM sessions WHERE created_at < ?", (now - self.lifetime,))
            conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (record.id, username, dn, display_name, int(role), address, now, now),
            )
        return record

    def get(self, session_id: str) -> SessionRecord | None:
        """The live session with this id, or None if unknown, ended or expired."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(session_id)
        if hit and now - hit[0] < self._cache_seconds and hit[1].created_at >= time.time() - self.lifetime:
            return hit[1]
        record = self._read(session_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            if record is None:
                self._cache.pop(session_id, None)
            else:
                self._cache[session_id] = (now, record)
        return record

    def _read(self, session_id: str) -> SessionRecord | None:
        with self._db.connect() as conn:
            row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None or row["created_at"] < time.time() - self.lifetime:
            return None
        return SessionRecord(
            row["id"],
            row["username"],
            row["dn"],
            row["display_name"],
            Role(row["role"]),
            row["address"],
            row["created_at"],
            row["checked_at"],
        )

    def refresh(self, session_id: str, display_name: str, role: Role) -> None:
        """Record what the directory said about the user just now."""
        self._forget(session_id)
        with self._db.connect() as conn:
            conn.execute(
                "UPDATE sessions SET display_name = ?, role = ?, checked_at = ? WHERE id = ?",
                (display_name, int(role), time.time(), session_id),
            )

    def end(self, session_id: str) -> None:
        """Forget the session; its cookie no longer logs anyone in."""
        self._forget(session_id)
        with self._db.connect() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._cache.pop(session_id, None)
