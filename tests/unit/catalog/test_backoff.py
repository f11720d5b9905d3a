"""Large facts that do not change are refreshed less often; what nobody reads is not refreshed ahead."""

from __future__ import annotations

import time

from berth.catalog.backoff import LARGE, MAX_FACTOR, next_ttl
from berth.catalog.cache import FactCache
from berth.catalog.freshness import FreshFacts
from berth.db import Database

BIG = [f"name-{i}" for i in range(LARGE)]


def test_next_ttl_doubles_for_large_unchanged_values_up_to_the_cap():
    assert next_ttl(30, 30, None, BIG) == 30  # first read
    assert next_ttl(30, 30, BIG, BIG) == 60
    assert next_ttl(30, 120, BIG, BIG) == 240
    assert next_ttl(30, 240, BIG, BIG) == 30 * MAX_FACTOR
    assert next_ttl(30, 240, BIG, [*BIG, "new"]) == 30  # a change: back to the base
    assert next_ttl(30, 30, ["a"], ["a"]) == 30  # small facts keep the base TTL


def test_fact_cache_stretches_and_resets_the_ttl_for_every_worker(tmp_path):
    db = Database(tmp_path / "f.sqlite3")
    one = FactCache(db, ttl=10, namespace="r|")
    one.put("catalog", BIG)
    assert one.ttl_of("catalog") == 10
    one.put("catalog", BIG)
    one.put("catalog", BIG)
    assert one.ttl_of("catalog") == 40
    other = FactCache(db, ttl=10, namespace="r|")  # another worker learns it with the value
    assert other.entry("catalog") is not None and other.ttl_of("catalog") == 40
    other.put("catalog", [*BIG, "new"])
    assert other.ttl_of("catalog") == 10
    one._memory.clear()
    assert one.entry("catalog") is not None and one.ttl_of("catalog") == 10


def test_refresh_ahead_only_for_keys_read_again(tmp_path):
    facts = FactCache(Database(tmp_path / "f.sqlite3"), ttl=1.0, namespace="r|")
    fresh, loads = FreshFacts(facts), []

    def load():
        loads.append(1)
        return len(loads)

    fresh.get("cold", load)
    facts.put("once", 0)  # stored long ago by someone, never read by this process
    time.sleep(0.75)
    assert fresh.get("once", load) == 0  # read once past 70 %: answered, not refreshed
    assert fresh.get("cold", load) == 1  # read before: refreshed ahead
    time.sleep(0.2)
    assert len(loads) == 2


def test_get_many_answers_fresh_values_from_memory_and_one_query(tmp_path):
    db = Database(tmp_path / "f.sqlite3")
    one = FactCache(db, ttl=10, namespace="r|")
    one.put("tags:a", ["1"])
    one.put("tags:b", ["1", "2"])
    other = FactCache(db, ttl=10, namespace="r|")  # nothing in memory: read from SQLite
    assert other.get_many(["tags:a", "tags:b", "tags:c"]) == {"tags:a": ["1"], "tags:b": ["1", "2"]}
    with db.connect() as conn:
        conn.execute("UPDATE facts SET fetched_at = fetched_at - 60 WHERE key = 'r|tags:a'")
    assert FactCache(db, ttl=10, namespace="r|").get_many(["tags:a", "tags:b"]) == {"tags:b": ["1", "2"]}
