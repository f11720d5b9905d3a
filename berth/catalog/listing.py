"""Filtering, sorting and paging of catalog listings, over all items (never one page)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from berth.catalog.service import ImageGroup

T = TypeVar("T")
SORT_KEYS = ("pushed", "created", "name")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a longer list."""

    items: Sequence[T]
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def beyond(self) -> bool:
        """Whether this page number lies past the last page."""
        return self.number > self.pages

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    @property
    def first_index(self) -> int:
        """1-based position of the first item shown (0 when empty)."""
        return (self.number - 1) * self.per_page + 1 if self.total else 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.items) - 1 if self.total else 0


def paginate(items: Sequence[T], number: int, per_page: int) -> Page[T]:
    """Page ``number`` (1-based; below 1 means 1) of ``items``; a page past the end is empty.

    Callers say so (:attr:`Page.beyond`) instead of silently showing the last page.
    """
    number = max(1, number)
    start = (number - 1) * per_page
    return Page(items[start : start + per_page], number, per_page, len(items))


def filter_groups(groups: Sequence[ImageGroup], query: str) -> list[ImageGroup]:
    """Groups with a tag containing ``query`` anywhere, or whose digest starts with it (with or without 'sha256:')."""
    needle = query.strip().lower()
    if not needle:
        return list(groups)
    return [
        g
        for g in groups
        if any(needle in t.lower() for t in g.tags)
        or g.digest.startswith(needle)
        or g.digest.partition(":")[2].startswith(needle)
    ]


def group_pushed(groups: Sequence[ImageGroup], pushed: Mapping[str, datetime]) -> dict[str, datetime]:
    """digest -> when a tag of it was last pushed (only digests with a known date)."""
    latest: dict[str, datetime] = {}
    for group in groups:
        dates = [pushed[t] for t in group.tags if t in pushed]
        if dates:
            latest[group.digest] = max(dates)
    return latest


def default_sort(pushed: Mapping[str, datetime]) -> str:
    """Newest pushed first when push dates are known, else by name."""
    return "pushed" if pushed else "name"


def sort_groups(
    groups: Sequence[ImageGroup],
    key: str = "name",
    descending: bool = False,
    pushed: Mapping[str, datetime] | None = None,
) -> list[ImageGroup]:
    """Sorted by first tag name, build date or push date (``pushed``: digest -> date); undated last."""
    if key in ("created", "pushed"):
        dates = dict(pushed or {}) if key == "pushed" else {g.digest: d for g in groups if (d := _created(g))}
        dated = [g for g in groups if g.digest in dates]
        undated = [g for g in groups if g.digest not in dates]
        dated.sort(key=lambda g: (dates[g.digest], g.tags[0]), reverse=descending)
        return dated + sorted(undated, key=lambda g: natural_key(g.tags[0]))
    return sorted(groups, key=lambda g: natural_key(g.tags[0]), reverse=descending)


def _created(group: ImageGroup) -> datetime | None:
    """The build date, unless it is missing or the epoch (reproducible builds write 1970)."""
    created = group.image.created if group.image else None
    return created if created is not None and created.timestamp() > 0 else None


def natural_key(text: str) -> tuple:
    """Sort key that puts '1.9' before '1.10'."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text.lower()))
