"""Login throttling, counted from the audit log so every gunicorn worker agrees.

A username is locked after ``max_failures`` failed logins within ``window`` seconds
(a success resets its count); a client address after ``max_address_failures``, with
no reset, so one working account cannot launder guesses at others.
"""

from __future__ import annotations

import time

from berth.audit import printable
from berth.db import Database
from berth.errors import LoginThrottled


class LoginThrottle:
    """Decides whether a login attempt may go to the directory at all."""

    def __init__(self, db: Database, max_failures: int, max_address_failures: int, window: int):
        self._db = db
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures
        self.window = window

    def check(self, username: str, address: str) -> None:
        """Raise LoginThrottled if this username or address failed too often recently."""
        since = time.time() - self.window
        with self._db.connect() as conn:
            last_success = conn.execute(
                "SELECT MAX(at) FROM audit WHERE action = 'login' AND outcome = 'success'"
                " AND username = ? COLLATE NOCASE",
                (printable(username),),
            ).fetchone()[0]
            user_failures = conn.execute(
                "SELECT COUNT(*), MIN(at) FROM audit WHERE action = 'login' AND outcome = 'failure'"
                " AND username = ? COLLATE NOCASE AND at > ?",
                (printable(username), max(since, last_success or 0)),
            ).fetchone()
            address_failures = conn.execute(
                "SELECT COUNT(*), MIN(at) FROM audit WHERE action = 'login' AND outcome = 'failure'"
                " AND address = ? AND at > ?",
                (printable(address), since),
            ).fetchone()
        limits = ((user_failures, self.max_failures), (address_failures, self.max_address_failures))
        for (count, oldest), limit in limits:
            if count >= limit:
                raise LoginThrottled(retry_after=int(oldest + self.window - time.time()) + 1)
