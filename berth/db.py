"""The SQLite database under BERTH_DATA_DIR: one file shared by every gunicorn worker.

A connection is opened per unit of work (cheap for SQLite) so threads and forked
workers never share one; WAL mode lets readers run while a writer commits.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    username TEXT NOT NULL,
    address TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_login_user ON audit (action, username, at);
CREATE INDEX IF NOT EXISTS audit_login_address ON audit (action, address, at);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    dn TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role INTEGER NOT NULL,
    address TEXT NOT NULL,
    created_at REAL NOT NULL,
    checked_at REAL NOT NULL
);
"""


class Database:
    """Opens short-lived connections to one SQLite file and keeps its schema current."""

    def __init__(self, path: Path, timeout: float = 10.0):
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _make_private(self.path)
        self.add_schema(SCHEMA)

    @contextmanager
    def connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success and rolls back on error.

        ``immediate`` takes the write lock up front: a transaction that reads and then
        writes must, or SQLite answers "database is locked" at once (without waiting)
        when another connection wrote in between.
        """
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def add_schema(self, ddl: str) -> None:
        """Create the tables another module owns, if they are missing.

        Runs in every gunicorn worker at boot, possibly while another worker writes:
        switching to WAL is done only when needed (it fails at once, without waiting,
        if any other connection is busy), and a busy database is retried, never fatal.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            conn = sqlite3.connect(self.path, timeout=self.timeout)
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(ddl)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
            finally:
                conn.close()
            time.sleep(0.05)


def _make_private(path: Path) -> None:
    """Create the database file owner-only (0600) before SQLite does.

    SQLite gives the ``-wal`` and ``-shm`` files the mode of the database file, so they are
    private too. Files left wider by an older Berth are narrowed.
    """
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if name.stat().st_mode & 0o077:
                name.chmod(0o600)
