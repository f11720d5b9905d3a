"""The view helpers people read: plurals, dates, download sizes, push-date sorting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from berth.catalog.listing import default_sort, group_pushed, sort_groups
from berth.catalog.service import ImageGroup
from blueprints.formatting import image_size, plural, when


@pytest.mark.parametrize(
    ("count", "word", "many", "text"),
    [
        (1, "tag", None, "1 tag"),
        (0, "tag", None, "0 tags"),
        (2, "image", None, "2 images"),
        (0, "match", "matches", "0 matches"),
        (1, "match", "matches", "1 match"),
        (1234, "repository", "repositories", "1,234 repositories"),
        (None, "tag", None, "0 tags"),
    ],
)
def test_plural(count, word, many, text):
    assert plural(count, word, many) == text


def test_when_is_absolute_utc_to_the_minute():
    moment = datetime(2026, 11, 30, 15, 2, 59, tzinfo=UTC) + timedelta(0)
    assert when(moment) == "2026-11-30 15:02"
    from datetime import timezone

    assert when(datetime(2026, 11, 30, 16, 2, tzinfo=timezone(timedelta(hours=2)))) == "2026-11-30 14:02"


@pytest.mark.parametrize("moment", [None, datetime(1970, 1, 1, tzinfo=UTC)])
def test_when_missing_or_epoch_is_unknown(moment):
    assert when(moment) == "unknown"


@dataclass
class Platform:
    size_bytes: int


@dataclass
class Img:
    images: tuple


@pytest.mark.parametrize(
    ("sizes", "text"),
    [
        ((60928,), "59.5 KiB"),
        ((60928, 60928), "59.5 KiB per platform, compressed"),
        ((60928, 60930), "59.5 KiB per platform, compressed"),  # equal once rounded: no "59.5–59.5"
        ((53248, 60928), "52.0–59.5 KiB per platform, compressed"),
        ((900, 60928), "900 B–59.5 KiB per platform, compressed"),
        ((), "—"),
    ],
)
def test_image_size_is_per_platform_never_the_sum(sizes, text):
    assert image_size(Img(tuple(Platform(s) for s in sizes))) == text
    assert image_size(Img(tuple(Platform(s) for s in sizes)), short=True) == text.removesuffix(", compressed")


D1, D2, D3 = ("sha256:" + c * 64 for c in "abc")
NOON = datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_newest_pushed_first_by_any_of_its_tags_and_undated_last():
    groups = [ImageGroup(D1, ("1.0",), None), ImageGroup(D2, ("1.1", "latest"), None), ImageGroup(D3, ("old",), None)]
    pushed = group_pushed(groups, {"1.0": NOON, "1.1": NOON - timedelta(days=1), "latest": NOON + timedelta(hours=1)})
    assert pushed == {D1: NOON, D2: NOON + timedelta(hours=1)}
    assert [g.digest for g in sort_groups(groups, "pushed", True, pushed)] == [D2, D1, D3]
    assert [g.digest for g in sort_groups(groups, "pushed", False, pushed)] == [D1, D2, D3]
    assert default_sort(pushed) == "pushed" and default_sort({}) == "name"
