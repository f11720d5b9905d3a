"""RegistryClient against real Distribution registries (plain, htpasswd, token auth) and a fake one.

The real registries come from devstack (its own stack in a temporary state directory, for
this module only) and :mod:`devstack.auth`; the faults a real registry never produces come
from :mod:`tests.registry_fakes`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.errors import BadUpstreamResponse, NotFound, Unauthorized, UpstreamUnavailable
from berth.registry.client import RegistryClient
from berth.registry.references import DIGEST_RE
from devstack import auth, seed, tls
from devstack.ports import free_port
from tests.helpers import need, running_devstack
from tests.registry_fakes import OTHER_HOST, FakeRegistry

pytestmark = pytest.mark.stack

READER = ("reader", "reader-pw")
BULK_REPOSITORIES = 1100


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """This module's own devstack (slapd and the seeded TLS registry)."""
    # stopping it also stops the extra registries recorded in its pids/
    with running_devstack(tmp_path_factory, "devstack-registry-client") as (_, environment):
        yield environment


@pytest.fixture(scope="module")
def state_dir(stack: dict[str, str]) -> Path:
    return Path(stack["DEVSTACK_STATE_DIR"])


@pytest.fixture(scope="module")
def ca(stack: dict[str, str]) -> Path:
    return Path(stack["BERTH_REGISTRY_CA"])


@pytest.fixture(scope="module")
def client(stack: dict[str, str], ca: Path) -> Iterator[RegistryClient]:
    registry = RegistryClient(stack["BERTH_REGISTRY_URL"], ca_bundle=ca)
    yield registry
    registry.close()


def _start(start, *args, **kwargs):
    try:
        return start(*args, **kwargs)
    except Exception as exc:
        need(f"{start.__name__} failed: {exc}")


@pytest.fixture(scope="module")
def basic_registry(state_dir: Path) -> Iterator[str]:
    url, name = _start(auth.start_basic_auth_registry, state_dir, *READER)
    yield url
    auth.stop(state_dir, name)


@pytest.fixture(scope="module")
def token_registry(state_dir: Path) -> Iterator[tuple[str, auth.TokenServer]]:
    url, server = _start(auth.start_token_auth_registry, state_dir, dict([READER]))
    yield url, server
    server.close()
    auth.stop(state_dir, "token-registry")


@pytest.fixture(scope="module")
def bulk_registry(state_dir: Path) -> Iterator[str]:
    """A registry whose storage holds 1,100 repositories, written straight into the layout.

    Distribution lists a directory under ``repositories/`` as a repository when it holds
    ``_layers``; that is all the catalog reads, so no image needs pushing.
    """
    root = auth.data_dir(state_dir, "bulk-registry") / "docker" / "registry" / "v2" / "repositories" / "bulk"
    for i in range(BULK_REPOSITORIES):
        (root / f"r{i:04d}" / "_layers").mkdir(parents=True, exist_ok=True)
    url = _start(auth.start_plain_registry, state_dir, "bulk-registry")
    yield url
    auth.stop(state_dir, "bulk-registry")


# --- the devstack registry ------------------------------------------------------------


def test_ping_reports_api_version(client: RegistryClient) -> None:
    ping = client.ping()
    assert ping.api_version == "registry/2.0"
    assert 0 < ping.latency_seconds < 5


def test_catalog_lists_seeded_repositories(client: RegistryClient) -> None:
    assert {"centos", "debian", "node", "wordpress", "team/app/api"} <= set(client.catalog())


def test_tags_of_nested_repository(client: RegistryClient) -> None:
    assert sorted(client.tags("team/app/api")) == ["1.0.0", "1.1.0", "main"]


def test_resolve_tag_and_digest(client: RegistryClient) -> None:
    by_tag = client.resolve("team/app/api", "1.0.0")
    assert DIGEST_RE.match(by_tag.digest)
    assert by_tag.media_type == seed.OCI_MANIFEST
    raw = client.manifest("team/app/api", "1.0.0")
    assert by_tag.size == len(raw.data) and raw.digest == by_tag.digest
    assert client.resolve("team/app/api", by_tag.digest) == by_tag


def test_manifest_of_oci_index(client: RegistryClient) -> None:
    raw = client.manifest("node", "22")
    assert raw.media_type == seed.OCI_INDEX
    document = json.loads(raw.data)
    assert document["mediaType"] == seed.OCI_INDEX
    platforms = {(m["platform"]["architecture"], m["platform"].get("variant")) for m in document["manifests"]}
    assert platforms == {("amd64", None), ("arm64", "v8")}
    assert raw.digest == "sha256:" + hashlib.sha256(raw.data).hexdigest() == client.resolve("node", "lts").digest


def test_blob_is_verified_config(client: RegistryClient) -> None:
    manifest = json.loads(client.manifest("team/app/api", "1.1.0").data)
    digest = manifest["config"]["digest"]
    data = client.blob("team/app/api", digest)
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    assert json.loads(data)["config"]["Labels"]["org.opencontainers.image.version"] == "1.1.0"


def test_unknown_repository_and_tag_are_not_found(client: RegistryClient) -> None:
    with pytest.raises(NotFound):
        client.tags("no/such/repository")
    with pytest.raises(NotFound):
        client.resolve("centos", "no-such-tag")
    with pytest.raises(NotFound):
        client.manifest("centos", "no-such-tag")
    with pytest.raises(NotFound):
        client.blob("centos", "sha256:" + "0" * 64)


def test_wrong_ca_names_the_served_certificate(stack: dict[str, str], tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.crt"
    tls.make_ca(other_ca, tmp_path / "other-ca.key", common_name="Some Other CA")
    registry = RegistryClient(stack["BERTH_REGISTRY_URL"], ca_bundle=other_ca, timeout=5)
    with pytest.raises(UpstreamUnavailable) as caught:
        registry.catalog()
    message = str(caught.value)
    assert "does not chain to the configured CA" in message
    assert "subject CN=127.0.0.1" in message
    assert "issuer CN=Berth devstack CA,O=Berth devstack" in message
    assert not caught.value.timeout


def test_closed_port_is_unavailable(ca: Path) -> None:
    registry = RegistryClient(f"https://127.0.0.1:{free_port()}", ca_bundle=ca, timeout=2, connect_timeout=2)
    with pytest.raises(UpstreamUnavailable, match="Cannot connect"):
        registry.ping()


def test_catalog_over_1000_repositories_follows_link(bulk_registry: str, ca: Path) -> None:
    registry = RegistryClient(bulk_registry, ca_bundle=ca)
    names = registry.catalog()
    assert len(names) == len(set(names)) == BULK_REPOSITORIES
    assert names == sorted(names) and names[0] == "bulk/r0000" and names[-1] == f"bulk/r{BULK_REPOSITORIES - 1:04d}"
    assert registry.requests_made == 2  # n=1000: two pages, the second through Link
    smaller = RegistryClient(bulk_registry, ca_bundle=ca)
    assert smaller.catalog(page_size=300) == names
    assert smaller.requests_made == 4


# --- htpasswd ---------------------------------------------------------------------------


def test_basic_auth_registry_browses_with_credentials(basic_registry: str, ca: Path) -> None:
    registry = RegistryClient(basic_registry, ca_bundle=ca, username=READER[0], password=READER[1])
    assert registry.ping().api_version == "registry/2.0"
    assert registry.catalog() == ["centos", "team/app/api"]
    assert sorted(registry.tags("team/app/api")) == ["1.0.0", "1.1.0"]
    ref = registry.resolve("centos", "7")
    assert registry.manifest("centos", ref.digest).digest == ref.digest


@pytest.mark.parametrize("credentials", [(None, None), (READER[0], "wrong-pw"), ("mallory", READER[1])])
def test_basic_auth_registry_refuses_missing_or_wrong_credentials(
    basic_registry: str, ca: Path, credentials: tuple[str | None, str | None]
) -> None:
    registry = RegistryClient(basic_registry, ca_bundle=ca, username=credentials[0], password=credentials[1])
    with pytest.raises(Unauthorized):
        registry.catalog()
    with pytest.raises(Unauthorized):
        registry.tags("centos")


# --- bearer tokens ----------------------------------------------------------------------


def test_token_registry_browses_and_reuses_tokens(token_registry: tuple[str, auth.TokenServer], ca: Path) -> None:
    url, server = token_registry
    server.reset_counts()
    registry = RegistryClient(url, ca_bundle=ca, username=READER[0], password=READER[1], token_realms=(server.realm,))
    assert registry.ping().api_version == "registry/2.0"
    for _ in range(5):
        assert registry.catalog() == ["centos", "team/app/api"]
        assert sorted(registry.tags("team/app/api")) == ["1.0.0", "1.1.0"]
        ref = registry.resolve("team/app/api", "1.1.0")
        config = json.loads(registry.manifest("team/app/api", ref.digest).data)["config"]["digest"]
        registry.blob("team/app/api", config)
        registry.tags("centos")
    scopes = {"", "registry:catalog:*", "repository:team/app/api:pull", "repository:centos:pull"}
    assert set(server.by_scope) == scopes
    assert all(count == 1 for count in server.by_scope.values()), server.by_scope
    assert server.requests == registry._tokens.fetched == len(scopes)
    assert server.refused == 0


def test_token_registry_refuses_wrong_password(token_registry: tuple[str, auth.TokenServer], ca: Path) -> None:
    url, server = token_registry
    server.reset_counts()
    with pytest.raises(Unauthorized):
        RegistryClient(
            url, ca_bundle=ca, username=READER[0], password="wrong-pw", token_realms=(server.realm,)
        ).catalog()
    with pytest.raises(Unauthorized):
        RegistryClient(url, ca_bundle=ca, token_realms=(server.realm,)).tags("centos")  # no credentials at all
    assert server.refused == 2


def test_token_registry_grants_only_pull(token_registry: tuple[str, auth.TokenServer]) -> None:
    _, server = token_registry
    access = server.grant(READER[0], ["repository:centos:pull,push,delete", "registry:catalog:*", "bogus"])
    assert access == [
        {"type": "repository", "name": "centos", "actions": ["pull"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]


# --- faults only a fake produces --------------------------------------------------------


def _fake_client(url: str, ca: Path) -> RegistryClient:
    return RegistryClient(url, ca_bundle=ca, timeout=1, connect_timeout=1)


def test_malformed_json_is_bad_response(ca: Path) -> None:
    with FakeRegistry(ca.parent, mode="malformed_json") as url:
        registry = _fake_client(url, ca)
        with pytest.raises(BadUpstreamResponse, match="not JSON"):
            registry.catalog()


def test_invalid_utf8_is_bad_response(ca: Path) -> None:
    with FakeRegistry(ca.parent, mode="invalid_utf8") as url:
        registry = _fake_client(url, ca)
        with pytest.raises(BadUpstreamResponse, match="not JSON"):
            registry.catalog()


def _memory_kb() -> dict[str, int]:
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


@pytest.mark.parametrize("mode", ["huge", "huge_declared"])
def test_huge_body_is_refused_without_reading_it_into_memory(ca: Path, mode: str) -> None:
    with FakeRegistry(ca.parent, mode=mode) as url:
        registry = _fake_client(url, ca)
        registry.ping()  # connections, TLS and imports warmed up before measuring
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        before = _memory_kb()
        with pytest.raises(BadUpstreamResponse, match="bytes"):
            registry.catalog()
        with pytest.raises(BadUpstreamResponse, match="bytes"):
            registry.manifest("team/app/api", "latest")
        after = _memory_kb()
    assert after["VmRSS"] - before["VmRSS"] < 20 * 1024
    assert after["VmHWM"] - before["VmHWM"] < 20 * 1024


def test_link_to_another_host_is_not_followed(ca: Path) -> None:
    with FakeRegistry(ca.parent, mode="link_other_host") as url:
        registry = _fake_client(url, ca)
        with pytest.raises(BadUpstreamResponse, match="not followed") as caught:
            registry.catalog()
    assert OTHER_HOST in str(caught.value)


def test_redirect_to_another_host_is_not_followed(ca: Path) -> None:
    with FakeRegistry(ca.parent, mode="redirect_other_host") as url:
        registry = _fake_client(url, ca)
        with pytest.raises(BadUpstreamResponse, match="not followed"):
            registry.catalog()
        with pytest.raises(BadUpstreamResponse, match="not followed"):
            registry.blob("centos", "sha256:" + "1" * 64)


def test_server_error_names_the_status(ca: Path) -> None:
    with FakeRegistry(ca.parent, mode="error_500") as url:
        registry = _fake_client(url, ca)
        with pytest.raises(BadUpstreamResponse, match="500") as caught:
            registry.tags("centos")
    assert "UNKNOWN" in str(caught.value)


@pytest.mark.parametrize("mode", ["hang", "stall"])
def test_hang_times_out_within_the_timeout(ca: Path, mode: str) -> None:
    with FakeRegistry(ca.parent, mode=mode, hang_seconds=10) as url:
        registry = _fake_client(url, ca)
        registry.ping()
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as caught:
            registry.catalog()
        elapsed = time.monotonic() - started
    assert caught.value.timeout is True
    assert "within 1 s" in str(caught.value)
    assert 0.9 < elapsed < 2.5
