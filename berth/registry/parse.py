"""Registry documents -> plain, frozen dataclasses.

Parses what the registry serves for a tag or digest (Docker schema 2 and OCI image manifests,
Docker manifest lists and OCI image indexes) and image configs into the dataclasses of
:mod:`berth.registry.model`, which assembles them into one `Image`. Everything the registry
could get wrong becomes `BadUpstreamResponse`, never another exception: the documents come
from the network, so none of their fields is trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, TypeGuard

from berth.errors import BadUpstreamResponse
from berth.registry.model import (
    UNKNOWN_PLATFORM,
    Descriptor,
    HistoryEntry,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    platform_string,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
INDEX_TYPES: frozenset[str] = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES: frozenset[str] = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# Distribution 2.8 answers 404 for an OCI index unless its type is accepted, so list all four.
ACCEPT_MANIFESTS: str = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
# Content-Types that say nothing about the document: trust its own mediaType field then.
_GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})
SCHEMA1_MESSAGE = "schema 1 manifests are not supported (deprecated); re-push the image"
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"

_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def _bad(message: str) -> BadUpstreamResponse:
    return BadUpstreamResponse(message, upstream="registry")


def sha256_digest(data: bytes) -> str:
    """The content digest of `data`, as "sha256:<hex>"."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _check_digest(value: object, where: str) -> str:
    """Return `value` if it is a well-formed digest, else raise naming `where`."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise _bad(f"{where}: malformed digest {str(value)[:80]!r}")
    algorithm, _, encoded = value.partition(":")
    length = _HEX_LENGTHS.get(algorithm)
    if length and not re.fullmatch(f"[0-9a-f]{{{length}}}", encoded):
        raise _bad(f"{where}: {algorithm} digest must be {length} lowercase hex digits")
    return value


def _load_object(data: bytes, what: str) -> dict[str, Any]:
    """Decode `data` as a UTF-8 JSON object."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise _bad(f"{what} is not valid UTF-8") from None
    except (ValueError, RecursionError):
        raise _bad(f"{what} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise _bad(f"{what} is not a JSON object")
    return doc


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _get(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    """`doc[key]` if it has type `kind`; `default` if missing or null; else raise."""
    value = doc.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise _bad(f"{where}.{key} has the wrong type")
    return value


def _strings(values: list[Any], where: str) -> tuple[str, ...]:
    if not all(isinstance(value, str) for value in values):
        raise _bad(f"{where} must hold only strings")
    return tuple(values)


def _string_map(value: dict[str, Any], where: str) -> Mapping[str, str]:
    if not all(isinstance(item, str) for item in value.values()):
        raise _bad(f"{where} must map strings to strings")
    return MappingProxyType(dict(value))


def _platform(doc: Mapping[str, Any], where: str) -> str | None:
    """The "os/arch[/variant]" of an index child, or None when it has no platform."""
    platform = _get(doc, "platform", dict, where)
    if platform is None:
        return None
    os_name = _get(platform, "os", str, f"{where}.platform")
    architecture = _get(platform, "architecture", str, f"{where}.platform")
    if not os_name or not architecture:
        raise _bad(f"{where}.platform needs os and architecture")
    return platform_string(os_name, architecture, _get(platform, "variant", str, f"{where}.platform"))


def _descriptor(value: object, where: str, with_platform: bool = False) -> Descriptor:
    """Parse one descriptor object."""
    if not isinstance(value, dict):
        raise _bad(f"{where} is not an object")
    size = value.get("size")
    if not _is_int(size) or size < 0:
        raise _bad(f"{where}.size must be a non-negative integer")
    return Descriptor(
        digest=_check_digest(value.get("digest"), f"{where}.digest"),
        media_type=_get(value, "mediaType", str, where, ""),
        size=size,
        platform=_platform(value, where) if with_platform else None,
        annotations=_string_map(_get(value, "annotations", dict, where, {}), f"{where}.annotations"),
    )


def _bare_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _infer_type(doc: Mapping[str, Any]) -> str:
    """Tell an OCI document without mediaType by its keys."""
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    if "fsLayers" in doc:
        raise _bad(SCHEMA1_MESSAGE)
    raise _bad("cannot tell what kind of manifest this is")


def _manifest_type(doc: Mapping[str, Any], content_type: str | None) -> str:
    """The document's media type, from the Content-Type or the document itself."""
    declared = _get(doc, "mediaType", str, "manifest")
    header = _bare_type(content_type)
    version = doc.get("schemaVersion")
    if header in SCHEMA1_TYPES or declared in SCHEMA1_TYPES or (_is_int(version) and version == 1):
        raise _bad(SCHEMA1_MESSAGE)
    if version is not None and not (_is_int(version) and version == 2):
        raise _bad("unsupported manifest schemaVersion")
    header = "" if header in _GENERIC_TYPES else header
    if header and declared and header != declared:
        raise _bad(f"manifest mediaType {declared!r} does not match Content-Type {header!r}")
    kind = header or declared or _infer_type(doc)
    if kind not in INDEX_TYPES | MANIFEST_TYPES:
        raise _bad(f"unknown manifest mediaType {kind[:100]!r}")
    return kind


def _is_attestation(descriptor: Descriptor) -> bool:
    return (
        descriptor.annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest"
        or descriptor.platform == UNKNOWN_PLATFORM
    )


def _build_index(doc: Mapping[str, Any], media_type: str, digest: str) -> ImageIndex:
    """Split an index's children into runnable manifests and attestations; skip anything else."""
    entries = _get(doc, "manifests", list, "index")
    if entries is None:
        raise _bad("index has no manifests list")
    runnable: list[Descriptor] = []
    attestations: list[Descriptor] = []
    for i, entry in enumerate(entries):
        child = _descriptor(entry, f"manifests[{i}]", with_platform=True)
        if _is_attestation(child):
            attestations.append(child)
        elif child.media_type in MANIFEST_TYPES or not child.media_type:
            runnable.append(child)
    return ImageIndex(digest=digest, media_type=media_type, manifests=tuple(runnable), attestations=tuple(attestations))


def _build_manifest(doc: Mapping[str, Any], media_type: str, digest: str) -> ImageManifest:
    layers = _get(doc, "layers", list, "manifest")
    if layers is None:
        raise _bad("manifest has no layers list")
    return ImageManifest(
        digest=digest,
        media_type=media_type,
        config=_descriptor(doc.get("config"), "config"),
        layers=tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
    )


def parse_manifest(data: bytes, media_type: str | None, digest: str | None = None) -> ImageManifest | ImageIndex:
    """Parse a manifest or index as served, checking its content against `digest` when given."""
    actual = sha256_digest(data)
    if digest is None:
        digest = actual
    elif _check_digest(digest, "requested digest").startswith("sha256:") and digest != actual:
        raise _bad(f"manifest content does not match its digest {digest}")
    doc = _load_object(data, "manifest")
    kind = _manifest_type(doc, media_type)
    if kind in INDEX_TYPES:
        return _build_index(doc, kind, digest)
    return _build_manifest(doc, kind, digest)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 time (nanoseconds allowed) as aware UTC; None if odd, missing or year 1."""
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(0) if zulu else int(sign + "1") * timedelta(hours=int(off_h), minutes=int(off_m))
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro)
        moment = local.replace(tzinfo=timezone(offset)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return None if int(year) <= 1 else moment


def _history_entry(value: object, where: str) -> HistoryEntry:
    if not isinstance(value, dict):
        raise _bad(f"{where} is not an object")
    return HistoryEntry(
        created=parse_time(value.get("created")),
        created_by=_get(value, "created_by", str, where, ""),
        comment=_get(value, "comment", str, where, ""),
        empty_layer=_get(value, "empty_layer", bool, where, False),
    )


def _optional_strings(doc: Mapping[str, Any], key: str) -> tuple[str, ...] | None:
    value = _get(doc, key, list, "config")
    return None if value is None else _strings(value, f"config.{key}")


def parse_config(data: bytes) -> ImageConfig:
    """Parse an image config blob (Docker or OCI; they share the fields used here)."""
    doc = _load_object(data, "image config")
    run = _get(doc, "config", dict, "image config", {})
    history = _get(doc, "history", list, "image config", [])
    os_name = _get(doc, "os", str, "image config")
    architecture = _get(doc, "architecture", str, "image config")
    if os_name is None or architecture is None:
        raise _bad("image config needs os and architecture")
    return ImageConfig(
        created=parse_time(doc.get("created")),
        os=os_name,
        architecture=architecture,
        variant=_get(doc, "variant", str, "image config") or None,
        labels=_string_map(_get(run, "Labels", dict, "config", {}), "config.Labels"),
        env=_strings(_get(run, "Env", list, "config", []), "config.Env"),
        entrypoint=_optional_strings(run, "Entrypoint"),
        cmd=_optional_strings(run, "Cmd"),
        working_dir=_get(run, "WorkingDir", str, "config", ""),
        user=_get(run, "User", str, "config", ""),
        exposed_ports=tuple(sorted(_get(run, "ExposedPorts", dict, "config", {}))),
        history=tuple(_history_entry(entry, f"history[{i}]") for i, entry in enumerate(history)),
    )
