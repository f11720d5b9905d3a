"""Registry events applied to the cached facts: a push is in the catalog at once, a delete gone.

Only the keys an event touches change: the catalog (a new repository is inserted in
order), that repository's tag list and its tag -> digest map. An entry that is not
cached is left alone (the next read loads it from the registry anyway). Each change
goes through ``FactCache.update``, which every worker notices within a fraction of a
second; the TTL reload stays as the safety net for anything an event did not say.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from berth.catalog.cache import FactCache
from berth.events.model import RegistryEvent


def apply_events(facts: FactCache, events: Iterable[RegistryEvent]) -> int:
    """Bring the cached catalog, tag lists and digest maps up to date with ``events``; count the changes."""
    changes = 0
    for event in events:
        if event.action == "push" and event.tag and event.digest:
            changes += _pushed(facts, event.repository, event.tag, event.digest)
        elif event.action == "delete" and event.tag:
            changes += _tags_removed(facts, event.repository, {event.tag})
        elif event.action == "delete" and event.digest:
            digests = facts.get(f"digests:{event.repository}", allow_stale=True) or {}
            tags = {tag for tag, digest in digests.items() if digest == event.digest}
            changes += _tags_removed(facts, event.repository, tags)
    return changes


def _pushed(facts: FactCache, repository: str, tag: str, digest: str) -> int:
    changes = 0
    catalog = facts.get("catalog", allow_stale=True)
    if catalog is not None and not _contains(catalog, repository):
        changes += facts.update("catalog", lambda names: _with(names, repository))

    def add_tag(tags: list[str]) -> list[str] | None:
        return _with(tags, tag)

    def set_digest(digests: dict[str, str]) -> dict[str, str] | None:
        return None if digests.get(tag) == digest else {**digests, tag: digest}

    changes += facts.update(f"tags:{repository}", add_tag)
    changes += facts.update(f"digests:{repository}", set_digest)
    return changes


def _tags_removed(facts: FactCache, repository: str, gone: set[str]) -> int:
    if not gone:
        return 0

    def drop_tags(tags: list[str]) -> list[str] | None:
        kept = [t for t in tags if t not in gone]
        return kept if len(kept) != len(tags) else None

    def drop_digests(digests: dict[str, str]) -> dict[str, str] | None:
        kept = {t: d for t, d in digests.items() if t not in gone}
        return kept if len(kept) != len(digests) else None

    return facts.update(f"tags:{repository}", drop_tags) + facts.update(f"digests:{repository}", drop_digests)


def _contains(names: list[str], name: str) -> bool:
    index = bisect_left(names, name)
    return index < len(names) and names[index] == name


def _with(names: list[str], name: str) -> list[str] | None:
    """``names`` (sorted) with ``name`` inserted, or None when it is there already."""
    if _contains(names, name):
        return None
    names = list(names)
    insort(names, name)
    return names
