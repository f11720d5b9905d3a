"""Push images to a Distribution registry through its HTTP API v2, and the demo seed.

A small library: build deterministic layers and image configs (:func:`make_layer`,
:func:`build_image`), push blobs, manifests and indexes with one pooled
:class:`requests.Session` (:func:`registry_session`, :func:`push_blob`,
:func:`push_image`, :func:`push_index`). Everything is content-addressed and
deterministic, so pushing the same thing twice changes nothing.

:func:`seed_demo` pushes the repositories Berth's tests and demo rely on.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class SeedError(RuntimeError):
    """The registry refused a push."""


@dataclass(frozen=True)
class Layer:
    """One filesystem layer: gzipped tar bytes and the sha256 of the uncompressed tar."""

    data: bytes
    diff_id: str
    created_by: str

    @property
    def digest(self) -> str:
        """The blob digest (sha256 of the compressed bytes)."""
        return sha256_digest(self.data)


@dataclass
class ImageSpec:
    """What an image is made of; :func:`build_image` turns it into a config and layers."""

    created: str
    layers: Sequence[Layer]
    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    entrypoint: Sequence[str] | None = None
    cmd: Sequence[str] | None = ("/bin/sh",)
    labels: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    exposed_ports: Sequence[str] = ()
    author: str | None = None

    @property
    def platform(self) -> dict[str, str]:
        """The OCI platform object of this image."""
        platform = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            platform["variant"] = self.variant
        return platform


@dataclass(frozen=True)
class Image:
    """A built image: its config JSON bytes and its layers."""

    config: bytes
    layers: tuple[Layer, ...]
    platform: dict[str, str]


@dataclass(frozen=True)
class Pushed:
    """A manifest (or index) in the registry: what an index entry needs."""

    digest: str
    size: int
    media_type: str
    platform: dict[str, str] | None = None


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: object) -> bytes:
    """Serialize ``obj`` deterministically (stable key order from the dicts we build)."""
    return json.dumps(obj, indent=3, ensure_ascii=False).encode()


def _epoch(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def make_layer(files: Mapping[str, bytes], created: str, created_by: str = "") -> Layer:
    """Build a deterministic gzipped tar of ``files`` (path -> content), dated ``created``.

    Parent directories are added; owner root, modes 0755/0644 (0755 under ``bin/``).
    """
    mtime = _epoch(created)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in seen:
                    seen.add(directory)
                    info = tarfile.TarInfo(directory + "/")
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, mtime
                    info.uname = info.gname = "root"
                    tar.addfile(info)
            name = "/".join(parts)
            info = tarfile.TarInfo(name)
            info.size = len(files[path])
            info.mtime = mtime
            info.mode = 0o755 if "/bin/" in f"/{name}" else 0o644
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(files[path]))
    tar_bytes = raw.getvalue()
    return Layer(
        data=gzip.compress(tar_bytes, compresslevel=6, mtime=0),
        diff_id=sha256_digest(tar_bytes),
        created_by=created_by or f"/bin/sh -c #(nop) ADD file:{hashlib.sha256(tar_bytes).hexdigest()[:12]} in / ",
    )


def filler(seed: str, size: int) -> bytes:
    """Return ``size`` deterministic, incompressible bytes derived from ``seed``."""
    return random.Random(seed).randbytes(size)


def build_image(spec: ImageSpec) -> Image:
    """Return the image config (Docker/OCI compatible JSON) and layers of ``spec``."""
    config: dict[str, object] = {"Env": list(spec.env)}
    if spec.entrypoint is not None:
        config["Entrypoint"] = list(spec.entrypoint)
    if spec.cmd is not None:
        config["Cmd"] = list(spec.cmd)
    if spec.working_dir:
        config["WorkingDir"] = spec.working_dir
    if spec.exposed_ports:
        config["ExposedPorts"] = {port: {} for port in spec.exposed_ports}
    config["Labels"] = dict(spec.labels)
    history: list[dict[str, object]] = [
        {"created": spec.created, "created_by": layer.created_by} for layer in spec.layers
    ]
    steps = [f"ENV {env}" for env in spec.env]
    if spec.labels:
        steps.append("LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in spec.labels.items()))
    if spec.working_dir:
        steps.append(f"WORKDIR {spec.working_dir}")
    if spec.entrypoint is not None:
        steps.append(f"ENTRYPOINT {json.dumps(list(spec.entrypoint))}")
    if spec.cmd is not None:
        steps.append(f"CMD {json.dumps(list(spec.cmd))}")
    history += [{"created": spec.created, "created_by": step, "empty_layer": True} for step in steps]
    document: dict[str, object] = {
        "architecture": spec.architecture,
        "os": spec.os,
    }
    if spec.variant:
        document["variant"] = spec.variant
    if spec.author:
        document["author"] = spec.author
    document.update(
        {
            "created": spec.created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in spec.layers]},
            "history": history,
        }
    )
    return Image(config=canonical_json(document), layers=tuple(spec.layers), platform=spec.platform)


def registry_session(ca_cert: str | None = None, pool_maxsize: int = 16) -> requests.Session:
    """Return a session that verifies against ``ca_cert`` and keeps connections alive.

    ``trust_env`` is off: with it on, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` in the
    environment silently override ``session.verify``, and proxies would apply to loopback.
    """
    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if ca_cert is not None:
        session.verify = str(ca_cert)
    return session


def _check(response: requests.Response, what: str, expected: Iterable[int]) -> None:
    if response.status_code not in tuple(expected):
        body = response.text[:300].strip().replace("\n", " ")
        raise SeedError(f"{what}: HTTP {response.status_code} {body}")


def _with_query(url: str, **params: str) -> str:
    """Add query parameters to ``url``, keeping any it already has."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def blob_exists(session: requests.Session, base: str, repo: str, digest: str) -> bool:
    """Return True if ``repo`` already links blob ``digest``."""
    response = session.head(f"{base}/v2/{repo}/blobs/{digest}", timeout=30)
    return response.status_code == 200


def push_blob(
    session: requests.Session,
    base: str,
    repo: str,
    data: bytes,
    *,
    skip_existing: bool = True,
    mount_from: str | None = None,
) -> str:
    """Upload ``data`` as a blob of ``repo`` (monolithic POST + PUT) and return its digest.

    With ``skip_existing`` a HEAD first avoids re-uploading. With ``mount_from`` the blob
    is first offered as a cross-repository mount from that repository (one request when
    it works, as for a benchmark that fills many repositories with the same layers).
    """
    digest = sha256_digest(data)
    if skip_existing and blob_exists(session, base, repo, digest):
        return digest
    url = f"{base}/v2/{repo}/blobs/uploads/"
    if mount_from:
        url = _with_query(url, mount=digest, **{"from": mount_from})
    response = session.post(url, timeout=30)
    if response.status_code == 201:  # mounted
        return digest
    _check(response, f"start upload to {repo}", (202,))
    location = urljoin(f"{base}/", response.headers["Location"])
    response = session.put(
        _with_query(location, digest=digest),
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    _check(response, f"upload blob {digest[:19]} to {repo}", (201,))
    return digest


def put_manifest(session: requests.Session, base: str, repo: str, reference: str, body: bytes, media_type: str) -> str:
    """PUT a manifest or index under ``reference`` (tag or digest); return its digest."""
    digest = sha256_digest(body)
    response = session.put(
        f"{base}/v2/{repo}/manifests/{reference}",
        data=body,
        headers={"Content-Type": media_type},
        timeout=30,
    )
    _check(response, f"put manifest {repo}:{reference}", (201,))
    returned = response.headers.get("Docker-Content-Digest", digest)
    if returned != digest:
        raise SeedError(f"put manifest {repo}:{reference}: registry says {returned}, expected {digest}")
    return digest


def push_image(
    session: requests.Session,
    base: str,
    repo: str,
    image: Image,
    tags: Sequence[str] = (),
    *,
    oci: bool = False,
    skip_existing: bool = True,
    mount_from: str | None = None,
) -> Pushed:
    """Push an image's blobs and manifest (Docker schema 2, or OCI with ``oci``).

    The manifest is put by digest, then under each tag; returns what an index needs.
    """
    layer_type = OCI_LAYER if oci else DOCKER_LAYER
    layers = []
    for layer in image.layers:
        digest = push_blob(session, base, repo, layer.data, skip_existing=skip_existing, mount_from=mount_from)
        layers.append({"mediaType": layer_type, "size": len(layer.data), "digest": digest})
    config_digest = push_blob(session, base, repo, image.config, skip_existing=skip_existing, mount_from=mount_from)
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
            "size": len(image.config),
            "digest": config_digest,
        },
        "layers": layers,
    }
    body = canonical_json(manifest)
    digest = sha256_digest(body)
    for reference in (digest, *tags):
        put_manifest(session, base, repo, reference, body, media_type)
    return Pushed(digest=digest, size=len(body), media_type=media_type, platform=image.platform)


def push_index(
    session: requests.Session,
    base: str,
    repo: str,
    children: Sequence[Pushed],
    tags: Sequence[str] = (),
    *,
    oci: bool = True,
) -> Pushed:
    """Push a multi-platform OCI index (or Docker manifest list) over already pushed manifests."""
    media_type = OCI_INDEX if oci else DOCKER_MANIFEST_LIST
    entries = []
    for child in children:
        entry: dict[str, object] = {
            "mediaType": child.media_type,
            "size": child.size,
            "digest": child.digest,
        }
        if child.platform:
            entry["platform"] = child.platform
        entries.append(entry)
    body = canonical_json({"schemaVersion": 2, "mediaType": media_type, "manifests": entries})
    digest = sha256_digest(body)
    for reference in (digest, *tags):
        put_manifest(session, base, repo, reference, body, media_type)
    return Pushed(digest=digest, size=len(body), media_type=media_type)


# --- the demo seed ----------------------------------------------------------------------

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _os_layer(name: str, version: str, created: str, size: int) -> Layer:
    os_release = (
        f'NAME="{name}"\nVERSION="{version}"\nID={name.split()[0].lower()}\nPRETTY_NAME="{name} {version}"\n'
    ).encode()
    return make_layer(
        {
            "etc/os-release": os_release,
            "etc/hostname": b"localhost\n",
            "bin/sh": filler(f"{name}-{version}-sh", 2048),
            f"usr/lib/{name.split()[0].lower()}/base.img": filler(f"{name}-{version}", size),
        },
        created,
    )


def _app_layer(label: str, created: str, created_by: str, files: Mapping[str, bytes], size: int) -> Layer:
    content = dict(files)
    content[f"usr/share/{label}/payload.bin"] = filler(label, size)
    return make_layer(content, created, f"/bin/sh -c {created_by}")


def demo_images() -> dict[str, dict[str, object]]:
    """Return the demo seed: repository -> tag -> ImageSpec, or a list of specs for an index."""
    centos7 = "2019-03-14T21:19:53Z"
    centos8 = "2021-09-15T18:20:05Z"
    centos_labels = {
        "org.label-schema.license": "GPLv2",
        "org.label-schema.name": "CentOS Base Image",
        "org.label-schema.schema-version": "1.0",
        "org.label-schema.vendor": "CentOS",
    }
    bullseye = "2021-08-17T01:42:05Z"
    bookworm = "2023-06-12T03:10:44Z"
    debian_labels = {
        "org.opencontainers.image.source": "https://github.com/debuerreotype/docker-debian-artifacts",
        "org.opencontainers.image.vendor": "Debian",
    }
    debian12 = _os_layer("Debian GNU/Linux", "12 (bookworm)", bookworm, 40_000)

    def node(version: str, created: str, arch: str = "amd64", variant: str | None = None) -> ImageSpec:
        return ImageSpec(
            created=created,
            layers=(
                debian12,
                _app_layer(
                    f"node-{version}-{arch}",
                    created,
                    f"set -ex; install node {version}",
                    {"usr/local/bin/node": filler(f"node-{version}-{arch}-bin", 4096)},
                    12_000,
                ),
            ),
            architecture=arch,
            variant=variant,
            env=(PATH_ENV, f"NODE_VERSION={version}", "YARN_VERSION=1.22.19"),
            entrypoint=("docker-entrypoint.sh",),
            cmd=("node",),
            labels={"org.opencontainers.image.version": version},
        )

    def wordpress(version: str, created: str, arch: str = "amd64", variant: str | None = None) -> ImageSpec:
        return ImageSpec(
            created=created,
            layers=(
                _os_layer("Debian GNU/Linux", f"12 (bookworm) {arch}", created, 30_000),
                _app_layer(
                    f"wordpress-{version}-{arch}",
                    created,
                    f"curl -o wordpress.tar.gz {version}",
                    {"var/www/html/index.php": b"<?php require 'wp-blog-header.php';\n"},
                    16_000,
                ),
            ),
            architecture=arch,
            variant=variant,
            env=(PATH_ENV, f"WORDPRESS_VERSION={version}", "PHP_VERSION=8.2.18"),
            entrypoint=("docker-entrypoint.sh",),
            cmd=("apache2-foreground",),
            working_dir="/var/www/html",
            exposed_ports=("80/tcp",),
            labels={},
        )

    def api(version: str, created: str, revision: str) -> ImageSpec:
        return ImageSpec(
            created=created,
            layers=(
                _os_layer("Alpine Linux", "3.19", "2023-12-07T13:03:18Z", 8_000),
                _app_layer(
                    f"team-app-api-{version}",
                    created,
                    "COPY api /usr/local/bin/api",
                    {"usr/local/bin/api": filler(f"api-{version}", 6000)},
                    3_000,
                ),
            ),
            env=(PATH_ENV, "APP_ENV=production", "LISTEN=:8080"),
            entrypoint=("/usr/local/bin/api",),
            cmd=("--listen", ":8080"),
            exposed_ports=("8080/tcp",),
            labels={
                "org.opencontainers.image.source": "https://git.pure.lab.com/team/app",
                "org.opencontainers.image.revision": revision,
                "org.opencontainers.image.version": version,
                "org.opencontainers.image.title": "team app API",
            },
            author="team-app <team-app@pure.lab.com>",
        )

    centos_8 = ImageSpec(
        created=centos8,
        layers=(_os_layer("CentOS Linux", "8", centos8, 36_000),),
        cmd=("/bin/bash",),
        labels={**centos_labels, "org.label-schema.build-date": "20210915"},
    )
    debian_bookworm = ImageSpec(
        created=bookworm,
        layers=(debian12,),
        cmd=("bash",),
        labels={**debian_labels, "org.opencontainers.image.version": "12"},
    )
    wordpress_65 = [
        wordpress("6.5.2", "2024-04-10T08:14:31Z"),
        wordpress("6.5.2", "2024-04-10T09:02:57Z", "arm", "v7"),
    ]
    node_22 = [
        node("22.0.0", "2024-04-25T00:31:02Z"),
        node("22.0.0", "2024-04-24T23:58:40Z", "arm64", "v8"),
    ]
    return {
        "centos": {
            "7": ImageSpec(
                created=centos7,
                layers=(_os_layer("CentOS Linux", "7 (Core)", centos7, 32_000),),
                cmd=("/bin/bash",),
                labels={**centos_labels, "org.label-schema.build-date": "20190305"},
            ),
            "8": centos_8,
            "latest": centos_8,
        },
        "debian": {
            "bullseye": ImageSpec(
                created=bullseye,
                layers=(_os_layer("Debian GNU/Linux", "11 (bullseye)", bullseye, 38_000),),
                cmd=("bash",),
                labels={**debian_labels, "org.opencontainers.image.version": "11"},
            ),
            "bookworm": debian_bookworm,
            "latest": debian_bookworm,
        },
        "node": {
            "18": node("18.20.2", "2022-04-20T17:45:12Z"),
            "20": node("20.12.2", "2023-04-18T22:09:36Z"),
            "22": node_22,
            "lts": node_22,
        },
        "wordpress": {
            "6.4": wordpress("6.4.3", "2023-11-08T19:26:03Z"),
            "6.5": wordpress_65,
            "latest": wordpress_65,
        },
        "team/app/api": {
            "1.0.0": api("1.0.0", "2024-01-15T10:00:00Z", "3f2a9c1"),
            "1.1.0": api("1.1.0", "2024-06-02T14:30:00Z", "8b7d0e4"),
            "main": api("1.2.0-dev", "2025-01-20T09:15:00Z", "c41e6f2"),
        },
    }


# Repositories pushed as OCI; the others as Docker schema 2 (node mixes both).
_OCI_REPOS = {"debian", "team/app/api"}
_OCI_TAGS = {("node", "20"), ("node", "22"), ("node", "lts")}


def seed_demo(base: str, ca_cert: str, session: requests.Session | None = None) -> dict[str, dict[str, str]]:
    """Push the demo repositories to the registry at ``base``; return repo -> tag -> digest.

    Tags whose spec is the same object share one manifest (``centos:8``/``latest``,
    ``node:22``/``lts``). Idempotent: pushing again gives the same digests.
    """
    own = session is None
    session = session or registry_session(ca_cert)
    result: dict[str, dict[str, str]] = {}
    try:
        for repo, tags in demo_images().items():
            groups: dict[int, tuple[object, list[str]]] = {}  # same spec object -> its tags
            for tag, spec in tags.items():
                groups.setdefault(id(spec), (spec, []))[1].append(tag)
            result[repo] = {}
            for spec, tag_names in groups.values():
                oci = repo in _OCI_REPOS or (repo, tag_names[0]) in _OCI_TAGS
                if isinstance(spec, list):
                    children = [push_image(session, base, repo, build_image(s), oci=oci) for s in spec]
                    entry = push_index(session, base, repo, children, tag_names, oci=oci)
                else:
                    assert isinstance(spec, ImageSpec)
                    entry = push_image(session, base, repo, build_image(spec), tag_names, oci=oci)
                for tag in tag_names:
                    result[repo][tag] = entry.digest
    finally:
        if own:
            session.close()
    return result
