"""The image model: captured registry documents in, frozen dataclasses out, BadUpstreamResponse for junk."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berth.errors import BadUpstreamResponse
from berth.registry.model import (
    Descriptor,
    Image,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    assemble,
    platform_string,
)
from berth.registry.parse import (
    ACCEPT_MANIFESTS,
    INDEX_TYPES,
    MANIFEST_TYPES,
    parse_config,
    parse_manifest,
    parse_time,
    sha256_digest,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "manifests"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
GOOD_DIGEST = "sha256:" + "ab" * 32


def raw(name: str) -> bytes:
    """The bytes of one captured document."""
    return (DATA / name).read_bytes()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# file, Content-Type served, Docker-Content-Digest served (see tests/data/manifests/README.md)
SERVED = [
    (
        "centos-7.manifest.json",
        DOCKER_MANIFEST,
        "sha256:78611df68c4d85023b622267bc4feb5b23d3540915315d84fb82c4d18a4cab94",
    ),
    (
        "debian-bookworm.manifest.json",
        OCI_MANIFEST,
        "sha256:236ad457195347a06727a2ac9f71e163601c6950c7651a18de06db1d87db7329",
    ),
    ("node-22.index.json", OCI_INDEX, "sha256:2efbea7ff50e44b19f81001a32ce237f16a34e3c9c06a9350a0c618923d77f53"),
    (
        "node-22.linux-amd64.manifest.json",
        OCI_MANIFEST,
        "sha256:708b999f4d58c9d41d8957e14a2cd60c6fe6404e0dd3bac29c0d7d5324dff569",
    ),
    (
        "node-22.linux-arm64-v8.manifest.json",
        OCI_MANIFEST,
        "sha256:37707b0cae3aabe5d1751896c9a87c07d754696363336d2609c871f011930f28",
    ),
    (
        "wordpress-latest.index.json",
        DOCKER_LIST,
        "sha256:7a2485163ea2ee3ee8ec45269d5619d109cd78fe7f72fa2e3b7843dffff41c4e",
    ),
    (
        "wordpress-latest.linux-amd64.manifest.json",
        DOCKER_MANIFEST,
        "sha256:800c2f9613784f947ede1728cfbb9d8d3895e8693caa5e9369fadeab6b896cb8",
    ),
    (
        "wordpress-latest.linux-arm-v7.manifest.json",
        DOCKER_MANIFEST,
        "sha256:f39f81c9a883e2e8474d7e4459d5330bd930db9139e84d80d09d7d3330d1b5f7",
    ),
    (
        "team-app-api-1.0.0.manifest.json",
        OCI_MANIFEST,
        "sha256:fdb07e853527e22e87824c81a55f002793cfea99364b50935830cb2df0c69138",
    ),
]

# manifest file -> (config file, layer count, compressed size = config + layers)
MANIFESTS = {
    "centos-7.manifest.json": ("centos-7.config.json", 1, 1476 + 34569),
    "debian-bookworm.manifest.json": ("debian-bookworm.config.json", 1, 1406 + 42568),
    "node-22.linux-amd64.manifest.json": ("node-22.linux-amd64.config.json", 2, 1893 + 42568 + 16486),
    "node-22.linux-arm64-v8.manifest.json": ("node-22.linux-arm64-v8.config.json", 2, 1913 + 42568 + 16482),
    "wordpress-latest.linux-amd64.manifest.json": ("wordpress-latest.linux-amd64.config.json", 2, 50967),
    "wordpress-latest.linux-arm-v7.manifest.json": ("wordpress-latest.linux-arm-v7.config.json", 2, 50980),
    "team-app-api-1.0.0.manifest.json": ("team-app-api-1.0.0.config.json", 2, 22271),
    "buildkit-attestation.manifest.json": ("buildkit-attestation.config.json", 1, 123 + 1234),
}

# config file -> (platform, created)
CONFIGS = {
    "centos-7.config.json": ("linux/amd64", utc(2019, 3, 14, 21, 19, 53)),
    "debian-bookworm.config.json": ("linux/amd64", utc(2023, 6, 12, 3, 10, 44)),
    "node-22.linux-amd64.config.json": ("linux/amd64", utc(2024, 4, 25, 0, 31, 2)),
    "node-22.linux-arm64-v8.config.json": ("linux/arm64/v8", utc(2024, 4, 24, 23, 58, 40)),
    "wordpress-latest.linux-amd64.config.json": ("linux/amd64", utc(2024, 4, 10, 8, 14, 31)),
    "wordpress-latest.linux-arm-v7.config.json": ("linux/arm/v7", utc(2024, 4, 10, 9, 2, 57)),
    "team-app-api-1.0.0.config.json": ("linux/amd64", utc(2024, 1, 15, 10, 0, 0)),
    "hub-httpd-2.4.23.config.json": ("linux/amd64", utc(2016, 9, 23, 23, 20, 45, 789764)),
    "buildkit-attestation.config.json": ("unknown/unknown", None),
}

# index file -> platforms of its runnable children, in document order
INDEXES = {
    "node-22.index.json": ("linux/amd64", "linux/arm64/v8"),
    "wordpress-latest.index.json": ("linux/amd64", "linux/arm/v7"),
    "buildkit-attestation.index.json": ("linux/amd64",),
    "containers-image.schema2list.json": (
        "linux/amd64",
        "linux/arm/v5",
        "linux/arm/v6",
        "linux/arm64/v8",
        "linux/386",
        "linux/ppc64le",
        "linux/s390x",
    ),
}


def load_tree(index_file: str) -> tuple[ImageIndex, dict[str, ImageManifest], dict[str, ImageConfig]]:
    """Parse a captured index with its child manifests and configs, keyed by digest."""
    prefix = index_file.removesuffix(".index.json")
    index = parse_manifest(raw(index_file), None)
    assert isinstance(index, ImageIndex)
    children, configs = {}, {}
    for path in sorted(DATA.glob(f"{prefix}.*.manifest.json")):
        child = parse_manifest(path.read_bytes(), None)
        children[child.digest] = child
        config_file = path.name.replace(".manifest.json", ".config.json")
        configs[child.config.digest] = parse_config(raw(config_file))
    return index, children, configs


# --- captured documents ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "content_type", "served_digest"), SERVED)
def test_served_documents_parse_with_their_content_type_and_digest(name, content_type, served_digest):
    parsed = parse_manifest(raw(name), content_type, served_digest)
    assert parsed.digest == served_digest == sha256_digest(raw(name))
    assert parsed.media_type == content_type
    assert isinstance(parsed, ImageIndex) == (content_type in INDEX_TYPES)


@pytest.mark.parametrize(("name", "expected"), MANIFESTS.items())
def test_manifests_have_config_layers_and_size(name, expected):
    config_file, layer_count, size = expected
    manifest = parse_manifest(raw(name), None)
    assert isinstance(manifest, ImageManifest)
    assert manifest.media_type in MANIFEST_TYPES
    assert len(manifest.layers) == layer_count
    assert manifest.size_bytes == size
    if not name.startswith("buildkit"):  # the buildkit page's example digests are illustrative
        # The captured config is byte-exact: it hashes to what the manifest names.
        assert manifest.config.digest == sha256_digest(raw(config_file))
        assert manifest.config.size == len(raw(config_file))


@pytest.mark.parametrize(("name", "expected"), CONFIGS.items())
def test_configs_have_platform_and_created(name, expected):
    platform, created = expected
    config = parse_config(raw(name))
    assert config.platform == platform
    assert config.created == created
    assert config.created is None or config.created.tzinfo is UTC


@pytest.mark.parametrize(("name", "platforms"), INDEXES.items())
def test_indexes_list_runnable_platforms(name, platforms):
    index = parse_manifest(raw(name), None)
    assert isinstance(index, ImageIndex)
    assert tuple(child.platform for child in index.manifests) == platforms
    assert all(child.media_type in MANIFEST_TYPES for child in index.manifests)


@pytest.mark.parametrize("name", ["node-22.index.json", "wordpress-latest.index.json"])
def test_captured_children_are_byte_exact(name):
    index, children, _ = load_tree(name)
    for entry in index.manifests:
        assert entry.digest in children
    for path in DATA.glob(name.replace(".index.json", ".*.manifest.json")):
        sizes = {entry.digest: entry.size for entry in index.manifests}
        assert sizes[sha256_digest(path.read_bytes())] == len(path.read_bytes())


def test_centos_config_details():
    config = parse_config(raw("centos-7.config.json"))
    assert config.labels["org.label-schema.name"] == "CentOS Base Image"
    assert config.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    assert config.cmd == ("/bin/bash",)
    assert config.entrypoint is None
    assert (config.working_dir, config.user, config.exposed_ports, config.variant) == ("", "", (), None)
    assert len(config.history) == 4
    assert [entry.empty_layer for entry in config.history] == [False, True, True, True]
    assert config.history[0].created == utc(2019, 3, 14, 21, 19, 53)


def test_wordpress_and_api_config_details():
    wordpress = parse_config(raw("wordpress-latest.linux-arm-v7.config.json"))
    assert (wordpress.working_dir, wordpress.exposed_ports, dict(wordpress.labels)) == (
        "/var/www/html",
        ("80/tcp",),
        {},
    )
    assert wordpress.entrypoint == ("docker-entrypoint.sh",)
    assert wordpress.variant == "v7"
    api = parse_config(raw("team-app-api-1.0.0.config.json"))
    assert api.labels["org.opencontainers.image.version"] == "1.0.0"
    assert api.cmd == ("--listen", ":8080")
    assert api.exposed_ports == ("8080/tcp",)


def test_docker_hub_config_with_nanoseconds_and_nulls():
    config = parse_config(raw("hub-httpd-2.4.23.config.json"))
    assert config.entrypoint is None
    assert config.cmd == ("httpd-foreground",)
    assert config.working_dir == "/usr/local/apache2"
    bz2_url = "https://www.apache.org/dyn/closer.cgi?action=download&filename=httpd/httpd-2.4.23.tar.bz2"
    assert f"HTTPD_BZ2_URL={bz2_url}" in config.env
    assert len(config.history) == 15
    assert config.history[0].created == utc(2016, 9, 23, 18, 8, 50, 537223)
    assert sum(not entry.empty_layer for entry in config.history) == 5


def test_attestation_config_without_created_or_history():
    config = parse_config(raw("buildkit-attestation.config.json"))
    assert (config.created, config.env, config.history, config.cmd, dict(config.labels)) == (None, (), (), None, {})


def test_results_are_frozen_and_labels_read_only():
    config = parse_config(raw("centos-7.config.json"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.os = "windows"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.labels["x"] = "y"  # type: ignore[index]
    manifest = parse_manifest(raw("centos-7.manifest.json"), None)
    assert isinstance(manifest.layers, tuple)
    assert parse_manifest(raw("centos-7.manifest.json"), None) == manifest
    hash(manifest)


# --- assemble ----------------------------------------------------------------------------------


def test_assemble_node_index():
    index, children, configs = load_tree("node-22.index.json")
    image = assemble(index, children, configs)
    assert isinstance(image, Image)
    assert (image.digest, image.media_type, image.is_index) == (index.digest, OCI_INDEX, True)
    assert image.platforms == ("linux/amd64", "linux/arm64/v8")
    created = {item.platform: item.created for item in image.images}
    assert created == {"linux/amd64": utc(2024, 4, 25, 0, 31, 2), "linux/arm64/v8": utc(2024, 4, 24, 23, 58, 40)}
    assert image.size_bytes == 60947 + 60963
    assert image.created == utc(2024, 4, 25, 0, 31, 2)


def test_assemble_wordpress_manifest_list():
    index, children, configs = load_tree("wordpress-latest.index.json")
    image = assemble(index, children, configs)
    assert image.platforms == ("linux/amd64", "linux/arm/v7")
    assert image.size_bytes == 50967 + 50980
    assert image.created == utc(2024, 4, 10, 9, 2, 57)
    assert [item.config.platform for item in image.images if item.config] == ["linux/amd64", "linux/arm/v7"]


def test_assemble_plain_manifest():
    manifest = parse_manifest(raw("centos-7.manifest.json"), DOCKER_MANIFEST)
    config = parse_config(raw("centos-7.config.json"))
    image = assemble(manifest, {}, {manifest.config.digest: config})
    assert (image.is_index, image.platforms, image.size_bytes) == (False, ("linux/amd64",), 36045)
    assert image.created == utc(2019, 3, 14, 21, 19, 53)
    assert image.images[0].config is config


def test_assemble_without_configs_keeps_platforms_and_sizes():
    index, children, _ = load_tree("node-22.index.json")
    image = assemble(index, children, {})
    assert image.platforms == ("linux/amd64", "linux/arm64/v8")
    assert all(item.config is None and item.created is None for item in image.images)
    assert image.created is None
    assert image.size_bytes == 60947 + 60963
    plain = assemble(parse_manifest(raw("debian-bookworm.manifest.json"), None), {}, {})
    assert plain.platforms == ("unknown/unknown",)


def test_assemble_missing_child_names_its_digest():
    index, children, configs = load_tree("node-22.index.json")
    missing = index.manifests[1].digest
    del children[missing]
    with pytest.raises(BadUpstreamResponse, match=missing):
        assemble(index, children, configs)


def test_attestations_are_not_platforms():
    index = parse_manifest(raw("buildkit-attestation.index.json"), OCI_INDEX)
    assert isinstance(index, ImageIndex)
    (attestation,) = index.attestations
    assert attestation.platform == "unknown/unknown"
    assert attestation.annotations["vnd.docker.reference.type"] == "attestation-manifest"
    runnable = parse_manifest(raw("debian-bookworm.manifest.json"), None)
    children = {index.manifests[0].digest: runnable}
    image = assemble(index, children, {runnable.config.digest: parse_config(raw("debian-bookworm.config.json"))})
    assert image.platforms == ("linux/amd64",)
    assert image.size_bytes == runnable.size_bytes


def index_doc(*entries: dict) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)}).encode()


def entry(digit: str, platform: dict | None = None, **extra) -> dict:
    doc = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + digit * 64, "size": 10, **extra}
    if platform is not None:
        doc["platform"] = platform
    return doc


def test_attestation_recognised_by_annotation_or_platform_alone():
    amd64 = {"os": "linux", "architecture": "amd64"}
    unknown = {"os": "unknown", "architecture": "unknown"}
    annotated = {"annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
    index = parse_manifest(index_doc(entry("1", amd64), entry("2", amd64, **annotated), entry("3", unknown)), None)
    assert [child.digest[-1] for child in index.manifests] == ["1"]
    assert [child.digest[-1] for child in index.attestations] == ["2", "3"]


def test_index_skips_nested_indexes_and_unknown_artifacts():
    amd64 = {"os": "linux", "architecture": "amd64"}
    nested = entry("2", amd64, mediaType=OCI_INDEX)
    artifact = entry("3", None, mediaType="application/vnd.example.sbom+json")
    index = parse_manifest(index_doc(entry("1", amd64), nested, artifact), None)
    assert [child.digest[-1] for child in index.manifests] == ["1"]
    assert index.attestations == ()


def test_child_without_platform_takes_the_config_platform():
    manifest = parse_manifest(raw("node-22.linux-arm64-v8.manifest.json"), None)
    index = parse_manifest(index_doc(entry("0", None) | {"digest": manifest.digest}), None)
    config = parse_config(raw("node-22.linux-arm64-v8.config.json"))
    image = assemble(index, {manifest.digest: manifest}, {manifest.config.digest: config})
    assert image.platforms == ("linux/arm64/v8",)


# --- media types, digests, schema 1 --------------------------------------------------------------


def test_accept_header_lists_all_four_types():
    for media_type in (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST):
        assert media_type in ACCEPT_MANIFESTS
    assert {OCI_INDEX, DOCKER_LIST} == INDEX_TYPES
    assert {OCI_MANIFEST, DOCKER_MANIFEST} == MANIFEST_TYPES


@pytest.mark.parametrize("content_type", [None, "", "application/json", "application/json; charset=utf-8"])
def test_generic_content_type_uses_the_documents_media_type(content_type):
    assert parse_manifest(raw("wordpress-latest.index.json"), content_type).media_type == DOCKER_LIST
    assert parse_manifest(raw("centos-7.manifest.json"), content_type).media_type == DOCKER_MANIFEST


def test_content_type_parameters_and_case_are_ignored():
    parsed = parse_manifest(raw("node-22.index.json"), "Application/VND.OCI.Image.Index.v1+json; charset=utf-8")
    assert parsed.media_type == OCI_INDEX


def test_oci_documents_without_media_type_are_inferred():
    index = json.loads(raw("node-22.index.json"))
    manifest = json.loads(raw("debian-bookworm.manifest.json"))
    del index["mediaType"], manifest["mediaType"]
    assert isinstance(parse_manifest(json.dumps(index).encode(), None), ImageIndex)
    inferred = parse_manifest(json.dumps(manifest).encode(), "application/json")
    assert (type(inferred), inferred.media_type) == (ImageManifest, OCI_MANIFEST)
    # A specific Content-Type wins when the document does not say.
    assert parse_manifest(json.dumps(manifest).encode(), DOCKER_MANIFEST).media_type == DOCKER_MANIFEST


def test_content_type_that_contradicts_the_document_is_refused():
    with pytest.raises(BadUpstreamResponse, match="does not match"):
        parse_manifest(raw("centos-7.manifest.json"), OCI_MANIFEST)


def test_digest_is_computed_when_not_given():
    assert parse_manifest(raw("node-22.index.json"), None).digest == (
        "sha256:2efbea7ff50e44b19f81001a32ce237f16a34e3c9c06a9350a0c618923d77f53"
    )


@pytest.mark.parametrize("position", [0, 100, -2])
def test_flipped_byte_fails_digest_verification(position):
    data = bytearray(raw("node-22.index.json"))
    data[position] ^= 0x01
    digest = "sha256:2efbea7ff50e44b19f81001a32ce237f16a34e3c9c06a9350a0c618923d77f53"
    with pytest.raises(BadUpstreamResponse, match="does not match its digest"):
        parse_manifest(bytes(data), OCI_INDEX, digest)


def test_other_digest_algorithms_are_not_verified():
    parsed = parse_manifest(raw("centos-7.manifest.json"), DOCKER_MANIFEST, "sha512:" + "0" * 128)
    assert parsed.digest == "sha512:" + "0" * 128


@pytest.mark.parametrize(
    "digest", ["sha256:abc", "sha256:" + "A" * 64, "sha256:" + "a" * 64 + "\n", "nocolon", "SHA256:" + "a" * 64, ""]
)
def test_malformed_given_digest_is_refused(digest):
    with pytest.raises(BadUpstreamResponse, match="digest"):
        parse_manifest(raw("centos-7.manifest.json"), None, digest)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/json",
    ],
)
def test_schema1_is_refused_with_a_clear_message(content_type):
    with pytest.raises(BadUpstreamResponse, match=r"schema 1 manifests are not supported \(deprecated\); re-push"):
        parse_manifest(raw("containers-image.v2s1-unsigned.json"), content_type)


# --- malformed input -----------------------------------------------------------------------------


def manifest_with(**changes) -> bytes:
    doc = json.loads(raw("debian-bookworm.manifest.json"))
    doc.update(changes)
    return json.dumps(doc).encode()


def layer(**changes) -> dict:
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 1, "digest": GOOD_DIGEST, **changes}


def config_descriptor(**changes) -> dict:
    return {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1, "digest": GOOD_DIGEST, **changes}


MALFORMED_MANIFESTS = {
    "invalid utf-8": b'{"schemaVersion": 2, "mediaType": "\xff\xfe"}',
    "utf-8 bom": b"\xef\xbb\xbf" + raw("centos-7.manifest.json"),
    "invalid json": b'{"schemaVersion": 2,',
    "empty": b"",
    "json array": b"[]",
    "json string": b'"manifest"',
    "json null": b"null",
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "unknown media type": manifest_with(mediaType="application/vnd.oci.artifact.manifest.v1+json"),
    "media type not a string": manifest_with(mediaType=7),
    "schemaVersion 3": manifest_with(schemaVersion=3),
    "schemaVersion string": manifest_with(schemaVersion="2"),
    "schemaVersion true": manifest_with(schemaVersion=True),
    "no config": json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode(),
    "no layers": json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor()}).encode(),
    "layers not a list": manifest_with(layers={"0": layer()}),
    "layer not an object": manifest_with(layers=["sha256:" + "a" * 64]),
    "size is a string": manifest_with(layers=[layer(size="12")]),
    "size negative": manifest_with(layers=[layer(size=-1)]),
    "size float": manifest_with(layers=[layer(size=1.5)]),
    "size bool": manifest_with(layers=[layer(size=True)]),
    "size missing": manifest_with(config={"mediaType": "x", "digest": GOOD_DIGEST}),
    "digest missing": manifest_with(layers=[{"mediaType": "x", "size": 1}]),
    "digest not a string": manifest_with(layers=[layer(digest=12)]),
    "digest bad format": manifest_with(layers=[layer(digest="sha256/" + "a" * 64)]),
    "sha256 too short": manifest_with(layers=[layer(digest="sha256:" + "a" * 63)]),
    "sha256 upper case": manifest_with(config=config_descriptor(digest="sha256:" + "A" * 64)),
    "annotations not an object": manifest_with(layers=[layer(annotations=["a"])]),
    "annotation value not a string": manifest_with(layers=[layer(annotations={"a": 1})]),
    "index manifests not a list": index_doc().replace(b"[]", b"{}"),
    "index platform not an object": index_doc(entry("1", "linux/amd64")),  # type: ignore[arg-type]
    "index platform without os": index_doc(entry("1", {"architecture": "amd64"})),
    "index platform variant number": index_doc(entry("1", {"os": "linux", "architecture": "arm", "variant": 7})),
    "no way to tell the kind": b'{"schemaVersion": 2}',
}


@pytest.mark.parametrize("data", MALFORMED_MANIFESTS.values(), ids=MALFORMED_MANIFESTS.keys())
def test_malformed_manifests_raise_bad_upstream_response(data):
    with pytest.raises(BadUpstreamResponse) as caught:
        parse_manifest(data, None)
    assert caught.value.upstream == "registry"
    assert 0 < len(str(caught.value)) < 200


def config_with(run: dict | None = None, **changes) -> bytes:
    doc = json.loads(raw("team-app-api-1.0.0.config.json"))
    doc.update(changes)
    if run is not None:
        doc["config"].update(run)
    return json.dumps(doc).encode()


MALFORMED_CONFIGS = {
    "invalid utf-8": b'{"os": "\xc3\x28"}',
    "invalid json": b"{os: linux}",
    "json list": b"[1, 2]",
    "os missing": json.dumps({"architecture": "amd64"}).encode(),
    "architecture a number": config_with(architecture=64),
    "variant a list": config_with(variant=["v8"]),
    "config a list": config_with(config=[]),
    "labels a list": config_with({"Labels": ["a=b"]}),
    "label value a number": config_with({"Labels": {"a": 1}}),
    "env a string": config_with({"Env": "A=1"}),
    "env with a number": config_with({"Env": ["A=1", 2]}),
    "cmd a string": config_with({"Cmd": "run"}),
    "entrypoint with null": config_with({"Entrypoint": [None]}),
    "working dir a list": config_with({"WorkingDir": ["/"]}),
    "exposed ports a list": config_with({"ExposedPorts": ["80/tcp"]}),
    "history an object": config_with(history={"created_by": "x"}),
    "history entry a string": config_with(history=["ADD"]),
    "history created_by a number": config_with(history=[{"created_by": 1}]),
    "history empty_layer a string": config_with(history=[{"empty_layer": "true"}]),
}


@pytest.mark.parametrize("data", MALFORMED_CONFIGS.values(), ids=MALFORMED_CONFIGS.keys())
def test_malformed_configs_raise_bad_upstream_response(data):
    with pytest.raises(BadUpstreamResponse):
        parse_config(data)


def test_config_nulls_and_missing_parts_are_tolerated():
    config = parse_config(
        config_with(
            {"Labels": None, "Env": None, "Cmd": None, "Entrypoint": None, "ExposedPorts": None, "WorkingDir": None},
            history=None,
        )
    )
    assert (dict(config.labels), config.env, config.cmd, config.entrypoint) == ({}, (), None, None)
    assert (config.exposed_ports, config.working_dir, config.history) == ((), "", ())
    bare = parse_config(b'{"os": "linux", "architecture": "riscv64"}')
    assert (bare.platform, bare.created, bare.history) == ("linux/riscv64", None, ())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2023-10-11T05:00:50.123456789Z", utc(2023, 10, 11, 5, 0, 50, 123456)),
        ("2023-10-11T05:00:50Z", utc(2023, 10, 11, 5, 0, 50)),
        ("2023-10-11T05:00:50.5z", utc(2023, 10, 11, 5, 0, 50, 500000)),
        ("2023-10-11T07:00:50+02:00", utc(2023, 10, 11, 5, 0, 50)),
        ("2023-10-10T23:30:50.1-05:30", utc(2023, 10, 11, 5, 0, 50, 100000)),
        ("2023-10-11 05:00:50Z", utc(2023, 10, 11, 5, 0, 50)),
        ("0001-01-01T00:00:00Z", None),
        ("0000-01-01T00:00:00Z", None),
        ("9999-12-31T23:59:59-01:00", None),
        ("2023-13-01T00:00:00Z", None),
        ("2023-10-11T05:00:50", None),
        ("2023-10-11", None),
        ("yesterday", None),
        ("", None),
        ("٢٠٢٣-10-11T05:00:50Z", None),
        (1697000450, None),
        (None, None),
    ],
)
def test_parse_time(value, expected):
    assert parse_time(value) == expected


def test_odd_dates_in_config_and_history_become_none():
    data = config_with(
        created="0001-01-01T00:00:00Z",
        history=[{"created": "not a date", "created_by": "x"}, {"created": 5}, {"created": "2023-10-11T05:00:50.1Z"}],
    )
    config = parse_config(data)
    assert config.created is None
    assert [entry.created for entry in config.history] == [None, None, utc(2023, 10, 11, 5, 0, 50, 100000)]


def test_small_helpers():
    assert sha256_digest(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert platform_string("linux", "arm64", "v8") == "linux/arm64/v8"
    assert platform_string("linux", "amd64", None) == "linux/amd64"
    assert platform_string("linux", "amd64", "") == "linux/amd64"
    assert Descriptor(GOOD_DIGEST, "x", 1).annotations == {}


# --- properties ------------------------------------------------------------------------------------

JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from([GOOD_DIGEST, "sha512:" + "0" * 128, "2023-10-11T05:00:50Z", OCI_MANIFEST, DOCKER_LIST]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
SKELETONS = {
    "manifest": (
        json.loads(raw("node-22.linux-amd64.manifest.json")),
        [("schemaVersion",), ("mediaType",), ("config",), ("config", "size"), ("config", "digest"), ("layers",)]
        + [("layers", 0), ("layers", 1, "size"), ("layers", 0, "digest"), ("layers", 1, "annotations")],
    ),
    "index": (
        json.loads(raw("buildkit-attestation.index.json")),
        [
            ("mediaType",),
            ("manifests",),
            ("manifests", 0),
            ("manifests", 0, "platform"),
            ("manifests", 1, "annotations"),
        ]
        + [("manifests", 0, "platform", "os"), ("manifests", 0, "platform", "variant"), ("manifests", 1, "size")],
    ),
    "config": (
        json.loads(raw("hub-httpd-2.4.23.config.json")),
        [("created",), ("os",), ("variant",), ("config",), ("config", "Labels"), ("config", "Env"), ("config", "Cmd")]
        + [
            ("config", "ExposedPorts"),
            ("config", "WorkingDir"),
            ("history",),
            ("history", 0),
            ("history", 1, "created"),
        ]
        + [("history", 2, "empty_layer"), ("config", "Entrypoint"), ("config", "User")],
    ),
}
CONTENT_TYPES = st.sampled_from([None, "application/json", OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])


def put(doc: object, path: tuple, value: object) -> object:
    """A copy of `doc` with the value at `path` replaced (when the path still exists)."""
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        try:
            target = target[key]
        except (KeyError, IndexError, TypeError):
            return doc
    key = path[-1]
    if isinstance(target, dict) or (isinstance(target, list) and isinstance(key, int) and key < len(target)):
        target[key] = value
    return doc


def parse_any(kind: str, data: bytes, content_type: str | None) -> None:
    """Parse `data` as `kind`; anything but success or BadUpstreamResponse fails the test."""
    try:
        if kind == "config":
            parse_config(data)
        else:
            parse_manifest(data, content_type)
    except BadUpstreamResponse:
        pass


FAST = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(data=st.binary(max_size=300), content_type=CONTENT_TYPES)
def test_arbitrary_bytes_never_raise_anything_else(data, content_type):
    parse_any("manifest", data, content_type)
    parse_any("config", data, None)


@FAST
@given(st.data())
def test_mutated_captured_bytes_never_raise_anything_else(data):
    name = data.draw(st.sampled_from(sorted(path.name for path in DATA.glob("*.json"))))
    blob = bytearray(raw(name))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] = data.draw(st.integers(0, 255))
    parse_any("config" if "config" in name else "manifest", bytes(blob), data.draw(CONTENT_TYPES))


@FAST
@given(st.data())
def test_arbitrary_json_in_skeletons_never_raise_anything_else(data):
    kind = data.draw(st.sampled_from(sorted(SKELETONS)))
    doc, paths = SKELETONS[kind]
    for _ in range(data.draw(st.integers(1, 3))):
        doc = put(doc, data.draw(st.sampled_from(paths)), data.draw(JSONISH))
    parse_any(kind, json.dumps(doc).encode(), data.draw(CONTENT_TYPES))
    if kind != "config":
        parse_any("config", json.dumps(doc).encode(), None)
