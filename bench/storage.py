"""Storage accounting benchmark: Berth's first computation against the raw floor, then one push.

Run with ``.venv/bin/python -m bench.storage``. It builds or reuses the dataset
(:mod:`bench.dataset`) and starts the bench registry on it (:mod:`bench.stack`), then:

- ``floor``: the fewest requests that read every manifest once: the catalog, every tag
  list, one GET per tag and per index child, one pooled session, 16 threads;
- ``berth_cold``: :class:`berth.storage.history.StorageAccounting` over a fresh data
  directory (so every manifest and config is read from the registry once);
- ``berth_after_push``: one image pushed to an existing repository, that repository's
  facts expired (what the events package's notification does), the report computed again:
  the requests beyond the listing are the push's own documents. The pushed image (a tag
  ``bench-push`` with a fresh layer each run) stays in the dataset's storage.

Prints a table and ``RATIO`` lines and writes ``bench/results/storage.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import (
    ACCEPT_MANIFESTS,
    INDEX_TYPES,
    Counter,
    Measurement,
    checked,
    follow_pages,
    format_table,
    pooled_session,
    ratio,
    write_json,
)
from bench.dataset import DEFAULT_DATA_DIR, ensure_dataset
from bench.stack import DEFAULT_STATE_DIR, bench_stack

TARGET = 1.5


def floor(base: str, ca_cert: Path) -> Measurement:
    """Read every manifest once (tags and index children), 16 threads, one pooled session."""
    counter = Counter()
    started = time.perf_counter()
    with pooled_session(ca_cert) as session:

        def get(url: str, headers: dict[str, str] | None = None):
            counter.add()
            return session.get(url, headers=headers or {}, timeout=60)

        names = follow_pages(get, f"{base}/v2/_catalog?n=1000", "repositories", Counter())
        counter.add(0)

        def repository(name: str) -> int:
            total = 0
            for tag in follow_pages(get, f"{base}/v2/{name}/tags/list?n=1000", "tags", Counter()):
                got = checked(get(f"{base}/v2/{name}/manifests/{tag}", {"Accept": ACCEPT_MANIFESTS}), tag)
                total += len(got.content)
                if got.headers.get("Content-Type") in INDEX_TYPES:
                    for child in got.json()["manifests"]:
                        url = f"{base}/v2/{name}/manifests/{child['digest']}"
                        total += len(checked(get(url, {"Accept": ACCEPT_MANIFESTS}), "child").content)
            return total

        with ThreadPoolExecutor(16) as pool:
            read = sum(pool.map(repository, names))
    return Measurement("storage", "floor", counter.value, time.perf_counter() - started, {"manifest_bytes": read})


def berth_runs(env: dict[str, str], data_dir: Path) -> tuple[Measurement, Measurement, dict]:
    """Berth's first computation and the one after a single push."""
    from berth.config import Settings
    from berth.services import build_services
    from tests.lifecycle_images import layer, push

    environment = {k: v for k, v in env.items() if k.startswith(("BERTH_", "DOCKER_"))}
    environment |= {"BERTH_DATA_DIR": str(data_dir), "BERTH_BACKGROUND": "false", "BERTH_CACHE_TTL": "3600"}
    services = build_services(Settings.from_env(environment))
    client = services.registry
    before, started = client.requests_made, time.perf_counter()
    report = services.storage.compute_now()
    cold = Measurement("storage", "berth_cold", client.requests_made - before, time.perf_counter() - started,
                       {"referenced_bytes": report.referenced_bytes, "blobs": report.blobs,
                        "repositories": len(report.repositories), "errors": len(report.errors)})  # fmt: skip
    with pooled_session(env["BERTH_REGISTRY_CA"]) as session:
        fresh = [layer(f"bench-push-{time.time()}", 50_000)]
        pushed = push(session, client.base_url, "bench/app-0000", "bench-push", fresh, "2024-06-01T00:00:00Z")
    services.catalog.forget("bench/app-0000")
    before, started = client.requests_made, time.perf_counter()
    again = services.storage.compute_now()
    after = Measurement("storage", "berth_after_push", client.requests_made - before, time.perf_counter() - started,
                        {"push_documents": 2, "referenced_bytes_grew": again.referenced_bytes - report.referenced_bytes,
                         "pushed_blob_bytes": sum(pushed.blobs.values())})  # fmt: skip
    return cold, after, report.as_dict()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args(argv)
    dataset = ensure_dataset(args.data_dir)
    with bench_stack(dataset.storage_root, args.state_dir) as stack:
        low = floor(stack.registry_url, stack.ca_cert)
        with tempfile.TemporaryDirectory(prefix="berth-bench-storage-") as data_dir:
            cold, after, _ = berth_runs(stack.env, Path(data_dir))
    print(format_table([low, cold, after]))
    print(f"RATIO storage_cold_over_floor {ratio(cold.seconds, low.seconds)} (target <= {TARGET})")
    print(f"RATIO storage_requests_cold_over_floor {ratio(cold.requests, low.requests)}")
    print(f"RATIO storage_after_push_requests {after.requests} (of which the push's own documents: 2)")
    write_json("storage", {"floor": low.as_dict(), "berth_cold": cold.as_dict(), "berth_after_push": after.as_dict()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
