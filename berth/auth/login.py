"""Logging in: throttle, ask the directory, audit the outcome — for the web form and the API alike."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable

from berth.audit import AuditLog
from berth.auth.directory import Directory, DirectoryUser
from berth.auth.throttle import LoginThrottle
from berth.errors import (
    AccountUnusable,
    DirectoryMisconfigured,
    DirectoryUnavailable,
    InvalidCredentials,
    LockoutNear,
    LoginThrottled,
    NotPermitted,
)

log = logging.getLogger(__name__)


class LoginService:
    """Checks credentials with throttling and records every attempt in the audit log."""

    def __init__(self, directory: Directory, throttle: LoginThrottle, audit: AuditLog):
        self.directory = directory
        self.throttle = throttle
        self.audit = audit

    def login(self, username: str, password: str, address: str, channel: str = "web") -> DirectoryUser:
        """The user for these credentials; raises LoginThrottled, InvalidCredentials (or a subclass)
        or DirectoryUnavailable (DirectoryMisconfigured when Berth's settings are at fault)."""
        attempt = None
        try:
            attempt = self.throttle.begin(address)
            started = attempt
            user = self.directory.authenticate(
                username, password, before_bind=lambda account: self.throttle.claim(started, account)
            )
        except LockoutNear:
            assert attempt is not None
            self.throttle.finish(attempt, "throttled")
            self.audit.record("login", "throttled", username, address, f"{channel}: directory lockout near")
            raise
        except LoginThrottled:
            self.audit.record("login", "throttled", username, address, channel)
            raise
        except AccountUnusable as exc:
            assert attempt is not None
            self.throttle.finish(attempt, "refused")
            self.audit.record("login", "denied", username, address, f"{channel}: AD {exc.code} {type(exc).__name__}")
            raise
        except NotPermitted:
            assert attempt is not None
            self.throttle.finish(attempt, "refused")
            self.audit.record("login", "denied", username, address, f"{channel}: not in the developer group")
            raise
        except InvalidCredentials:
            assert attempt is not None
            self.throttle.finish(attempt, "failure")
            self.audit.record("login", "failure", username, address, channel)
            raise
        except DirectoryUnavailable as exc:
            if attempt is not None:
                self.throttle.discard(attempt)
            detail = exc.detail if isinstance(exc, DirectoryMisconfigured) else exc.message
            self.audit.record("login", "error", username, address, f"{channel}: {detail}")
            raise
        self.throttle.finish(attempt, "success")
        self.audit.record("login", "success", user.username, address, f"{channel}: {user.role.label}")
        return user


class BasicAuthCache:
    """Remembers recent successful API logins so each API call does not bind to LDAP.

    Keys are HMACs of username and password under the app's secret, so the cache
    never holds a password; entries live ``ttl`` seconds.
    """

    def __init__(self, secret: str, ttl: float = 60.0, max_entries: int = 1024):
        self._secret = secret.encode()
        self._ttl = ttl
        self._max = max_entries
        self._entries: dict[bytes, tuple[float, DirectoryUser]] = {}
        self._lock = threading.Lock()
        self._binding: dict[bytes, threading.Lock] = {}  # one directory bind at a time per credentials

    def _key(self, username: str, password: str) -> bytes:
        message = username.encode("utf-8", "surrogatepass") + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def get(self, username: str, password: str) -> DirectoryUser | None:
        """The cached user for these credentials, if still fresh."""
        key = self._key(username, password)
        with self._lock:
            hit = self._entries.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
            self._entries.pop(key, None)
        return None

    def put(self, username: str, password: str, user: DirectoryUser) -> None:
        """Remember a successful login for ``ttl`` seconds."""
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()
            self._entries[self._key(username, password)] = (time.monotonic() + self._ttl, user)

    def get_or_login(self, username: str, password: str, login: Callable[[], DirectoryUser]) -> DirectoryUser:
        """The cached user, else ``login()`` once for these credentials while concurrent callers wait.

        A CI fleet sends many requests at once with one account: without this, each would bind
        when the entry expires, and the throttle counts binds in flight as failures.
        """
        key = self._key(username, password)
        with self._lock:
            lock = self._binding.get(key)
            if lock is None:
                if len(self._binding) >= self._max:
                    self._binding = {k: v for k, v in self._binding.items() if v.locked()}
                lock = self._binding[key] = threading.Lock()
        with lock:
            user = self.get(username, password)
            if user is None:
                user = login()
                self.put(username, password, user)
        return user
