"""Chart geometry for the storage page, drawn as SVG by the template (no JavaScript library).

Functions here return numbers and labels only; the template writes the ``<rect>`` and
``<polyline>`` elements, so every label is escaped like any other text on the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from berth.storage.history import Sample
from berth.storage.model import RepositoryUsage

BAR_HEIGHT = 18
BAR_GAP = 6
LABEL_WIDTH = 260
BAR_WIDTH = 420


@dataclass(frozen=True)
class Bar:
    """One repository's bar: unique bytes, then shared bytes, in the same row."""

    label: str
    y: int
    unique_width: float
    shared_width: float
    unique_bytes: int
    shared_bytes: int


@dataclass(frozen=True)
class BarChart:
    """The top repositories by bytes."""

    bars: tuple[Bar, ...]
    width: int
    height: int
    label_width: int = LABEL_WIDTH


def top_bars(repositories: Sequence[RepositoryUsage], count: int = 20) -> BarChart:
    """Bars for the ``count`` repositories with the most bytes (unique + shared)."""
    top = sorted(repositories, key=lambda r: (-r.total_bytes, r.name))[:count]
    largest = max((r.total_bytes for r in top), default=0) or 1
    bars = tuple(
        Bar(
            label=r.name if len(r.name) <= 40 else "…" + r.name[-39:],
            y=i * (BAR_HEIGHT + BAR_GAP),
            unique_width=round(BAR_WIDTH * r.unique_bytes / largest, 1),
            shared_width=round(BAR_WIDTH * r.shared_bytes / largest, 1),
            unique_bytes=r.unique_bytes,
            shared_bytes=r.shared_bytes,
        )
        for i, r in enumerate(top)
    )
    return BarChart(bars, LABEL_WIDTH + BAR_WIDTH + 10, max(1, len(bars)) * (BAR_HEIGHT + BAR_GAP))


@dataclass(frozen=True)
class Growth:
    """Referenced bytes per day as a polyline."""

    points: str
    width: int
    height: int
    first_day: str
    last_day: str
    peak_bytes: int
    dots: tuple[tuple[float, float, str, int], ...]


def growth(samples: Sequence[Sample], width: int = 680, height: int = 160) -> Growth | None:
    """The growth line over the samples (None with fewer than one sample)."""
    if not samples:
        return None
    peak = max(s.referenced_bytes for s in samples) or 1
    step = width / max(1, len(samples) - 1)
    dots = tuple(
        (round(i * step, 1), round(height - height * s.referenced_bytes / peak, 1), s.day, s.referenced_bytes)
        for i, s in enumerate(samples)
    )
    points = " ".join(f"{x},{y}" for x, y, _, _ in dots)
    return Growth(points, width, height, samples[0].day, samples[-1].day, peak, dots)
