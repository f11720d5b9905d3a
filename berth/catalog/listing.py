"""Filtering, sorting and paging of catalog listings, over all items (never one page)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from berth.catalog.service import ImageGroup

T = TypeVar("T")
SORT_KEYS = ("name", "created")


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
    """Page ``number`` (1-based, clamped to the range) of ``items``."""
    pages = max(1, math.ceil(len(items) / per_page))
    number = min(max(1, number), pages)
    start = (number - 1) * per_page
    return Page(items[start : start + per_page], number, per_page, len(items))


def filter_groups(groups: Sequence[ImageGroup], query: str) -> list[ImageGroup]:
    """Groups with a tag starting with ``query``, or whose digest starts with it (with or without 'sha256:')."""
    needle = query.strip().lower()
    if not needle:
        return list(groups)
    return [
        g
        for g in groups
        if any(t.lower().startswith(needle) for t in g.tags)
        or g.digest.startswith(needle)
        or g.digest.partition(":")[2].startswith(needle)
    ]


def sort_groups(groups: Sequence[ImageGroup], key: str = "name", descending: bool = False) -> list[ImageGroup]:
    """Sorted by first tag name, or by created date (images without a date last either way)."""
    if key == "created":
        dated = [g for g in groups if _created(g)]
        undated = [g for g in groups if not _created(g)]
        dated.sort(key=lambda g: (_created(g), g.tags[0]), reverse=descending)
        return dated + sorted(undated, key=lambda g: g.tags[0])
    return sorted(groups, key=lambda g: natural_key(g.tags[0]), reverse=descending)


def _created(group: ImageGroup) -> datetime | None:
    return group.image.created if group.image else None


def natural_key(text: str) -> tuple:
    """Sort key that puts '1.9' before '1.10'."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text.lower()))
