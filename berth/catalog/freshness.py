"""Keeping changing facts fresh without stampedes: refresh-ahead and single-flight.

A fact (the catalog, a repository's tags, its tag -> digest map) is served from the
cache while it is younger than the TTL, so what users see is never older than that.
Once 70 % of the TTL has passed, one background refresh starts (for a key read at
least twice within a few TTLs: what nobody looks at is not refreshed), so steady traffic
never meets an expired entry. The TTL is per key (:mod:`berth.catalog.backoff`). When an
entry has expired, the first request loads it and every other request for the same key
waits for that one load ("single flight") instead of asking the registry again — or, if a
value at most twice the TTL old is at hand, is answered with it at once while the load runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from berth.catalog.cache import FactCache
from berth.errors import BerthError, UpstreamUnavailable

log = logging.getLogger(__name__)

REFRESH_AHEAD = 0.7
STALE_GRACE = 2.0  # while a reload runs, others may get a value up to 2 x TTL old instead of waiting
BACKGROUND_THREAD_PREFIX = "berth-refresh"
DOWN_SINCE = "upstream-down-since"  # the fact that holds when the upstream stopped answering
RETRY_AFTER_FAILURE = 5.0  # seconds: while the upstream is down, serve the cache without asking again sooner
HOT_READS = 3.0  # refresh ahead only keys read twice within this many TTLs: nobody waits for the others
MAX_TRACKED = 20_000


class _Flight:
    """One load in progress and its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class FreshFacts:
    """A FactCache whose entries are loaded once per expiry and refreshed ahead of it."""

    def __init__(self, facts: FactCache, background_threads: int = 4):
        self.facts = facts
        self._flights: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self._threads = background_threads
        self._pool: ThreadPoolExecutor | None = None
        self._last_failure = 0.0
        self._reads: dict[str, float] = {}  # key -> when this process last read it

    @property
    def down_since(self) -> float | None:
        """When loads started failing because the upstream did not answer (epoch seconds), else None.

        Kept in the shared cache, so every worker shows the same outage banner.
        """
        return self.facts.shared(DOWN_SINCE)

    def _mark(self, failed: bool) -> None:
        """Record that a load failed (keeping the first failure's time) or succeeded."""
        since = self.down_since
        if failed and since is None:
            self.facts.put(DOWN_SINCE, self._last_failure)
        elif not failed and since is not None:
            self.facts.put(DOWN_SINCE, None)

    def get(self, key: str, load: Callable[[], Any], force: bool = False) -> Any:
        """The value of ``key``: cached if younger than the TTL, else loaded (once for all callers).

        ``force`` reloads now whatever the age (still one load for all callers). While the
        upstream does not answer, the last value, however old, is served instead of an error
        (:attr:`down_since` says since when); only what was never loaded raises.
        """
        entry = self.facts.entry(key)
        ttl = self.facts.ttl_of(key)
        recently_read = self._note_read(key, ttl)
        if not force and entry is not None and entry[1] < ttl:
            if entry[1] > ttl * REFRESH_AHEAD and recently_read:
                self._refresh_in_background(key, load)
            return entry[0]
        if entry is not None and self._recently_failed():
            return entry[0]  # do not make every page wait for a connect that just failed
        stale = entry[0] if not force and entry is not None and entry[1] < ttl * STALE_GRACE else None
        try:
            return self._load_once(key, load, stale)
        except UpstreamUnavailable:
            if entry is None:
                raise
            return entry[0]

    def _recently_failed(self) -> bool:
        return time.time() - self._last_failure < RETRY_AFTER_FAILURE and self.down_since is not None

    def age(self, key: str) -> float | None:
        """Seconds since ``key`` was loaded, or None if never."""
        entry = self.facts.entry(key)
        return None if entry is None else entry[1]

    def _note_read(self, key: str, ttl: float) -> bool:
        """Whether ``key`` was read before within ``HOT_READS`` TTLs: only such keys are refreshed ahead."""
        now = time.monotonic()
        with self._lock:
            previous = self._reads.get(key)
            self._reads[key] = now
            if len(self._reads) > MAX_TRACKED:
                for stale_key in list(self._reads)[: MAX_TRACKED // 4]:
                    del self._reads[stale_key]
        return previous is not None and now - previous < ttl * HOT_READS

    def _load_once(self, key: str, load: Callable[[], Any], stale: Any = None) -> Any:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader and stale is not None:
            # Someone is already reloading it: answer now with what we had a moment ago
            # rather than tie up this request's thread (a worker has only a few).
            return stale
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            started = time.time()
            flight.value = self.facts.put(key, load(), loaded_since=started)
            self._mark(failed=False)
            return flight.value
        except BaseException as exc:
            flight.error = exc
            if isinstance(exc, UpstreamUnavailable):
                self._last_failure = time.time()
                self._mark(failed=True)
            raise
        finally:
            flight.done.set()
            with self._lock:
                self._flights.pop(key, None)

    def _refresh_in_background(self, key: str, load: Callable[[], Any]) -> None:
        with self._lock:
            if key in self._flights:
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=BACKGROUND_THREAD_PREFIX)
        self._pool.submit(self._quietly, key, load)

    def _quietly(self, key: str, load: Callable[[], Any]) -> None:
        try:
            self._load_once(key, load)
        except BerthError as exc:  # the next request will load it and show the error
            log.info("background refresh of %s failed: %s", key, exc)
        except Exception:
            log.exception("background refresh of %s failed", key)


def in_background() -> bool:
    """Whether the current thread is a background refresh (it should yield to user requests)."""
    return threading.current_thread().name.startswith(BACKGROUND_THREAD_PREFIX)
