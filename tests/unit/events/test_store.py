"""Storing events once, the feed, pull counts, and events applied to the cached catalog."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from berth.catalog import cache
from berth.catalog.cache import FactCache
from berth.catalog.freshness import FreshFacts
from berth.catalog.updates import apply_events
from berth.db import Database
from berth.events.model import RegistryEvent
from berth.events.store import EventStore

AT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)  # pruning runs against the clock
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def event(id_: str, action: str = "push", repository: str = "team/app", tag: str | None = "1.0", **kw) -> RegistryEvent:
    base = RegistryEvent(id=id_, at=AT, action=action, repository=repository, tag=tag, digest=D1, actor="dave")
    return replace(base, **kw)


@pytest.fixture
def db(tmp_path):
    return Database(tmp_path / "e.sqlite3")


def test_a_retried_batch_is_stored_once(db):
    store = EventStore(db)
    batch = [event("a"), event("b", tag="2.0")]
    assert len(store.record(batch)) == 2
    assert store.record(batch) == []
    assert [e.id for e in store.recent()] == ["b", "a"]


def test_feed_is_newest_first_filtered_and_paged(db):
    store = EventStore(db)
    store.record([event(f"e{i}", at=AT + timedelta(minutes=i), actor="alice" if i % 2 else "dave") for i in range(5)])
    store.record([event("p", action="pull"), event("u", tag=None)])  # not listed: a pull, an untagged push
    assert [e.id for e in store.recent()] == ["e4", "e3", "e2", "e1", "e0"]
    assert [e.id for e in store.recent(actor="alice")] == ["e3", "e1"]
    first = store.recent(2)
    older = store.recent(2, before=(first[-1].at.timestamp(), first[-1].seq))
    assert [e.id for e in older] == ["e2", "e1"]
    assert [e.id for e in store.recent(since=AT + timedelta(minutes=3))] == ["e4", "e3"]
    assert store.recent(repository="other") == []


def test_pulls_are_counted_per_day_and_tag(db):
    store = EventStore(db)
    store.record([event(f"p{i}", action="pull", at=AT - timedelta(days=i)) for i in range(10)])
    store.record([event("p0", action="pull")])  # the same event again counts nothing
    store.record([event("q", action="pull", tag=None, digest=D2, at=AT + timedelta(hours=1))])
    assert store.pulls_since("team/app", AT.date() - timedelta(days=6)) == 8  # 7 days of 1.0 and the digest pull
    assert store.pulls_since("team/app", AT.date() - timedelta(days=6), tag="1.0") == 7
    assert store.last_pulled("team/app", D1) == AT
    assert store.last_pulled("team/app", D2) == AT + timedelta(hours=1)
    assert store.last_pulled("team/app", "sha256:" + "3" * 64) is None


def test_pruning_keeps_the_retention(db):
    now = [(AT - timedelta(days=31)).timestamp()]
    store = EventStore(db, retention_days=30, clock=lambda: now[0])
    store.record([event("old", at=AT - timedelta(days=31))])
    now[0] = (AT - timedelta(days=29)).timestamp()
    store.record([event("new", at=AT - timedelta(days=29))])
    store.record([event("old-pull", action="pull", at=AT - timedelta(days=400))])
    store.prune(AT)
    assert [e.id for e in store.recent()] == ["new"]
    assert store.pulls_since("team/app", date(2000, 1, 1)) == 0


def test_an_old_event_retried_after_a_prune_is_not_stored_again(db):
    """Ids are remembered for the retention after they arrived, whatever time the event itself names."""
    store = EventStore(db, retention_days=30, clock=AT.timestamp)
    assert [e.id for e in store.record([event("late", at=AT - timedelta(days=100))])] == ["late"]
    store.prune(AT)
    assert store.record([event("late", at=AT - timedelta(days=100))]) == []


def test_push_and_delete_update_only_cached_keys_in_every_process(db, monkeypatch):
    monkeypatch.setattr(cache, "SYNC_EVERY", 0.0)
    worker_a, worker_b = (FactCache(db, ttl=60, namespace="r|") for _ in range(2))
    worker_a.put("catalog", ["centos", "zeta"])
    worker_a.put("tags:team/app", ["0.9"])
    worker_a.put("digests:team/app", {"0.9": D2})
    assert worker_b.get("catalog") == ["centos", "zeta"]  # remembered in worker b's memory now
    assert apply_events(worker_a, [event("a")]) == 3
    assert worker_b.get("catalog") == ["centos", "team/app", "zeta"]
    assert worker_b.get("tags:team/app") == ["0.9", "1.0"]
    assert worker_b.get("digests:team/app") == {"0.9": D2, "1.0": D1}
    assert worker_b.get("tags:other") is None  # not cached: left alone
    apply_events(worker_a, [event("d", action="delete", tag=None, digest=D2)])
    assert worker_b.get("tags:team/app") == ["1.0"] and worker_b.get("digests:team/app") == {"1.0": D1}
    apply_events(worker_a, [event("t", action="delete", tag="1.0", digest=None)])
    assert worker_b.get("tags:team/app") == [] and worker_b.get("catalog") == ["centos", "team/app", "zeta"]


def test_a_load_that_began_before_an_event_does_not_undo_it(db):
    facts = FactCache(db, ttl=60, namespace="r|")
    facts.put("catalog", ["centos"])
    started = time.time()
    apply_events(facts, [event("a")])  # the push lands while a slow catalog load runs
    assert facts.put("catalog", ["centos"], loaded_since=started) == ["centos", "team/app"]
    assert FreshFacts(facts).get("catalog", lambda: ["never"]) == ["centos", "team/app"]
