"""Tiny images built as blobs and pushed through the plain API v2 flow, for the lifecycle tests and bench.

Layers are gzip streams of deterministic bytes (the registry never looks inside them);
configs carry a creation date so retention can sort by it. Everything is verified the way
a client would: digests of what the registry serves back.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from dataclasses import dataclass
from urllib.parse import urljoin

import requests

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(seed: str, size: int) -> bytes:
    """A gzip layer of ``size`` pseudo-random bytes (same seed, same bytes)."""
    return gzip.compress(random.Random(seed).randbytes(size), mtime=0)


@dataclass(frozen=True)
class Pushed:
    """An image as pushed: its manifest digest and every blob with its size."""

    repository: str
    tag: str
    digest: str
    blobs: dict[str, int]


def push(session: requests.Session, base: str, repository: str, tag: str, layers: list[bytes], created: str) -> Pushed:
    """Push ``layers`` with a fresh config as ``repository:tag``; the manifest digest and blob sizes."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": created, "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [digest(x) for x in layers]}}).encode()  # fmt: skip
    for blob in (*layers, config):
        if session.head(f"{base}/v2/{repository}/blobs/{digest(blob)}", timeout=10).status_code == 200:
            continue
        started = session.post(f"{base}/v2/{repository}/blobs/uploads/", timeout=10)
        assert started.status_code == 202, started.text
        location = urljoin(base + "/", started.headers["Location"])
        sep = "&" if "?" in location else "?"
        put = session.put(f"{location}{sep}digest={digest(blob)}", data=blob, timeout=30,
                          headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        assert put.status_code == 201, put.text
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "size": len(config), "digest": digest(config)},
        "layers": [{"mediaType": LAYER, "size": len(x), "digest": digest(x)} for x in layers],
    }).encode()  # fmt: skip
    put = session.put(f"{base}/v2/{repository}/manifests/{tag}", data=manifest, timeout=10,
                      headers={"Content-Type": MANIFEST})  # fmt: skip
    assert put.status_code == 201, put.text
    blobs = {digest(manifest): len(manifest), digest(config): len(config), **{digest(x): len(x) for x in layers}}
    return Pushed(repository, tag, digest(manifest), blobs)


def pull(session: requests.Session, base: str, repository: str, reference: str) -> str:
    """Pull manifest and every blob, verifying each digest; the manifest digest."""
    got = session.get(f"{base}/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST}, timeout=10)
    got.raise_for_status()
    manifest = json.loads(got.content)
    for descriptor in [manifest["config"], *manifest["layers"]]:
        blob = session.get(f"{base}/v2/{repository}/blobs/{descriptor['digest']}", timeout=30)
        blob.raise_for_status()
        assert digest(blob.content) == descriptor["digest"], "a blob came back with other content"
    return digest(got.content)
