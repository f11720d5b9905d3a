"""The catalog: repositories, tags and images, asking the registry as little as possible.

What makes it fast is asking less, not more threads: the catalog and tag lists are
kept ``ttl`` seconds; a tag is revalidated with one HEAD (its digest), and everything
reachable from a digest (manifests, child manifests, configs) is immutable and fetched
once, ever, then kept in SQLite for every worker and every restart. A cold repository is
read with one GET per tag (the manifest comes with its digest), so even the first look
costs no more requests than the raw floor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from berth.catalog.cache import ContentCache, FactCache, Memo
from berth.catalog.freshness import FreshFacts, in_background
from berth.catalog.progress import STREAM_THREAD_PREFIX, in_stream
from berth.catalog.updates import apply_events
from berth.db import Database
from berth.errors import BadUpstreamResponse, NotFound, UpstreamUnavailable
from berth.events.model import RegistryEvent
from berth.registry.client import RegistryClient
from berth.registry.model import Image, ImageConfig, ImageIndex, ImageManifest, PlatformImage, assemble
from berth.registry.parse import parse_config, parse_manifest
from berth.registry.references import check_name, check_reference, is_digest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TagInfo:
    """A tag and the image it points at (or why that image could not be read)."""

    tag: str
    digest: str
    image: Image | None
    error: str | None = None

    @property
    def created(self) -> datetime | None:
        return self.image.created if self.image else None

    @property
    def size_bytes(self) -> int | None:
        return self.image.size_bytes if self.image else None


@dataclass(frozen=True)
class ImageGroup:
    """Tags that point at the same digest: one image, several names."""

    digest: str
    tags: tuple[str, ...]
    image: Image | None
    error: str | None = None


def group_by_digest(tags: Iterable[TagInfo]) -> list[ImageGroup]:
    """One group per digest, in the order the digests first appear."""
    groups: dict[str, list[TagInfo]] = {}
    for info in tags:
        groups.setdefault(info.digest, []).append(info)
    return [
        ImageGroup(digest, tuple(sorted(i.tag for i in members)), members[0].image, members[0].error)
        for digest, members in groups.items()
    ]


def platforms_in_order(image: Image) -> list[PlatformImage]:
    """An image's platforms, linux/amd64 first (what most hosts pull), then by name."""
    return sorted(image.images, key=lambda p: (p.platform != "linux/amd64", p.platform))


#: Repositories only Berth uses: the setup job's self-test image (tagless once setup deletes it).
HIDDEN = frozenset({"berth-selftest"})


class CatalogService:
    """Repositories, tags and images of one registry, cached as described above."""

    def __init__(self, client: RegistryClient, db: Database, ttl: float = 30.0, workers: int = 16):
        self.client = client
        self._facts = FactCache(db, ttl, namespace=f"{client.base_url}|")
        self._fresh = FreshFacts(self._facts)
        self._shown: tuple[list[str] | None, list[str]] = (None, [])
        self._content = ContentCache(db)
        self._parsed = Memo()
        self._images = Memo(20_000)
        self._sizes = Memo(200_000)  # manifest digest -> its length in bytes (storage accounting)
        self._searches = Memo(256)
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._background_pool: ThreadPoolExecutor | None = None
        self._stream_pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, bytes] = {}  # fetched documents not yet in SQLite
        self._pending_lock = threading.Lock()

    # --- repositories ------------------------------------------------------------

    def stored_repositories(self, refresh: bool = False) -> list[str]:
        """Every repository name in the registry's catalog, sorted (Berth's self-test one too).

        ``refresh`` reloads it now (one load for all callers).
        """
        return self._fresh.get("catalog", lambda: sorted(self.client.catalog()), force=refresh)

    def repositories(self, refresh: bool = False) -> list[str]:
        """Every repository name people browse, sorted: without :data:`HIDDEN_REPOSITORIES`."""
        stored = self.stored_repositories(refresh)
        shown = self._shown  # (the stored list it came from, the shown list): one filter per catalog
        if shown[0] is not stored:
            hidden = HIDDEN.intersection(stored)
            shown = (stored, [n for n in stored if n not in hidden] if hidden else stored)
            self._shown = shown
        return shown[1]

    def catalog_age(self) -> float | None:
        """Seconds since the repository list was read from the registry (None: never)."""
        return self._fresh.age("catalog")

    @property
    def down_since(self) -> float | None:
        """Since when (epoch seconds) the registry has not answered; None while it answers."""
        return self._fresh.down_since

    def known_catalog(self) -> tuple[list[str], float] | None:
        """The last complete catalog and its age, however old; None if it was never read."""
        return self._facts.entry("catalog")

    def store_catalog(self, names: list[str]) -> None:
        """Keep a complete catalog read elsewhere (a shared long read) as fetched now."""
        self._facts.put("catalog", sorted(names))

    def search(self, query: str = "", names: list[str] | None = None) -> list[str]:
        """Repository names (``names``, else the catalog) containing ``query`` (case-insensitive)."""
        names = self.repositories() if names is None else names
        needle = query.strip().lower()
        if not needle:
            return names
        # Results are kept per catalog object: the entry holds that object, so its id cannot be reused
        # by a newer catalog while the entry lives.
        hit = self._searches.get((id(names), needle))
        if hit is None or hit[0] is not names:
            hit = (names, [n for n in names if needle in n])
            self._searches.put((id(names), needle), hit)
        return hit[1]

    def tag_names(self, name: str) -> list[str]:
        """The tags of repository ``name``; NotFound if there is no such repository."""
        check_name(name)

        def load() -> list[str]:
            try:
                return sorted(self.client.tags(name))
            except NotFound:
                raise NotFound(f"There is no repository {name!r} in registry {self.client.name}.") from None

        return self._fresh.get(f"tags:{name}", load)

    def tag_counts(self, names: Iterable[str]) -> dict[str, int | None]:
        """How many tags each repository has (None where the registry would not say)."""

        def count(name: str) -> int | None:
            if self.down_since is not None:  # the registry is down: what was saved, else unknown
                saved = self._facts.get(f"tags:{name}", allow_stale=True)
                return None if saved is None else len(saved)
            try:
                return len(self.tag_names(name))
            except (NotFound, BadUpstreamResponse, UpstreamUnavailable):
                return None

        names = list(names)
        counts = {}
        for name in names:  # fresh counts inline: handing 50 cached lookups to the pool costs more than them
            cached = self._facts.get(f"tags:{name}")
            if cached is not None:
                counts[name] = len(cached)
        missing = [n for n in names if n not in counts]
        counts.update(zip(missing, self._map(count, missing), strict=True))
        return {name: counts[name] for name in names}

    def apply_events(self, events: Iterable[RegistryEvent]) -> int:
        """Registry events into the cached facts at once (see berth.catalog.updates); count the changes."""
        return apply_events(self._facts, events)

    # --- tags and images ---------------------------------------------------------

    def tag_digests(self, name: str) -> dict[str, str]:
        """tag -> digest for every tag of ``name``, revalidated every ``ttl`` seconds."""
        return self._fresh.get(f"digests:{name}", lambda: self._load_digests(name))

    def _load_digests(self, name: str) -> dict[str, str]:
        tags = self.tag_names(name)
        previous = self._facts.get(f"digests:{name}", allow_stale=True) or {}

        def digest_of(tag: str) -> str | None:
            try:
                if tag in previous:
                    return self.client.resolve(name, tag).digest
                raw = self.client.manifest(name, tag)  # cold: the body comes with its digest
                self._remember_manifest(raw.digest, raw.media_type, raw.data)
                return raw.digest
            except NotFound:
                return None  # deleted between tags/list and now

        digests = {tag: d for tag, d in zip(tags, self._map(digest_of, tags), strict=True) if d}
        self._flush()
        return digests

    def read_digests(self, name: str, tags: list[str]) -> dict[str, str]:
        """tag -> digest for ``tags``, read now with one GET each (the manifests are kept)."""

        def digest_of(tag: str) -> str | None:
            try:
                raw = self.client.manifest(name, tag)
            except NotFound:
                return None  # deleted between tags/list and now
            self._remember_manifest(raw.digest, raw.media_type, raw.data)
            return raw.digest

        digests = {tag: d for tag, d in zip(tags, self._map(digest_of, tags), strict=True) if d}
        self._flush()
        return digests

    def known_digests(self, name: str) -> tuple[dict[str, str], float] | None:
        """The last complete tag -> digest map of ``name`` and its age, however old; None if never read."""
        return self._facts.entry(f"digests:{name}")

    def digests_ttl(self, name: str) -> float:
        """How long ``name``'s tag -> digest map stays fresh now (longer while it does not change)."""
        return self._facts.ttl_of(f"digests:{name}")

    def catalog_ttl(self) -> float:
        """How long the catalog stays fresh now (longer while it does not change)."""
        return self._facts.ttl_of("catalog")

    def store_digests(self, name: str, digests: dict[str, str]) -> None:
        """Keep a complete tag -> digest map read elsewhere (a shared long read) as fetched now."""
        self._facts.put(f"digests:{name}", digests)

    def cached_tag_counts(self, names: Iterable[str]) -> dict[str, int]:
        """Tag counts already known (fresh), without asking the registry."""
        found = self._facts.get_many(f"tags:{name}" for name in names)
        return {key.removeprefix("tags:"): len(tags) for key, tags in found.items()}

    def tags(self, name: str) -> list[TagInfo]:
        """Every tag of ``name`` with its image (size, created, platforms), sorted by tag."""
        return self.tags_with(name, self.tag_digests(name))

    def tags_with(self, name: str, digests: dict[str, str]) -> list[TagInfo]:
        """The tags of a tag -> digest map with their images, sorted by tag."""
        images, errors = self.images(name, set(digests.values()))
        return [TagInfo(tag, d, images.get(d), errors.get(d)) for tag, d in sorted(digests.items())]

    def image(self, name: str, reference: str) -> tuple[str, Image]:
        """The digest and image that ``reference`` (a tag or digest) points at now."""
        check_name(name)
        check_reference(reference)
        known = self._facts.get(f"digests:{name}") or {}  # fresh (younger than the TTL) or empty
        if is_digest(reference):
            digest = reference
        elif reference in known:
            digest = known[reference]
        else:
            try:
                digest = self._digest_of(name, reference)
            except NotFound:
                self.tag_names(name)  # raises the clearer "no repository" first
                raise NotFound(f"Repository {name!r} has no tag {reference!r}.") from None
            except UpstreamUnavailable:  # the registry is down: the digest it last gave, if any
                saved = self._facts.get(f"digests:{name}", allow_stale=True) or {}
                if reference not in saved:
                    raise
                digest = saved[reference]
        images, errors = self.images(name, [digest])
        if digest in errors:
            if is_digest(reference):
                self._check_digest_exists(name, digest)
            message = errors[digest]
            if self.client.name not in message:  # a parse error from berth.registry.parse names no registry
                message = f"Registry {self.client.name} served {name}@{digest} in a form Berth cannot read: {message}."
            raise BadUpstreamResponse(message, upstream=self.client.name)
        return digest, images[digest]

    def _digest_of(self, name: str, tag: str) -> str:
        """The digest ``tag`` points at now: a HEAD if it was seen before, else a GET (the manifest comes
        with it, so a cold tag page costs one round trip less)."""
        if tag in (self._facts.get(f"digests:{name}", allow_stale=True) or {}):
            return self.client.resolve(name, tag).digest
        raw = self.client.manifest(name, tag)
        try:
            self._remember_manifest(raw.digest, raw.media_type, raw.data)
        except BadUpstreamResponse as exc:  # a parse error from berth.registry.parse names no registry
            message = exc.message
            if self.client.name not in message:
                message = f"Registry {self.client.name} served {name}:{tag} in a form Berth cannot read: {message}."
            raise BadUpstreamResponse(message, upstream=self.client.name) from None
        return raw.digest

    def _check_digest_exists(self, name: str, digest: str) -> None:
        """NotFound (not a 502) when the registry holds no manifest ``digest`` in ``name``."""
        try:
            self.client.resolve(name, digest)
        except NotFound:
            self.tag_names(name)  # raises the clearer "no repository" first
            raise NotFound(f"Repository {name!r} has no image {digest}.") from None

    def images(self, name: str, digests: Iterable[str]) -> tuple[dict[str, Image], dict[str, str]]:
        """Assembled images by digest, and an error message for each that could not be read."""
        digests = list(dict.fromkeys(digests))
        images = {d: img for d in digests if (img := self._images.get(d)) is not None}
        missing = [d for d in digests if d not in images]
        if not missing:
            return images, {}
        errors: dict[str, str] = {}
        tops = self._documents(name, missing, self._fetch_manifest, errors)
        child_digests = [c.digest for top in tops.values() if isinstance(top, ImageIndex) for c in top.manifests]
        children = self._documents(name, child_digests, self._fetch_manifest, errors)
        manifests = [m for m in [*tops.values(), *children.values()] if isinstance(m, ImageManifest)]
        configs = self._documents(name, [m.config.digest for m in manifests], self._fetch_config, errors)
        for digest, top in tops.items():
            try:
                image = assemble(top, children, configs)
            except BadUpstreamResponse as exc:
                errors[digest] = exc.message
                continue
            self._images.put(digest, image)
            images[digest] = image
        for digest in missing:
            if digest not in images and digest not in errors:
                errors[digest] = "The registry could not serve this image."
        return images, {d: e for d, e in errors.items() if d in missing}

    def manifests(self, name: str, digests: Iterable[str]) -> tuple[dict, dict[str, str]]:
        """Manifests and indexes by digest, with the children of each index (configs are not read)."""
        errors: dict[str, str] = {}
        tops = self._documents(name, list(digests), self._fetch_manifest, errors)
        children = [c.digest for top in tops.values() if isinstance(top, ImageIndex) for c in top.manifests]
        return {**tops, **self._documents(name, children, self._fetch_manifest, errors)}, errors

    def cached_image(self, digest: str) -> Image | None:
        """The assembled image ``digest`` if this process already has it (no request)."""
        return self._images.get(digest)

    def forget(self, name: str) -> None:
        """The tags of ``name`` changed (an image was deleted): read them again at the next look."""
        for key in (f"tags:{name}", f"digests:{name}"):
            self._facts.expire(key)

    def manifest_size(self, name: str, digest: str) -> int:
        """The length in bytes of manifest ``digest`` (as stored: from memory, SQLite, else one HEAD)."""
        size = self._sizes.get(digest)
        if size is None:
            stored = self._content.get_many([digest]).get(digest)
            if stored is not None and stored[:1] == b"M":
                size = len(stored[1:].partition(b"\n")[2])
            else:
                size = self.client.resolve(name, digest).size
            self._sizes.put(digest, size)
        return size

    # --- documents by digest -----------------------------------------------------

    def _documents(self, name: str, digests: list[str], fetch: Callable, errors: dict[str, str]) -> dict:
        """Parsed documents: from memory, else SQLite, else the registry (concurrently)."""
        digests = list(dict.fromkeys(digests))
        found = {d: doc for d in digests if (doc := self._parsed.get(d)) is not None}
        wanted = [d for d in digests if d not in found]
        for digest, data in self._content.get_many(wanted).items():
            found[digest] = self._parse_stored(digest, data, errors)
        wanted = [d for d in wanted if d not in found]

        def fetch_one(digest: str):
            try:
                return fetch(name, digest)
            except (NotFound, BadUpstreamResponse) as exc:
                errors[digest] = exc.message
                return None

        fetched = {d: doc for d, doc in zip(wanted, self._map(fetch_one, wanted), strict=True) if doc is not None}
        self._flush()
        found.update(fetched)
        return {d: doc for d, doc in found.items() if doc is not None}

    def _fetch_manifest(self, name: str, digest: str) -> ImageManifest | ImageIndex:
        raw = self.client.manifest(name, digest)
        return self._remember_manifest(digest, raw.media_type, raw.data)

    def _fetch_config(self, name: str, digest: str) -> ImageConfig:
        data = self.client.blob(name, digest)
        config = parse_config(data)
        with self._pending_lock:
            self._pending[digest] = b"C" + data
        self._parsed.put(digest, config)
        return config

    def _remember_manifest(self, digest: str, media_type: str, data: bytes) -> ImageManifest | ImageIndex:
        manifest = parse_manifest(data, media_type, digest)
        self._sizes.put(digest, len(data))
        with self._pending_lock:
            self._pending[digest] = b"M" + media_type.encode() + b"\n" + data
        self._parsed.put(digest, manifest)
        return manifest

    def _flush(self) -> None:
        """Store what this phase fetched in one SQLite transaction (one commit, not one per document)."""
        with self._pending_lock:
            pending, self._pending = self._pending, {}
        self._content.put_many(pending)

    def _parse_stored(self, digest: str, stored: bytes, errors: dict[str, str]):
        """A document from the SQLite cache: b"C"+config or b"M"+media type+newline+manifest."""
        doc: ImageConfig | ImageManifest | ImageIndex
        try:
            if stored[:1] == b"C":
                doc = parse_config(stored[1:])
            else:
                media_type, _, data = stored[1:].partition(b"\n")
                doc = parse_manifest(data, media_type.decode(), digest)
                self._sizes.put(digest, len(data))
        except BadUpstreamResponse as exc:
            errors[digest] = exc.message
            return None
        self._parsed.put(digest, doc)
        return doc

    def _map(self, function: Callable, items: list) -> list:
        """``function`` over ``items`` on the bounded pool (inline for one item)."""
        if len(items) <= 1:
            return [function(item) for item in items]
        if in_stream():  # a long shared read (berth.catalog.streaming): its own pool, beside user requests
            if self._stream_pool is None:
                self._stream_pool = ThreadPoolExecutor(self._workers, thread_name_prefix=f"{STREAM_THREAD_PREFIX}-pool")
            return list(self._stream_pool.map(function, items))
        if in_background():  # a refresh ahead of expiry: a small pool, so user requests never queue behind it
            if self._background_pool is None:
                self._background_pool = ThreadPoolExecutor(4, thread_name_prefix="berth-registry-background")
            return list(self._background_pool.map(function, items))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="berth-registry")
        return list(self._pool.map(function, items))
