"""Login throttling in SQLite, so every gunicorn worker agrees and parallel guesses cannot race it.

Each attempt is written down *before* the directory sees the password, inside the same
write transaction that decided it may go ahead (``BEGIN IMMEDIATE``): forty guesses sent at
once are decided one after another, and each sees the ones before it.

Two limits:

- per **account** (the resolved directory entry, see ``berth.auth.directory.throttle_key``):
  the first ``max_failures`` failures are free; after that each attempt waits ``delay``
  seconds after the previous one, doubling up to ``max_delay``. An attacker is slowed, the
  owner is never locked out for longer than ``max_delay``, and a success resets the count.
- per **client address** (IPv6 counted per /64): at most ``max_address_failures`` failures
  in ``window`` seconds, with no reset, so one working account cannot launder guesses at
  others.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass

from berth.db import Database
from berth.errors import LoginThrottled

SCHEMA = """
CREATE TABLE IF NOT EXISTS login_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    account TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'pending'
);
CREATE INDEX IF NOT EXISTS login_attempts_account ON login_attempts (account, at);
CREATE INDEX IF NOT EXISTS login_attempts_address ON login_attempts (address, at);
"""


def address_key(address: str) -> str:
    """The unit an address is counted in: the IPv4 address, or the IPv6 /64 (one subscriber's block)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Attempt:
    """One login attempt, recorded as pending until ``finish``."""

    id: int
    address: str


class LoginThrottle:
    """Decides, atomically, whether a login attempt may go to the directory."""

    def __init__(
        self,
        db: Database,
        max_failures: int,
        max_address_failures: int,
        window: int,
        delay: float = 2.0,
        max_delay: float = 300.0,
        clock: Callable[[], float] = time.time,
    ):
        self._db = db
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures
        self.window = window
        self.delay = delay
        self.max_delay = max_delay
        self._clock = clock
        db.add_schema(SCHEMA)

    def begin(self, address: str) -> Attempt:
        """Record an attempt from ``address``; LoginThrottled if the address failed too often."""
        now, key = self._clock(), address_key(address)
        with self._db.connect(immediate=True) as conn:
            count, oldest = conn.execute(
                # pending counts: a guess in flight is a failure until it proves otherwise
                "SELECT COUNT(*), MIN(at) FROM login_attempts WHERE address = ? AND at > ?"
                " AND outcome IN ('pending', 'failure')",
                (key, now - self.window),
            ).fetchone()
            if count >= self.max_address_failures:
                raise LoginThrottled(retry_after=_seconds(oldest + self.window - now))
            conn.execute("DELETE FROM login_attempts WHERE at < ?", (now - max(self.window, self.max_delay) * 2,))
            cursor = conn.execute("INSERT INTO login_attempts (at, address) VALUES (?, ?)", (now, key))
        assert cursor.lastrowid is not None  # an INSERT into a rowid table always sets it
        return Attempt(cursor.lastrowid, key)

    def claim(self, attempt: Attempt, account: str) -> None:
        """Charge ``attempt`` to ``account``; LoginThrottled (attempt dropped) if the account must wait."""
        now = self._clock()
        with self._db.connect(immediate=True) as conn:
            last_success = conn.execute(
                "SELECT MAX(at) FROM login_attempts WHERE account = ? AND outcome = 'success'", (account,)
            ).fetchone()[0]
            count, latest = conn.execute(
                "SELECT COUNT(*), MAX(at) FROM login_attempts WHERE account = ? AND at > ? AND id != ?"
                " AND outcome IN ('pending', 'failure')",
                (account, max(now - self.window, last_success or 0), attempt.id),
            ).fetchone()
            wait = self.wait_after(count)
            if wait and latest + wait > now:
                conn.execute("UPDATE login_attempts SET outcome = 'throttled' WHERE id = ?", (attempt.id,))
                raise LoginThrottled(retry_after=_seconds(latest + wait - now))
            conn.execute("UPDATE login_attempts SET account = ? WHERE id = ?", (account, attempt.id))

    def wait_after(self, failures: int) -> float:
        """Seconds an account with ``failures`` recent failures waits after its last attempt."""
        if failures < self.max_failures:
            return 0.0
        return min(self.max_delay, self.delay * 2 ** min(failures - self.max_failures, 32))

    def finish(self, attempt: Attempt, outcome: str) -> None:
        """Record how the attempt ended: ``failure``, ``success`` (resets the account) or ``refused``."""
        with self._db.connect() as conn:
            conn.execute("UPDATE login_attempts SET outcome = ? WHERE id = ?", (outcome, attempt.id))

    def discard(self, attempt: Attempt) -> None:
        """Forget an attempt that never reached a verdict (the directory was unreachable)."""
        with self._db.connect() as conn:
            conn.execute("DELETE FROM login_attempts WHERE id = ?", (attempt.id,))


def _seconds(remaining: float) -> int:
    """Whole seconds to wait, at least one."""
    return max(1, int(-(-remaining // 1)))
