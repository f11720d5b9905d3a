"""First pages first: a cold repository or catalog answers with what one page needs.

Reading every tag of a 3,000-tag repository (or every page of a 10,000-name catalog)
before showing anything makes the first view as slow as the whole read. Instead:

- a **repository** never read before answers its first page from ``tags/list`` (names
  only, cheap) and one manifest read per tag on that page, by name; the rest is read in
  the background, once for every user and worker (:class:`~berth.catalog.progress.LoadBoard`),
  and the date sort, the digest filter and the image totals arrive when it completes;
- the **catalog** never read before answers as soon as the registry's first catalog page
  holds the names the page shows (they come in lexical order); the total and the search
  over every name arrive when the walk ends.

A background read keeps going when the user leaves; its progress is in SQLite, so any
worker can show it. Once complete, the usual caches (:mod:`berth.catalog.service`) serve.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from berth.catalog.freshness import STALE_GRACE
from berth.catalog.listing import Page, filter_groups, natural_key, paginate, sort_groups
from berth.catalog.progress import STREAM_THREAD_PREFIX, LoadBoard, Progress
from berth.catalog.service import CatalogService, ImageGroup, TagInfo, group_by_digest
from berth.db import Database
from berth.errors import BerthError

log = logging.getLogger(__name__)

CHUNK = 250  # tags per step of a background read (one progress update each)
CATALOG_KEY = "catalog-walk"
POLL = 0.05


@dataclass(frozen=True)
class TagListing:
    """A repository's tags: all of them, or (while they are read) one page of them by name."""

    tags: list[TagInfo]
    tag_count: int
    progress: Progress | None = None  # None: complete
    matches: int = 0  # while reading: tags whose name starts with the filter
    first: int = 0  # while reading: position of the first tag shown

    @property
    def complete(self) -> bool:
        return self.progress is None


@dataclass(frozen=True)
class NameListing:
    """Repository names matching a search: over the whole catalog, or over the names read so far."""

    names: list[str]
    total: int
    progress: Progress | None = None  # None: complete

    @property
    def complete(self) -> bool:
        return self.progress is None


def tags_key(name: str) -> str:
    """The LoadBoard key of the shared read of every tag of ``name``."""
    return f"tags-read:{name}"


class Streaming:
    """Progressive first pages over a :class:`CatalogService`, with shared background reads."""

    def __init__(self, catalog: CatalogService, db: Database, page_wait: float = 20.0, catalog_page_size: int = 1000):
        self.catalog = catalog
        self.board = LoadBoard(db, namespace=f"{catalog.client.base_url}|")
        self.page_wait = page_wait
        self.catalog_page_size = catalog_page_size
        self._failures: dict[str, BerthError] = {}  # a shared read of this process that failed, by key

    # --- repositories ------------------------------------------------------------

    def repository(self, name: str, query: str, descending: bool, page: int, per_page: int) -> TagListing:
        """Every tag of ``name`` if known, else page ``page`` of its tags by name (and the rest reading)."""
        known = self.catalog.known_digests(name)
        if known is not None:
            return TagListing(tags := self._known_tags(name, *known, per_page), len(tags))
        names = self.catalog.tag_names(name)
        if len(names) <= per_page:  # a small repository is read whole: one page costs the same
            tags = self.catalog.tags(name)
            return TagListing(tags, len(tags))
        needle = query.strip().lower()
        ordered = sorted(names, key=natural_key, reverse=descending)
        matching = [t for t in ordered if t.lower().startswith(needle)] if needle else ordered
        pages = max(1, -(-len(matching) // per_page))
        first = (min(max(1, page), pages) - 1) * per_page
        window = matching[first : first + per_page]
        digests = self._digests(name, window)
        images, errors = self.catalog.images(name, set(digests.values()))
        # Started after this page is read, so the page has the registry to itself and the read skips it.
        progress = self._start(tags_key(name), len(names), lambda: self._read_all_tags(name))
        if progress is None:  # it completed meanwhile (or failed: the usual path raises the error)
            tags = self.catalog.tags(name)
            return TagListing(tags, len(tags))
        infos = [TagInfo(t, d, images.get(d), errors.get(d)) for t in window if (d := digests.get(t))]
        return TagListing(infos, len(names), progress, len(matching), first)

    def _known_tags(self, name: str, digests: dict[str, str], age: float, per_page: int) -> list[TagInfo]:
        """Tags read before: the usual cached path, except a large list long unread is not made to
        wait for thousands of HEADs: it answers with what it had and revalidates in the background."""
        if len(digests) <= per_page or age < self.catalog.digests_ttl(name) * STALE_GRACE:
            return self.catalog.tags(name)
        self._start(f"revalidate:{name}", len(digests), lambda: self.catalog.tag_digests(name))
        return self.catalog.tags_with(name, digests)

    def tags_progress(self, name: str) -> Progress | None:
        """The shared read of ``name``'s tags while it runs; None once complete (or never started)."""
        if self.catalog.known_digests(name) is not None:
            return None
        status = self.board.status(tags_key(name))
        return status if status is not None and status.running else None

    def _digests(self, name: str, tags: list[str]) -> dict[str, str]:
        """tag -> digest for one page: what the shared read found so far, the rest read now."""
        key = tags_key(name)
        digests = self.board.partial(key, tags)
        missing = [t for t in tags if t not in digests]
        if missing:
            read = self.catalog.read_digests(name, missing)
            self.board.put_partial(key, read)
            digests |= read
        return digests

    def _read_all_tags(self, name: str) -> None:
        """The background read: every tag's manifest and image, by name, in chunks; then the full map."""
        key = tags_key(name)
        names = self.catalog.tag_names(name)
        found = self.board.partial(key)
        todo = [t for t in sorted(names, key=natural_key) if t not in found]
        done = len(names) - len(todo)
        self.board.advance(key, done, len(names))
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            read = self.catalog.read_digests(name, chunk)
            self.board.put_partial(key, read)
            self.catalog.images(name, set(read.values()))
            done += len(chunk)
            self.board.advance(key, done)
        wanted = set(names)
        digests = {t: d for t, d in self.board.partial(key).items() if t in wanted}
        self.catalog.images(name, set(digests.values()))  # what the pages read first still needs its configs
        self.catalog.store_digests(name, digests)

    # --- the catalog -------------------------------------------------------------

    def repositories(self, query: str, needed: int) -> NameListing:
        """Names matching ``query``: all of them when the catalog is known, else those read so far.

        While the catalog is read, this waits (at most ``page_wait`` seconds) until the walk
        holds ``needed`` names, so the page it answers is the right one.
        """
        known = self.catalog.known_catalog()
        if known is not None and known[1] >= self.catalog.catalog_ttl() * STALE_GRACE:
            # long unread: answer with the names we had, walk again in the background (shared)
            self._start(CATALOG_KEY, None, self._walk)
            needle = query.strip().lower()
            return NameListing([n for n in known[0] if needle in n.lower()] if needle else known[0], len(known[0]))
        if known is not None:
            return NameListing(self.catalog.search(query), len(self.catalog.repositories()))
        progress = self._start(CATALOG_KEY, None, self._walk)
        deadline = time.monotonic() + self.page_wait
        names = self._names_so_far()
        while progress is not None and progress.running and len(names) < needed and time.monotonic() < deadline:
            time.sleep(POLL)
            progress = self.board.status(CATALOG_KEY)
            names = self._names_so_far()
        if self.catalog.known_catalog() is None and (failed := self._failures.pop(CATALOG_KEY, None)):
            raise failed  # the walk this process ran failed: its error, without reading it all again
        if self.catalog.known_catalog() is not None or progress is None or not progress.running:
            # complete, or another worker's walk failed: the usual path answers (and raises the registry's error)
            return NameListing(self.catalog.search(query), len(self.catalog.repositories()))
        needle = query.strip().lower()
        matches = [n for n in names if needle in n.lower()] if needle else names
        return NameListing(matches, len(names), progress)

    def catalog_progress(self) -> Progress | None:
        """The catalog walk while it runs; None once the catalog is known (or no walk runs)."""
        if self.catalog.known_catalog() is not None:
            return None
        status = self.board.status(CATALOG_KEY)
        return status if status is not None and status.running else None

    def _names_so_far(self) -> list[str]:
        pages = self.board.partial(CATALOG_KEY)
        return [n for index in sorted(pages) for n in json.loads(pages[index])]

    def _walk(self) -> None:
        """The background walk: each catalog page as it comes, then the whole catalog."""
        names: list[str] = []
        for number, page in enumerate(self.catalog.client.catalog_pages(self.catalog_page_size)):
            names += page
            self.board.put_partial(CATALOG_KEY, {f"{number:06d}": json.dumps(page)})
            self.board.advance(CATALOG_KEY, len(names))
        self.catalog.store_catalog(names)

    # --- plumbing ----------------------------------------------------------------

    def _start(self, key: str, total: int | None, read: Callable[[], object]) -> Progress | None:
        """Start the shared read of ``key`` here unless one runs; its progress (None if it just completed)."""
        if self.board.claim(key, total):
            threading.Thread(
                target=self._run, args=(key, read), name=f"{STREAM_THREAD_PREFIX}-{key[:40]}", daemon=True
            ).start()
        status = self.board.status(key)
        return status if status is not None and status.running else None

    def _run(self, key: str, read: Callable[[], object]) -> None:
        try:
            read()
        except BerthError as exc:
            log.info("shared read %s failed: %s", key, exc)
            self._failures[key] = exc
            self.board.finish(key, error=exc.message)
        except Exception as exc:
            log.exception("shared read %s failed", key)
            self.board.finish(key, error=type(exc).__name__)
        else:
            self.board.finish(key)


def tag_page(
    listing: TagListing, query: str, sort: str, descending: bool, number: int, per_page: int
) -> tuple[Page[ImageGroup], int | None]:
    """The page of image groups to show, and how many images there are (None while reading)."""
    if listing.complete:
        groups = group_by_digest(listing.tags)
        return paginate(sort_groups(filter_groups(groups, query), sort, descending), number, per_page), len(groups)
    # While reading, pages are pages of tags by name; a group holds the tags of this page only.
    page = Page(group_by_digest(listing.tags), listing.first // per_page + 1, per_page, listing.matches)
    return page, None
