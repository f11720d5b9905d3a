"""Template filters: sizes, dates and digests as people read them."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def filesize(size: int | None) -> str:
    """1536 -> '1.5 KiB'; None -> '—'."""
    if size is None:
        return "—"
    value = float(size)
    for unit in UNITS:
        if value < 1024 or unit == UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def utc(moment: datetime | None) -> str:
    """The exact time in UTC, e.g. '2024-03-01 12:00:05 UTC'."""
    if moment is None:
        return "unknown"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """'3 days ago', 'in 2 hours', 'just now'."""
    if moment is None:
        return "unknown"
    now = now or datetime.now(UTC)
    seconds = (now - moment).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    for limit, unit, size in (
        (60, "second", 1),
        (3600, "minute", 60),
        (86400, "hour", 3600),
        (86400 * 30, "day", 86400),
        (86400 * 365, "month", 86400 * 30),
        (float("inf"), "year", 86400 * 365),
    ):
        if seconds < limit:
            count = int(seconds // size)
            if unit == "second" and count < 10:
                return "just now"
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if future else f"{text} ago"
    return utc(moment)


def plural(count: int | None, word: str, many: str | None = None) -> str:
    """'1 tag', '2 tags', '0 matches' (with ``many`` for irregular plurals), thousands separated."""
    number = count or 0
    return f"{number:,} {word if number == 1 else (many or word + 's')}"


def when(moment: datetime | None) -> str:
    """An absolute UTC date to the minute, '2026-11-30 14:02'; missing or the epoch is 'unknown'.

    Reproducible builds record the epoch (1970) as their build time: that says nothing.
    """
    if moment is None or moment.timestamp() <= 0:
        return "unknown"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def image_size(image: object, short: bool = False) -> str:
    """What a pull downloads: the compressed size, per platform when there are several.

    One platform: '59.5 KiB'. Several of one size: '59.5 KiB per platform, compressed'.
    Several of different sizes: '52.0–59.5 KiB per platform, compressed'. ``short`` (for
    tables) leaves out ', compressed'.
    """
    sizes = [filesize(s) for s in sorted({p.size_bytes for p in getattr(image, "images", ())})]
    if not sizes:
        return "—"
    if len(getattr(image, "images", ())) == 1:
        return sizes[0]
    low, high = sizes[0], sizes[-1]
    if low.split()[1] == high.split()[1]:
        low = low.split()[0]
    text = high if low in (high, high.split()[0]) else f"{low}–{high}"
    return f"{text} per platform" + ("" if short else ", compressed")


def short_digest(digest: str | None) -> str:
    """'sha256:0123456789ab' (the first 12 hex digits, as docker prints)."""
    if not digest:
        return "—"
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}"


def detail_rows(value: object, label: str = "") -> list[tuple[str, str]]:
    """A nested details mapping as flat ``(label, text)`` rows, e.g. ``("mount · fs type", "nfs4")``."""
    if isinstance(value, dict):
        if not value:
            return [(label, "none")] if label else []
        rows = []
        for key, item in value.items():
            name = str(key).replace("_", " ")
            rows += detail_rows(item, f"{label} · {name}" if label else name)
        return rows
    if isinstance(value, list | tuple):
        if not value:
            return [(label, "none")]
        if all(not isinstance(item, dict | list | tuple) for item in value):
            return [(label, ", ".join(detail_rows(item, label)[0][1] for item in value))]
        rows = []
        for number, item in enumerate(value, 1):
            rows += detail_rows(item, f"{label} {number}")
        return rows
    if label.endswith("bytes") and isinstance(value, int) and not isinstance(value, bool):
        return [(label.removesuffix(" bytes"), filesize(value))]
    text = "—" if value is None else "yes" if value is True else "no" if value is False else str(value)
    return [(label, text)]


def init_app(app: Flask) -> None:
    """Register the filters."""
    app.add_template_filter(filesize)
    app.add_template_filter(utc)
    app.add_template_filter(relative)
    app.add_template_filter(short_digest)
    app.add_template_filter(plural)
    app.add_template_filter(when)
    app.add_template_filter(image_size)
