"""Storage accounting: which blobs every tag references, and each repository's unique and shared bytes.

Everything is computed from the catalog's caches: a manifest or config is read from the
registry once, ever (content-addressed, kept in SQLite), so a second computation costs only
the listing requests (catalog, tags, one HEAD per tag) plus the documents of new pushes.
Configs are not read: sizes are in the manifests; an image's creation date is shown when
the catalog already assembled it. Bytes are exact sums over distinct blobs: manifests
(their own length), configs and layers as the manifests declare them. A blob is *unique*
to a repository when no other repository references it, else *shared*. Attestation
manifests of an index are not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from berth.catalog.service import CatalogService
from berth.errors import BerthError
from berth.registry.model import ImageIndex, ImageManifest
from berth.storage.model import ImageBlobs, RepositoryUsage, StorageReport

Progress = Callable[[int, int], None]


def image_blobs(catalog: CatalogService, name: str, top, documents: dict, tags: tuple[str, ...]) -> ImageBlobs:
    """Every blob the manifest or index ``top`` references, with its size: manifests, configs, layers."""
    blobs = {top.digest: catalog.manifest_size(name, top.digest)}
    manifests = [top]
    if isinstance(top, ImageIndex):
        for child in top.manifests:
            blobs[child.digest] = child.size
            manifests.append(documents.get(child.digest))
    for manifest in manifests:
        if isinstance(manifest, ImageManifest):
            blobs[manifest.config.digest] = manifest.config.size
            blobs.update((layer.digest, layer.size) for layer in manifest.layers)
    created = image.created if (image := catalog.cached_image(top.digest)) is not None else None
    return ImageBlobs(name, top.digest, tags, blobs, created)


def repository_images(catalog: CatalogService, name: str) -> tuple[list[ImageBlobs], list[str]]:
    """The images of one repository with their blobs, and what could not be read (manifests only)."""
    by_digest: dict[str, list[str]] = {}
    for tag, digest in catalog.tag_digests(name).items():
        by_digest.setdefault(digest, []).append(tag)
    documents, errors = catalog.manifests(name, by_digest)
    found = [
        image_blobs(catalog, name, documents[d], documents, tuple(sorted(t)))
        for d, t in by_digest.items()
        if d in documents and d not in errors
    ]
    return found, [f"{name}@{d}: {message}" for d, message in errors.items()]


def summarize(images: Iterable[ImageBlobs], capacity: dict, started: float, errors: list[str]) -> StorageReport:
    """The report over ``images`` (of every repository): distinct blobs, unique and shared bytes."""
    images = list(images)
    owners: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    per_repo: dict[str, list[ImageBlobs]] = {}
    for image in images:
        per_repo.setdefault(image.repository, []).append(image)
        for digest, size in image.blobs.items():
            owners.setdefault(digest, set()).add(image.repository)
            sizes[digest] = size
    usage = []
    for name, repo_images in sorted(per_repo.items()):
        blobs = {d for image in repo_images for d in image.blobs}
        unique = sum(sizes[d] for d in blobs if len(owners[d]) == 1)
        shared = sum(sizes[d] for d in blobs if len(owners[d]) > 1)
        tags = sum(len(image.tags) for image in repo_images)
        usage.append(RepositoryUsage(name, tags, len(repo_images), unique, shared))
    largest = max(images, key=lambda i: i.size_bytes, default=None)
    newest = max((i for i in images if i.created), key=lambda i: i.created or datetime.min, default=None)
    return StorageReport(
        computed_at=datetime.now(UTC),
        capacity=capacity,
        referenced_bytes=sum(sizes.values()),
        blobs=len(sizes),
        repositories=tuple(usage),
        largest_image=_image_dict(largest, largest.size_bytes if largest else 0),
        newest_push=_image_dict(newest, newest.size_bytes if newest else 0),
        errors=tuple(errors[:50]),
        seconds=time.monotonic() - started,
    )


def _image_dict(image: ImageBlobs | None, size: int) -> dict | None:
    if image is None:
        return None
    created = image.created.isoformat().replace("+00:00", "Z") if image.created else None
    return {"repository": image.repository, "digest": image.digest, "tags": list(image.tags), "size_bytes": size,
            "created": created}  # fmt: skip


def compute(
    catalog: CatalogService, capacity: dict, progress: Progress | None = None, workers: int = 8
) -> StorageReport:
    """Account for every repository of the registry (``progress(done, total)`` after each)."""
    started = time.monotonic()
    names = catalog.repositories()
    done, images, errors = 0, [], []

    def one(name: str) -> tuple[list[ImageBlobs], list[str]]:
        try:
            return repository_images(catalog, name)
        except BerthError as exc:
            return [], [f"{name}: {exc.message}"]

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="berth-storage") as pool:
        for found, problems in pool.map(one, names):
            images += found
            errors += problems
            done += 1
            if progress is not None and (done % 50 == 0 or done == len(names)):
                progress(done, len(names))
    return summarize(images, capacity, started, errors)
