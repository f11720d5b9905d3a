"""First pages first, against a real registry: a repository of 300 tags and a 24-name catalog.

The registry is Distribution itself (devstack's binary and CA), serving a storage root this
module writes straight into the filesystem layout, as bench/dataset.py does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.dataset import StorageWriter
from berth.catalog.listing import natural_key
from berth.catalog.streaming import CATALOG_KEY, Streaming, tags_key
from devstack import procs
from devstack import registry as dsregistry
from devstack.ports import LOOPBACK, free_port
from tests.helpers import make_app

pytestmark = pytest.mark.stack

REPO = "stream/many"
IMAGES, TAGS_PER_IMAGE, PER_PAGE = 60, 5, 50
NAME = "stream-registry"


def _write(storage: Path) -> list[str]:
    """60 images with 5 tags each in REPO, and 23 one-tag repositories; returns REPO's tags."""
    writer = StorageWriter(storage)
    layer = writer.blob(b"layer")
    tags = []
    for index in range(IMAGES + 23):
        repo = REPO if index < IMAGES else f"stream/small-{index:02d}"
        created = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=7 * index)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "config": {"Labels": {"index": str(index)}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]},
        }
        config_digest = writer.blob(json.dumps(config).encode())
        writer.link_blob(repo, config_digest)
        writer.link_blob(repo, layer)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(json.dumps(config)),
                "digest": config_digest,
            },
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 5, "digest": layer}],
        }
        digest = writer.put_manifest(repo, json.dumps(manifest).encode())
        names = [f"1.{index}", f"1.{index}-slim", f"build-{index}", f"ci-{index:03d}", f"sha-{index:04x}"]
        for tag in names[: TAGS_PER_IMAGE if repo == REPO else 1]:
            writer.tag(repo, tag, digest)
            tags += [tag] if repo == REPO else []
    return tags


@pytest.fixture(scope="module")
def registry(stack, tmp_path_factory) -> Iterator[tuple[str, list[str]]]:
    """A second Distribution registry on its own storage, TLS from the devstack CA."""
    state_dir = Path(stack["DEVSTACK_STATE_DIR"])
    work = tmp_path_factory.mktemp("stream-registry")
    tags = _write(work / "storage")
    port = free_port()
    tls = state_dir / "tls"
    config = work / "config.yml"
    config.write_text(
        dsregistry.render_config(port, work / "storage", tls / "server.crt", tls / "server.key", log_level="warn")
    )
    record = procs.start(state_dir, NAME, [dsregistry.REGISTRY, "serve", str(config)], work / "registry.log")
    url = f"https://{LOOPBACK}:{port}"
    try:
        dsregistry.wait_ready(record, url, Path(stack["BERTH_REGISTRY_CA"]))
        yield url, tags
    finally:
        procs.stop(state_dir, NAME)


@pytest.fixture
def app(settings, registry):
    return make_app(replace(settings, registry_url=registry[0]))


@pytest.fixture
def services(app):
    return app.extensions["berth"]


def _count_manifest_reads(catalog) -> dict[str, int]:
    """Count the manifest GETs each kind of thread makes (request pool vs the shared read)."""
    counts = {"request": 0, "stream": 0}
    real = catalog.client.manifest
    lock = threading.Lock()

    def counting(name, reference):
        with lock:
            kind = "stream" if threading.current_thread().name.startswith("berth-stream") else "request"
            counts[kind] += 1
        return real(name, reference)

    catalog.client.manifest = counting
    return counts


def _wait(condition, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_first_page_reads_only_its_tags_then_the_rest_in_background(services, registry):
    tags = registry[1]
    counts = _count_manifest_reads(services.catalog)
    listing = services.streaming.repository(REPO, "", False, 1, PER_PAGE)
    assert counts["request"] == PER_PAGE
    assert not listing.complete and listing.tag_count == len(tags) == 300
    first = sorted(tags, key=natural_key)[:PER_PAGE]
    assert [t.tag for t in listing.tags] == first
    assert all(t.image is not None and t.image.created and t.image.size_bytes for t in listing.tags)

    _wait(lambda: services.streaming.tags_progress(REPO) is None)
    assert counts["stream"] == len(tags) - PER_PAGE  # the page's tags are not read twice
    complete = services.streaming.repository(REPO, "", False, 1, PER_PAGE)
    assert complete.complete and len(complete.tags) == 300
    assert all(t.image is not None for t in complete.tags)
    status = services.streaming.board.status(tags_key(REPO))
    assert status is not None and not status.running and status.error is None and status.percent == 100


def test_a_second_worker_shares_the_read(services, settings, registry):
    release = threading.Event()
    real = services.catalog.read_digests

    def paced(name, tags):
        if threading.current_thread().name.startswith("berth-stream"):
            release.wait(30)  # the shared read waits until the other worker has looked
        return real(name, tags)

    services.catalog.read_digests = paced
    services.streaming.repository(REPO, "", True, 2, PER_PAGE)  # page 2, Z -> A
    progress = services.streaming.tags_progress(REPO)
    assert progress is not None and progress.total == 300
    other = make_app(replace(settings, registry_url=registry[0])).extensions["berth"]  # same SQLite file
    counts = _count_manifest_reads(other.catalog)
    listing = other.streaming.repository(REPO, "ci-", False, 1, PER_PAGE)
    wanted = sorted((t for t in registry[1] if t.startswith("ci-")), key=natural_key)[:PER_PAGE]
    assert [t.tag for t in listing.tags] == wanted
    assert listing.matches == IMAGES and not listing.complete
    assert counts["stream"] == 0  # the other worker's read is not started twice
    release.set()
    _wait(lambda: other.streaming.tags_progress(REPO) is None)
    assert other.streaming.repository(REPO, "", False, 1, PER_PAGE).complete


def test_catalog_first_page_before_the_walk_ends(services, registry):
    streaming = Streaming(services.catalog, services.db, catalog_page_size=5)
    release = threading.Event()
    real = services.catalog.client.catalog_pages

    def paced(page_size=1000):
        for number, page in enumerate(real(page_size)):
            if number == 1:
                release.wait(30)  # the walk stalls after its first page until the test has looked
            yield page

    services.catalog.client.catalog_pages = paced
    started = time.monotonic()
    listing = streaming.repositories("", 5)
    assert time.monotonic() - started < 5
    assert not listing.complete and listing.names == sorted(listing.names) and len(listing.names) >= 5
    assert streaming.catalog_progress() is not None
    assert streaming.repositories("many", 5).names in ([], [REPO])  # search over what was read so far
    release.set()
    _wait(lambda: streaming.catalog_progress() is None)
    done = streaming.repositories("", 5)
    assert done.complete and done.total == 24 and REPO in done.names
    assert streaming.board.status(CATALOG_KEY).percent is None  # a walk has no known total


def test_pages_poll_progress_then_swap_in_the_complete_list(client, auth, services, registry):
    auth.login("dave", "dave-pw")
    page = client.get(f"/repositories/{REPO}?sort=created&order=desc")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'class="progress-line' in text and "sorting by date once" in text
    assert f'hx-get="/repositories/{REPO}/-/progress?' in text
    _wait(lambda: services.streaming.tags_progress(REPO) is None)
    done = client.get(f"/repositories/{REPO}/-/progress?sort=created&order=desc", headers={"HX-Request": "true"})
    assert done.status_code == 286 and done.headers["HX-Retarget"] == "#tag-list"
    body = done.get_data(as_text=True)
    assert "300 tags · 60 images" in body and "progress-line" not in body
    assert body.index("1.59") < body.index("1.58")  # newest first, over every tag

    catalog = client.get("/repositories").get_data(as_text=True)
    assert "stream/small-60" in catalog
    count = client.get(f"/repositories/{REPO}/-/tag-count", headers={"HX-Request": "true"})
    assert count.get_data(as_text=True).strip() == "300"


def test_a_large_list_long_unread_answers_at_once_and_revalidates_behind(services, registry):
    streaming, catalog = services.streaming, services.catalog
    streaming.repository(REPO, "", False, 1, PER_PAGE)
    _wait(lambda: streaming.tags_progress(REPO) is None)
    with services.db.connect() as conn:  # as if nobody had looked for ten minutes
        conn.execute("UPDATE facts SET fetched_at = fetched_at - 600")
    catalog._facts._memory.clear()
    heads = {"request": 0, "stream": 0}
    real = catalog.client.resolve

    def counting(name, reference):
        kind = "stream" if threading.current_thread().name.startswith("berth-stream") else "request"
        heads[kind] += 1
        return real(name, reference)

    catalog.client.resolve = counting
    listing = streaming.repository(REPO, "", False, 1, PER_PAGE)
    assert listing.complete and len(listing.tags) == 300 and heads["request"] == 0
    _wait(lambda: (known := catalog.known_digests(REPO)) is not None and known[1] < 5)
    assert heads["stream"] == 300  # one HEAD per tag, in the background
