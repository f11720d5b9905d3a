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


def short_digest(digest: str | None) -> str:
    """'sha256:0123456789ab' (the first 12 hex digits, as docker prints)."""
    if not digest:
        return "—"
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}"


def init_app(app: Flask) -> None:
    """Register the filters."""
    app.add_template_filter(filesize)
    app.add_template_filter(utc)
    app.add_template_filter(relative)
    app.add_template_filter(short_digest)
