"""Refresh-ahead and single-flight over a real SQLite fact cache."""

from __future__ import annotations

import threading
import time

import pytest

from berth.catalog.cache import FactCache
from berth.catalog.freshness import FreshFacts
from berth.db import Database
from berth.errors import UpstreamUnavailable


@pytest.fixture
def facts(tmp_path):
    return FactCache(Database(tmp_path / "f.sqlite3"), ttl=1.0, namespace="r|")


def test_one_load_for_many_concurrent_callers(facts):
    fresh, loads = FreshFacts(facts), []

    def load():
        loads.append(1)
        time.sleep(0.3)
        return ["a"]

    results = []
    threads = [threading.Thread(target=lambda: results.append(fresh.get("catalog", load))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [["a"]] * 8 and len(loads) == 1


def test_refresh_ahead_keeps_serving_within_the_ttl(facts):
    fresh, loads = FreshFacts(facts), []

    def load():
        loads.append(time.monotonic())
        return len(loads)

    assert fresh.get("k", load) == 1
    time.sleep(0.75)  # past 70 % of the TTL: served from cache, refreshed in the background
    assert fresh.get("k", load) == 1
    time.sleep(0.2)
    assert len(loads) == 2 and fresh.get("k", load) == 2


def _concurrently(fresh, key, load, callers=3):
    outcomes = []

    def call():
        try:
            outcomes.append(fresh.get(key, load))
        except UpstreamUnavailable as exc:
            outcomes.append(f"error: {exc.message}")

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
        time.sleep(0.02)  # the first one leads
    for t in threads:
        t.join()
    return outcomes


def failing():
    time.sleep(0.2)
    raise UpstreamUnavailable("registry down", upstream="registry")


def test_a_never_loaded_key_shares_the_leaders_error(facts):
    assert _concurrently(FreshFacts(facts), "new", failing) == ["error: registry down"] * 3


def test_while_an_expired_key_reloads_others_get_the_recent_value(facts):
    fresh = FreshFacts(facts)
    fresh.get("k", lambda: "old")
    time.sleep(1.05)  # expired, but within the grace of 2 x TTL
    outcomes = _concurrently(fresh, "k", failing)
    assert outcomes == ["old", "old", "old"]  # the registry is down: what was saved, not an error page
    assert fresh.down_since is not None


def test_a_down_upstream_is_not_asked_again_at_once_and_recovery_clears_it(facts):
    fresh = FreshFacts(facts)
    fresh.get("k", lambda: "old")
    time.sleep(1.05)
    assert fresh.get("k", failing) == "old"
    calls = []
    assert fresh.get("k", lambda: calls.append(1) or "new") == "old"  # within RETRY_AFTER_FAILURE
    assert calls == []
    fresh._last_failure = 0.0  # the retry pause is over
    assert fresh.get("k", lambda: "new") == "new"
    assert fresh.down_since is None


def test_force_reloads_a_fresh_value_once(facts):
    fresh = FreshFacts(facts)
    fresh.get("k", lambda: "old")
    assert fresh.get("k", lambda: "ignored") == "old"
    assert fresh.get("k", lambda: "new", force=True) == "new"
    assert fresh.age("k") is not None and fresh.age("k") < 1
