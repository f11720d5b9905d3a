"""The benchmark dataset: 10,000 small repositories and one repository of 3,000 tags.

Pushing 10,000 repositories through the HTTP API takes minutes, so the dataset is written
straight into the CNCF Distribution filesystem storage layout (``registry/storage/paths.go``):

- ``docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data``: the content;
- per repository ``docker/registry/v2/repositories/<name>/``:
  ``_layers/sha256/<hex>/link`` (every blob the repository may serve: layers and configs),
  ``_manifests/revisions/sha256/<hex>/link`` (every manifest and index),
  ``_manifests/tags/<tag>/current/link`` and ``_manifests/tags/<tag>/index/sha256/<hex>/link``.

Each link holds ``sha256:<hex>`` without a newline. The images are built with the
devstack seed helpers (real gzipped tar layers, real image configs), so the registry serves
exactly what a push would have stored.

Contents (deterministic):

- ``bench/ns-0000/app-0000`` .. ``bench/ns-0099/app-0074`` (7,500 nested names) and
  ``bench/app-0000`` .. ``bench/app-2499`` (2,500 flat ones), each with 1 or 2 tags
  (``latest`` and a version tag on an older image);
- ``bench/big``: 3,000 tags over 300 images, of which 30 are OCI indexes
  (linux/amd64 + linux/arm64/v8), 10 tags per image; the image dates do not follow the tag
  names, so sorting by date matters.

The build goes to ``DIR/registry.partial`` and is renamed to ``DIR/registry`` when complete;
``DIR/stamp.json`` records the version and counts, so a later run reuses it.
Run ``python -m bench.dataset [--data-dir DIR] [--rebuild] [--repositories N]`` to build it
alone. ``--repositories 100000`` scales the small repositories (3/4 nested in namespaces of
75, 1/4 flat; the 10,000 default keeps the names above) for the events benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench.common import (
    ACCEPT_MANIFESTS,
    INDEX_TYPES,
    TIMEOUT,
    BenchError,
    Counter,
    checked,
    follow_pages,
    pooled_session,
)
from devstack.seed import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Image,
    ImageSpec,
    Layer,
    build_image,
    canonical_json,
    filler,
    make_layer,
    sha256_digest,
)

DATASET_VERSION = 1
DEFAULT_DATA_DIR = Path(".bench-data")
STAMP_NAME = "stamp.json"
STORAGE_NAME = "registry"

NAMESPACES = 100
APPS_PER_NAMESPACE = 75
FLAT_REPOSITORIES = 2_500
SMALL_REPOSITORIES = NAMESPACES * APPS_PER_NAMESPACE + FLAT_REPOSITORIES
BIG_REPOSITORY = "bench/big"
BIG_IMAGES = 300
BIG_INDEX_EVERY = 10  # every 10th image is a multi-platform index: 30 of 300
BIG_TAGS_PER_IMAGE = 10
SEED = 20240611


@dataclass(frozen=True)
class Dataset:
    """A built dataset: where its storage root is and what it holds."""

    storage_root: Path
    repositories: int
    big_repository: str
    big_tags: int
    big_indexes: int
    sample_manifest_tag: str
    sample_index_tag: str
    build_seconds: float
    reused: bool = False


@dataclass
class _Counters:
    """What the writer produced."""

    blobs: int = 0
    links: int = 0
    repositories: set[str] = field(default_factory=set)


class StorageWriter:
    """Write blobs and links in Distribution's filesystem layout under one storage root."""

    def __init__(self, storage_root: Path) -> None:
        self.v2 = Path(storage_root) / "docker" / "registry" / "v2"
        self._blobs: set[str] = set()
        self._repo_links: set[tuple[str, str, str]] = set()
        self.counters = _Counters()

    def blob(self, data: bytes) -> str:
        """Store ``data`` once in the blob store and return its digest."""
        digest = sha256_digest(data)
        if digest not in self._blobs:
            hexdigest = digest.split(":", 1)[1]
            directory = self.v2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "data").write_bytes(data)
            self._blobs.add(digest)
            self.counters.blobs += 1
        return digest

    def _link(self, directory: Path, digest: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "link").write_bytes(digest.encode())
        self.counters.links += 1

    def _repo_dir(self, repo: str) -> Path:
        self.counters.repositories.add(repo)
        return self.v2 / "repositories" / repo

    def link_blob(self, repo: str, digest: str) -> None:
        """Make blob ``digest`` servable from ``repo`` (``_layers`` link), once."""
        key = (repo, "layer", digest)
        if key in self._repo_links:
            return
        self._repo_links.add(key)
        self._link(self._repo_dir(repo) / "_layers" / "sha256" / digest.split(":", 1)[1], digest)

    def put_manifest(self, repo: str, body: bytes) -> str:
        """Store a manifest or index body as a revision of ``repo``; return its digest."""
        digest = self.blob(body)
        key = (repo, "revision", digest)
        if key not in self._repo_links:
            self._repo_links.add(key)
            revisions = self._repo_dir(repo) / "_manifests" / "revisions" / "sha256"
            self._link(revisions / digest.split(":", 1)[1], digest)
        return digest

    def tag(self, repo: str, tag: str, digest: str) -> None:
        """Point ``repo:tag`` at manifest ``digest`` (current link and tag index)."""
        tag_dir = self._repo_dir(repo) / "_manifests" / "tags" / tag
        self._link(tag_dir / "current", digest)
        self._link(tag_dir / "index" / "sha256" / digest.split(":", 1)[1], digest)


@dataclass(frozen=True)
class _PooledLayer:
    """A layer with its digest computed once."""

    layer: Layer
    digest: str


def _rfc3339(moment: datetime) -> str:
    """Format a UTC time as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _layer_pool(prefix: str, count: int, sizes: tuple[int, int], rng: random.Random) -> list[_PooledLayer]:
    """Return ``count`` shared layers with incompressible payloads of random size."""
    pool = []
    for index in range(count):
        created = _rfc3339(datetime(2019, 1, 1, tzinfo=UTC) + timedelta(days=index * 11))
        files = {
            f"usr/share/{prefix}/{index}/payload.bin": filler(f"{prefix}-{index}", rng.randint(*sizes)),
            "etc/hostname": b"localhost\n",
        }
        layer = make_layer(files, created, f"/bin/sh -c #(nop) ADD {prefix}-{index} /")
        pool.append(_PooledLayer(layer, layer.digest))
    return pool


def _write_image(writer: StorageWriter, repo: str, image: Image, layers: Sequence[_PooledLayer], oci: bool) -> bytes:
    """Store an image's config and link its layers in ``repo``; return its manifest body."""
    config_digest = writer.blob(image.config)
    writer.link_blob(repo, config_digest)
    entries = []
    for pooled in layers:
        writer.link_blob(repo, pooled.digest)
        entries.append(
            {"mediaType": OCI_LAYER if oci else DOCKER_LAYER, "size": len(pooled.layer.data), "digest": pooled.digest}
        )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
            "size": len(image.config),
            "digest": config_digest,
        },
        "layers": entries,
    }
    return canonical_json(manifest)


def _spec(created: str, layers: Sequence[_PooledLayer], labels: dict[str, str], **platform: str) -> ImageSpec:
    """Return the spec of a small service image over ``layers``."""
    return ImageSpec(
        created=created,
        layers=tuple(pooled.layer for pooled in layers),
        labels=labels,
        entrypoint=("/usr/local/bin/app",),
        cmd=("serve",),
        exposed_ports=("8080/tcp",),
        **platform,
    )


def small_repository_names(total: int = SMALL_REPOSITORIES) -> list[str]:
    """Return the small repositories' names (nested and flat): 10,000 by default."""
    namespaces = total * NAMESPACES // SMALL_REPOSITORIES
    flat = total - namespaces * APPS_PER_NAMESPACE
    width = max(4, len(str(max(namespaces, flat) - 1)))
    nested = [f"bench/ns-{ns:0{width}d}/app-{app:04d}" for ns in range(namespaces) for app in range(APPS_PER_NAMESPACE)]
    return sorted(nested + [f"bench/app-{index:0{width}d}" for index in range(flat)])


def _write_small_repositories(
    writer: StorageWriter, bases: list[_PooledLayer], apps: list[_PooledLayer], total: int
) -> None:
    """Write every small repository: ``1.x.y`` and, for every other one, ``latest``."""
    rng = random.Random(SEED + 1)
    start = datetime(2019, 1, 1, tzinfo=UTC)
    for index, repo in enumerate(small_repository_names(total)):
        layers = (bases[index % len(bases)], apps[rng.randrange(len(apps))])
        version = f"1.{rng.randrange(30)}.{rng.randrange(20)}"
        older = start + timedelta(seconds=rng.randrange(5 * 365 * 86400))
        tags = [(version, older)]
        if index % 2 == 0:
            tags.append(("latest", older + timedelta(seconds=rng.randrange(3600, 90 * 86400))))
        for tag, created in tags:
            labels = {"org.opencontainers.image.title": repo, "org.opencontainers.image.version": tag}
            image = build_image(_spec(_rfc3339(created), layers, labels))
            body = _write_image(writer, repo, image, layers, oci=index % 4 == 1)
            writer.tag(repo, tag, writer.put_manifest(repo, body))


def big_tag_names(index: int, rng: random.Random, created: datetime) -> list[str]:
    """Return the 10 tag names of image ``index`` of ``bench/big`` (unique across images)."""
    minor, patch = divmod(index, 25)
    version = f"3.{minor}.{patch}"
    commit = f"{rng.getrandbits(48):012x}"
    return [
        version,
        f"{version}-r1",
        f"{version}-slim",
        f"rc-{version}",
        f"sha-{commit[:7]}",
        f"commit-{commit}",
        f"build-{10_000 + index * 7}",
        f"ci-{index:05d}",
        f"pr-{3_000 + index * 3}",
        f"nightly-{created:%Y%m%d}-{index:03d}",
    ]


def _big_dates(rng: random.Random) -> list[datetime]:
    """Return one distinct build time per image: mostly in order, some backports later."""
    start = datetime(2021, 3, 1, 8, 0, tzinfo=UTC)
    dates = [start + timedelta(hours=index * 70, seconds=rng.randrange(36_000)) for index in range(BIG_IMAGES)]
    for index in range(0, BIG_IMAGES, 7):  # backports: rebuilt months after their version
        dates[index] += timedelta(days=rng.randrange(30, 400), seconds=rng.randrange(86_400))
    return dates


def _write_big_image(
    writer: StorageWriter, index: int, created: datetime, bases: list[_PooledLayer], apps: list[_PooledLayer]
) -> tuple[str, bool]:
    """Write image ``index`` of ``bench/big`` (an index every 10th); return its digest and kind."""
    repo = BIG_REPOSITORY
    labels = {"org.opencontainers.image.title": repo, "org.opencontainers.image.revision": f"{index:04d}"}
    layers = (bases[index % len(bases)], apps[index % len(apps)], apps[(index * 7 + 3) % len(apps)])
    if index % BIG_INDEX_EVERY != BIG_INDEX_EVERY // 2:
        arch = "arm64" if index % 9 == 4 else "amd64"
        image = build_image(_spec(_rfc3339(created), layers, labels, architecture=arch))
        body = _write_image(writer, repo, image, layers, oci=index % 3 == 0)
        return writer.put_manifest(repo, body), False
    entries = []
    for offset, (arch, variant) in enumerate((("amd64", None), ("arm64", "v8"))):
        child_created = _rfc3339(created + timedelta(seconds=offset * 97))
        platform = {"architecture": arch} | ({"variant": variant} if variant else {})
        image = build_image(_spec(child_created, layers, labels, **platform))
        body = _write_image(writer, repo, image, layers, oci=True)
        digest = writer.put_manifest(repo, body)
        entries.append({"mediaType": OCI_MANIFEST, "size": len(body), "digest": digest, "platform": image.platform})
    index_body = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    return writer.put_manifest(repo, index_body), True


def _write_big_repository(
    writer: StorageWriter, bases: list[_PooledLayer], apps: list[_PooledLayer]
) -> tuple[str, str, int]:
    """Write ``bench/big``; return a single-image tag, an index tag and the number of indexes."""
    rng = random.Random(SEED + 2)
    sample_manifest = sample_index = ""
    indexes = 0
    for index, created in enumerate(_big_dates(rng)):
        digest, is_index = _write_big_image(writer, index, created, bases, apps)
        tags = big_tag_names(index, rng, created)
        for tag in tags:
            writer.tag(BIG_REPOSITORY, tag, digest)
        indexes += is_index
        if is_index and not sample_index:
            sample_index = tags[0]
        if not is_index and not sample_manifest:
            sample_manifest = tags[0]
    return sample_manifest, sample_index, indexes


def _stamp_path(data_dir: Path) -> Path:
    """Return where the stamp of a dataset directory lives."""
    return Path(data_dir) / STAMP_NAME


def load_dataset(data_dir: Path, small: int = SMALL_REPOSITORIES) -> Dataset | None:
    """Return the dataset recorded under ``data_dir`` if it is complete and current."""
    try:
        stamp = json.loads(_stamp_path(data_dir).read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("version") != DATASET_VERSION or stamp.get("small_repositories", SMALL_REPOSITORIES) != small:
        return None
    storage = Path(data_dir).resolve() / STORAGE_NAME
    if not (storage / "docker" / "registry" / "v2" / "repositories").is_dir():
        return None
    fields = {name: stamp[name] for name in Dataset.__dataclass_fields__ if name in stamp and name != "reused"}
    fields.update(storage_root=storage, reused=True)
    try:
        return Dataset(**fields)
    except TypeError:
        return None


def build_dataset(data_dir: Path, small: int = SMALL_REPOSITORIES) -> Dataset:
    """Write the whole dataset under ``data_dir`` (replacing any previous one) and stamp it."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    _stamp_path(data_dir).unlink(missing_ok=True)
    partial = data_dir / f"{STORAGE_NAME}.partial"
    final = data_dir / STORAGE_NAME
    for stale in (partial, final):
        if stale.exists():
            shutil.rmtree(stale)
    started = time.perf_counter()
    rng = random.Random(SEED)
    bases = _layer_pool("base", 8, (24_000, 64_000), rng)
    apps = _layer_pool("app", 40, (4_000, 32_000), rng)
    writer = StorageWriter(partial)
    _write_small_repositories(writer, bases, apps, small)
    sample_manifest, sample_index, indexes = _write_big_repository(writer, bases, apps)
    os.rename(partial, final)
    dataset = Dataset(
        storage_root=final,
        repositories=len(writer.counters.repositories),
        big_repository=BIG_REPOSITORY,
        big_tags=BIG_IMAGES * BIG_TAGS_PER_IMAGE,
        big_indexes=indexes,
        sample_manifest_tag=sample_manifest,
        sample_index_tag=sample_index,
        build_seconds=round(time.perf_counter() - started, 2),
    )
    stamp = asdict(dataset) | {
        "version": DATASET_VERSION,
        "small_repositories": small,
        "storage_root": str(final),
        "blobs": writer.counters.blobs,
        "links": writer.counters.links,
        "built_at": _rfc3339(datetime.now(UTC)),
    }
    stamp.pop("reused", None)
    _stamp_path(data_dir).write_text(json.dumps(stamp, indent=2) + "\n")
    return dataset


def ensure_dataset(
    data_dir: Path = DEFAULT_DATA_DIR, rebuild: bool = False, small: int = SMALL_REPOSITORIES
) -> Dataset:
    """Return the cached dataset under ``data_dir``, building it first if needed."""
    if not rebuild:
        cached = load_dataset(data_dir, small)
        if cached is not None:
            return cached
    return build_dataset(data_dir, small)


def verify_registry(base: str, ca_cert: str | Path, dataset: Dataset) -> dict[str, object]:
    """Check the dataset through a real registry serving it; raise BenchError if it is wrong.

    Lists the catalog (all pages) and the big repository's tags, fetches a manifest and an
    index by tag and a config blob, and records whether the registry refuses the index to an
    ``Accept`` header without the OCI index type (Distribution 2.8 answers 404).
    """
    counter = Counter()
    with pooled_session(ca_cert) as session:

        def get(url: str, headers: dict[str, str] | None = None) -> requests.Response:
            return session.get(url, headers=headers or {}, timeout=TIMEOUT)

        repositories = follow_pages(get, f"{base}/v2/_catalog?n=1000", "repositories", counter)
        if dataset.big_repository not in repositories or len(repositories) < dataset.repositories:
            raise BenchError(f"catalog lists {len(repositories)} repositories, expected {dataset.repositories}")
        big = dataset.big_repository
        tags = follow_pages(get, f"{base}/v2/{big}/tags/list?n=1000", "tags", counter)
        if len(tags) != dataset.big_tags:
            raise BenchError(f"{big} lists {len(tags)} tags, expected {dataset.big_tags}")
        accept = {"Accept": ACCEPT_MANIFESTS}
        manifest = checked(get(f"{base}/v2/{big}/manifests/{dataset.sample_manifest_tag}", accept), "manifest").json()
        checked(get(f"{base}/v2/{big}/blobs/{manifest['config']['digest']}"), "config blob")
        index = checked(get(f"{base}/v2/{big}/manifests/{dataset.sample_index_tag}", accept), "index")
        if index.headers.get("Content-Type") not in INDEX_TYPES:
            raise BenchError(f"{big}:{dataset.sample_index_tag} is served as {index.headers.get('Content-Type')}")
        child = index.json()["manifests"][0]["digest"]
        checked(get(f"{base}/v2/{big}/manifests/{child}", accept), "index child")
        docker_only = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        refused = get(f"{base}/v2/{big}/manifests/{dataset.sample_index_tag}", docker_only).status_code
    return {"repositories": len(repositories), "big_tags": len(tags), "index_without_oci_accept": refused}


def main(argv: Sequence[str] | None = None) -> int:
    """Build (or find) the dataset and print what it holds."""
    parser = argparse.ArgumentParser(prog="python -m bench.dataset", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--rebuild", action="store_true", help="build again even if a stamp exists")
    parser.add_argument("--repositories", type=int, default=SMALL_REPOSITORIES, help="small repositories (100000)")
    args = parser.parse_args(argv)
    dataset = ensure_dataset(args.data_dir, rebuild=args.rebuild, small=args.repositories)
    how = "reused" if dataset.reused else "built"
    print(f"dataset {how}: {dataset.storage_root}")
    print(
        f"  {dataset.repositories} repositories; {dataset.big_repository}: {dataset.big_tags} tags, "
        f"{dataset.big_indexes} indexes; build took {dataset.build_seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
