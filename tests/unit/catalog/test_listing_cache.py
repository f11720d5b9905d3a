"""Paging, filtering, sorting, formatting and the caches, without any server."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from berth.catalog.cache import ContentCache, FactCache, Memo
from berth.catalog.listing import filter_groups, paginate, sort_groups
from berth.catalog.service import ImageGroup
from berth.db import Database
from blueprints.formatting import filesize, relative, short_digest, utc

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


class FakeImage:
    """Only what sorting reads: a created date."""

    def __init__(self, created):
        self.created = created


def group(digest, tags, created):
    return ImageGroup(digest, tuple(tags), FakeImage(created) if created is not None else None)


JAN = datetime(2024, 1, 1, tzinfo=UTC)
GROUPS = [group(D1, ["1.10", "latest"], JAN), group(D2, ["1.9"], JAN - timedelta(days=30)), group(D3, ["broken"], None)]


@pytest.mark.parametrize(
    ("number", "expected_number", "items", "beyond"),
    [(1, 1, [0, 1], False), (3, 3, [4], False), (9, 9, [], True), (0, 1, [0, 1], False)],
)
def test_paginate_says_when_a_page_is_past_the_end(number, expected_number, items, beyond):
    page = paginate(list(range(5)), number, 2)
    assert page.number == expected_number and list(page.items) == items and page.pages == 3
    assert page.beyond is beyond


def test_empty_page():
    page = paginate([], 1, 50)
    assert page.total == 0 and page.pages == 1 and page.first_index == 0 and not page.has_next


def test_filter_by_tag_anywhere_and_digest_prefix():
    assert [g.digest for g in filter_groups(GROUPS, "lat")] == [D1]
    assert [g.digest for g in filter_groups(GROUPS, "test")] == [D1]  # anywhere in the tag, not only its start
    assert [g.digest for g in filter_groups(GROUPS, ".9")] == [D2]
    assert [g.digest for g in filter_groups(GROUPS, "sha256:bbb")] == [D2]
    assert [g.digest for g in filter_groups(GROUPS, "ccc")] == [D3]
    assert filter_groups(GROUPS, "") == GROUPS


def test_sort_by_created_puts_undated_last_both_ways():
    assert [g.digest for g in sort_groups(GROUPS, "created", descending=True)] == [D1, D2, D3]
    assert [g.digest for g in sort_groups(GROUPS, "created", descending=False)] == [D2, D1, D3]


def test_sort_by_name_is_natural():
    assert [g.tags[0] for g in sort_groups(GROUPS, "name")] == ["1.9", "1.10", "broken"]


@pytest.mark.parametrize(
    ("size", "text"), [(None, "—"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")]
)
def test_filesize(size, text):
    assert filesize(size) == text


def test_dates():
    now = datetime(2024, 6, 1, 12, tzinfo=UTC)
    assert relative(now - timedelta(days=3), now) == "3 days ago"
    assert relative(now - timedelta(seconds=3), now) == "just now"
    assert relative(now + timedelta(hours=2), now) == "in 2 hours"
    assert relative(now - timedelta(days=800), now) == "2 years ago"
    assert relative(None) == "unknown"
    assert utc(now) == "2024-06-01 12:00:00 UTC"
    assert short_digest(D1) == "sha256:aaaaaaaaaaaa"


def test_fact_cache_expires_and_is_shared_through_sqlite(tmp_path):
    db = Database(tmp_path / "c.sqlite3")
    one = FactCache(db, ttl=1, namespace="r|")
    one.put("catalog", ["a", "b"])
    assert FactCache(db, ttl=1, namespace="r|").get("catalog") == ["a", "b"]  # another worker
    assert FactCache(db, ttl=1, namespace="other|").get("catalog") is None
    time.sleep(1.05)
    assert one.get("catalog") is None
    assert one.get("catalog", allow_stale=True) == ["a", "b"]


def test_content_cache_many(tmp_path):
    cache = ContentCache(Database(tmp_path / "c.sqlite3"))
    documents = {f"sha256:{i:064x}": f"doc {i}".encode() for i in range(1200)}
    cache.put_many(documents)
    assert cache.get_many(list(documents) + ["sha256:missing"]) == documents


def test_memo_is_bounded():
    memo = Memo(max_entries=2)
    memo.put("a", 1)
    memo.put("b", 2)
    memo.get("a")
    memo.put("c", 3)
    assert memo.get("b") is None and memo.get("a") == 1 and memo.get("c") == 3


def test_pushed_times_read_link_mtimes_in_a_child(tmp_path):
    import os

    from berth.catalog.pushed import pushed_times, tags_directory

    tags = tags_directory(tmp_path, "team/app")
    for tag, stamp in (("1.0", 1_700_000_000), ("latest", 1_800_000_000)):
        link = tags / tag / "current" / "link"
        link.parent.mkdir(parents=True)
        link.write_text("sha256:" + "a" * 64)
        os.utime(link, (stamp, stamp))
    (tags / "half-deleted").mkdir()
    times = pushed_times(tmp_path, "team/app")
    assert times == {
        "1.0": datetime.fromtimestamp(1_700_000_000, UTC),
        "latest": datetime.fromtimestamp(1_800_000_000, UTC),
    }
    assert pushed_times(tmp_path, "missing") == {}
