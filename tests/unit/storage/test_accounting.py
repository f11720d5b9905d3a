"""Accounting sums: distinct blobs, unique and shared bytes per repository; chart geometry; image references."""

from __future__ import annotations

from datetime import UTC, datetime

from berth.storage.accounting import summarize
from berth.storage.chart import top_bars
from berth.storage.model import ImageBlobs, StorageReport
from berth.swarm.images import services_running, split_reference


def image(repo: str, digest: str, blobs: dict[str, int], tags=("latest",), created=None) -> ImageBlobs:
    return ImageBlobs(repo, digest, tuple(tags), blobs, created)


def test_unique_and_shared_bytes_count_each_blob_once() -> None:
    images = [
        image("a", "m1", {"m1": 10, "base": 1000, "l1": 100}, ("1", "latest")),
        image("a", "m2", {"m2": 11, "base": 1000, "l2": 200}, ("2",), datetime(2024, 1, 1, tzinfo=UTC)),
        image("b", "m3", {"m3": 12, "base": 1000, "l3": 300}),
    ]
    report = summarize(images, {"total_bytes": 5}, 0.0, [])
    a, b = report.repositories
    assert (a.name, a.tags, a.images, a.unique_bytes, a.shared_bytes) == ("a", 3, 2, 321, 1000)
    assert (b.unique_bytes, b.shared_bytes) == (312, 1000)
    assert report.referenced_bytes == 10 + 11 + 12 + 1000 + 100 + 200 + 300 and report.blobs == 7
    assert report.largest_image["digest"] == "m3" and report.newest_push["digest"] == "m2"
    assert StorageReport.from_dict(report.as_dict()).as_dict() == report.as_dict()


def test_bars_scale_to_the_largest_repository() -> None:
    report = summarize([image("a", "m", {"m": 100}), image("b", "n", {"n": 50})], {}, 0.0, [])
    chart = top_bars(report.repositories)
    assert [(b.label, b.unique_width) for b in chart.bars] == [("a", 420.0), ("b", 210.0)]


def test_service_references_match_by_digest_when_pinned_else_by_tag() -> None:
    pinned = split_reference("web", "reg:5000/team/app:1@sha256:aa")
    tagged = split_reference("api", "reg:5000/team/app:2")
    assert (pinned.host, pinned.repository, pinned.tag, pinned.digest) == ("reg:5000", "team/app", "1", "sha256:aa")
    uses = [pinned, tagged, split_reference("hub", "team/app:2")]
    assert services_running(uses, "reg:5000", "team/app", "sha256:aa", ("9",)) == ["web"]
    assert services_running(uses, "reg:5000", "team/app", "sha256:bb", ("1", "2")) == ["api"]
