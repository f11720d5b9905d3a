"""Garbage collection benchmark: delete half of ``bench/big``'s images, then the registry's own garbage-collect.

Run with ``.venv/bin/python -m bench.gc``. The dataset's storage is copied first (the
benchmark deletes), the bench registry serves the copy, half of ``bench/big``'s images are
deleted by digest through Berth's client, and the registry stops. Then the command the
``gc`` job runs in its one-off task, ``docker-registry garbage-collect CONFIG``, runs
against the copy; its duration and the blob files and bytes before and after are printed
(the Swarm roll to read-only and back is measured by tests/integration/test_lifecycle_swarm.py).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import write_json
from bench.dataset import DEFAULT_DATA_DIR, ensure_dataset
from bench.stack import DEFAULT_STATE_DIR, bench_stack
from berth.registry.client import RegistryClient
from berth.storage.disk import blob_usage
from devstack import registry as dsregistry


def delete_half(base: str, ca: Path, repository: str) -> int:
    """Delete every second image (by digest) of ``repository``; how many were deleted."""
    client = RegistryClient(base, ca_bundle=ca, timeout=60)
    digests = sorted({client.resolve(repository, tag).digest for tag in client.tags(repository)})
    for digest in digests[::2]:
        client.delete_manifest(repository, digest)
    client.close()
    return len(digests[::2])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args(argv)
    dataset = ensure_dataset(args.data_dir)
    with tempfile.TemporaryDirectory(prefix="berth-bench-gc-") as scratch:
        root = Path(scratch) / "registry"
        began = time.perf_counter()
        shutil.copytree(dataset.storage_root, root, symlinks=True)
        copied = time.perf_counter() - began
        with bench_stack(root, args.state_dir) as stack:
            deleted = delete_half(stack.registry_url, stack.ca_cert, dataset.big_repository)
            config = Path(scratch) / "config.yml"
            config.write_text((stack.state_dir / "bench-registry" / "config.yml").read_text())
        before = blob_usage(root)
        began = time.perf_counter()
        done = subprocess.run([dsregistry.REGISTRY, "garbage-collect", str(config)], capture_output=True, timeout=3600,
                              check=False)  # fmt: skip
        took = time.perf_counter() - began
        after = blob_usage(root)
    if done.returncode != 0:
        print(done.stderr.decode(errors="replace")[-2000:])
        return 1
    figures: dict[str, object] = {
        "images_deleted": deleted,
        "gc_seconds": round(took, 2),
        "copy_seconds": round(copied, 1),
        "blobs_before": before.blobs,
        "blobs_after": after.blobs,
        "bytes_freed": before.blob_bytes - after.blob_bytes,
    }
    print("\n".join(f"{k:>15}: {v}" for k, v in figures.items()))
    print(f"RATIO gc_seconds_per_1000_blobs {1000 * took / max(1, before.blobs):.3f}")
    write_json("gc", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
