"""Push a tiny image to the registry and read it back: proof that storage and API work end to end.

The image is always the same bytes (a one-file layer, gzip without a timestamp, a fixed
config), so repeated runs store nothing new: the blobs and manifest already exist under
the same digests. It goes to ``berth-selftest:latest`` through the plain API v2 flow a
``docker push`` uses (monolithic blob upload, manifest PUT), then the manifest and every
blob are fetched back and their digests compared, and the manifest is deleted by digest
so developers never see ``berth-selftest`` with a tag (the catalog hides the empty
repository). With token auth, the job sends a bearer token Berth minted for itself
(:func:`selftest_token`) with pull, push and delete on that one repository.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from berth.auth.scope import REPOSITORY as REPOSITORY_SCOPE
from berth.auth.scope import Scope
from berth.auth.tokens import SigningKeys, TokenIssuer, signing_dir
from berth.config import Settings
from berth.errors import JobFailed

REPOSITORY = "berth-selftest"
TAG = "latest"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass(frozen=True)
class SelfTestResult:
    """What was pushed and read back."""

    reference: str
    manifest_digest: str
    blobs: tuple[str, ...]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def selftest_image() -> tuple[bytes, bytes, bytes]:
    """The layer, config and manifest of the self-test image (always the same bytes)."""
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        content = b"Written by Berth's setup job to check that the registry stores and serves images.\n"
        info = tarfile.TarInfo("berth-selftest.txt")
        info.size, info.mode, info.mtime = len(content), 0o644, 0
        tar.addfile(info, io.BytesIO(content))
    layer_tar = tar_buffer.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.title": "berth-selftest"}},
            "rootfs": {"type": "layers", "diff_ids": [_digest(layer_tar)]},
            "history": [{"created_by": "berth setup self-test"}],
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_TYPE, "size": len(layer), "digest": _digest(layer)}],
        },
        indent=3,
    ).encode()
    return layer, config, manifest


def _check(response: requests.Response, expected: int, what: str) -> requests.Response:
    if response.status_code != expected:
        body = response.text[:200].strip()
        raise JobFailed(f"{what}: HTTP {response.status_code} (expected {expected}){': ' + body if body else ''}")
    return response


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def _push_blob(session: requests.Session, base: str, data: bytes) -> None:
    digest = _digest(data)
    if session.head(f"{base}/v2/{REPOSITORY}/blobs/{digest}", timeout=10).status_code == 200:
        return  # already stored: a registry takes the existing blob as it is
    started = _check(session.post(f"{base}/v2/{REPOSITORY}/blobs/uploads/", timeout=10), 202, "Starting a blob upload")
    location = urljoin(base + "/", started.headers.get("Location", ""))
    if _origin(location) != _origin(base):
        # the session carries the registry's credentials: never to another host
        raise JobFailed(f"The registry sent the upload to another host ({urlsplit(location).netloc[:100]}); refused.")
    separator = "&" if "?" in location else "?"
    headers = {"Content-Type": "application/octet-stream"}
    put = session.put(f"{location}{separator}digest={digest}", data=data, headers=headers, timeout=30)
    _check(put, 201, f"Uploading blob {digest[:19]}")


def selftest_token(data_dir: Path, service: str) -> str:
    """A token Berth signs for itself: pull, push and delete on ``berth-selftest`` only."""
    scope = Scope(REPOSITORY_SCOPE, REPOSITORY, frozenset({"pull", "push", "delete"}))
    issuer = TokenIssuer(SigningKeys(signing_dir(data_dir)).load(), service)
    return issuer.issue("berth-setup", [scope]).token


def run(base_url: str, ca_file: Path, auth: tuple[str, str] | None = None, token: str | None = None) -> SelfTestResult:
    """Push the self-test image to ``base_url``, read it back, delete it; JobFailed on any difference."""
    layer, config, manifest = selftest_image()
    expected = _digest(manifest)
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(ca_file)
        session.auth = None if token else auth
        if token:
            session.headers["Authorization"] = f"Bearer {token}"
        try:
            for blob in (layer, config):
                _push_blob(session, base_url, blob)
            put = session.put(
                f"{base_url}/v2/{REPOSITORY}/manifests/{TAG}",
                data=manifest,
                headers={"Content-Type": MANIFEST_TYPE},
                timeout=10,
            )
            _check(put, 201, "Pushing the manifest")
            got = _check(
                session.get(
                    f"{base_url}/v2/{REPOSITORY}/manifests/{TAG}", headers={"Accept": MANIFEST_TYPE}, timeout=10
                ),
                200,
                "Reading the manifest back",
            )
            if _digest(got.content) != expected or got.headers.get("Docker-Content-Digest") != expected:
                raise JobFailed(f"The manifest read back is not the one pushed ({_digest(got.content)} != {expected}).")
            for blob in (layer, config):
                back = _check(
                    session.get(f"{base_url}/v2/{REPOSITORY}/blobs/{_digest(blob)}", timeout=30),
                    200,
                    "Reading a blob back",
                )
                if _digest(back.content) != _digest(blob):
                    raise JobFailed(f"Blob {_digest(blob)} read back with digest {_digest(back.content)}.")
            deleted = session.delete(f"{base_url}/v2/{REPOSITORY}/manifests/{expected}", timeout=10)
            _check(deleted, 202, "Deleting the self-test manifest")
        except requests.RequestException as exc:
            raise JobFailed(f"The self-test push to {base_url} failed: {type(exc).__name__}: {exc}") from None
    return SelfTestResult(f"{REPOSITORY}:{TAG}", expected, (_digest(layer), _digest(config)))


def run_as_berth(settings: Settings) -> SelfTestResult:
    """The self-test with a token Berth signs for itself (no account needed, auth on or off)."""
    token = selftest_token(settings.data_dir, settings.registry_service or "")
    return run(settings.registry_url, settings.ca_dir / "ca.crt", token=token)
