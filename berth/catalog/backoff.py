"""How long a changing fact stays fresh: longer each time a refresh finds it unchanged.

Re-reading a 10,000-name catalog or revalidating 3,000 tags every 30 seconds costs the
registry far more CPU than the pages that read them, and almost always finds the same
content. So a *large* fact (``LARGE`` items or more) that a refresh finds unchanged has
its TTL doubled, up to ``MAX_FACTOR`` times the base (8 minutes at the default 30 s);
any change puts it back to the base.
Small facts keep the base TTL: refreshing them is cheap and they are what people watch
after a push. (Registry events, where configured, invalidate a fact at once anyway.)
"""

from __future__ import annotations

from typing import Any

SCHEMA = "CREATE TABLE IF NOT EXISTS fact_ttls (key TEXT PRIMARY KEY, ttl REAL NOT NULL);"
LARGE = 100
MAX_FACTOR = 16.0


def size_of(value: Any) -> int:
    """How many items a fact holds (names, tags, tag -> digest pairs); 1 for anything else."""
    return len(value) if isinstance(value, (list, dict)) else 1


def next_ttl(base: float, current: float, previous: Any, value: Any) -> float:
    """The TTL of ``value`` just fetched, given the ``previous`` value (None if none) and its TTL."""
    if previous is None or previous != value or size_of(value) < LARGE:
        return base
    return min(max(current, base) * 2, base * MAX_FACTOR)
