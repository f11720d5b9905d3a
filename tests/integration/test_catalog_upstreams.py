"""Berth browsing registries behind Basic and token auth, and registries that misbehave."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import auth
from tests.helpers import AuthActions, make_app
from tests.registry_fakes import FakeRegistry

pytestmark = pytest.mark.stack

DAVE = ("dave", "dave-pw")
READER = ("reader", "reader-pw")


@pytest.fixture(scope="module")
def basic_registry(stack):
    url, name = auth.start_basic_auth_registry(stack["DEVSTACK_STATE_DIR"], *READER, name="app-basic-registry")
    yield url
    auth.stop(stack["DEVSTACK_STATE_DIR"], name)


@pytest.fixture(scope="module")
def token_registry(stack):
    url, server = auth.start_token_auth_registry(stack["DEVSTACK_STATE_DIR"], dict([READER]))
    yield url, server
    server.close()
    auth.stop(stack["DEVSTACK_STATE_DIR"], "token-registry")


def browse(settings, url, credentials=(None, None), realms=()):
    app = make_app(
        settings.replace(
            registry_url=url,
            registry_username=credentials[0],
            registry_password=credentials[1],
            registry_token_realms=realms,
        )
    )
    client = app.test_client()
    return client.get("/api/v1/repositories/team/app/api/tags", auth=DAVE)


def test_basic_auth_registry_browses(settings, basic_registry):
    response = browse(settings, basic_registry, READER)
    assert response.status_code == 200
    assert {t["tag"] for t in response.get_json()["tags"]} == {"1.0.0", "1.1.0"}


def test_basic_auth_registry_without_credentials_is_502(settings, basic_registry):
    response = browse(settings, basic_registry)
    assert response.status_code == 502 and "requires credentials" in response.get_json()["error"]
    response = browse(settings, basic_registry, ("reader", "wrong"))
    assert response.status_code == 502 and "refused" in response.get_json()["error"]


def test_token_auth_registry_browses(settings, token_registry):
    url, server = token_registry
    response = browse(settings, url, READER, realms=(server.realm,))
    assert response.status_code == 200
    assert {t["tag"] for t in response.get_json()["tags"]} == {"1.0.0", "1.1.0"}


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("malformed_json", "not JSON"),
        ("invalid_utf8", "not JSON"),
        ("huge", "not read further"),
        ("huge_declared", "Berth reads at most"),
        ("link_other_host", "not followed"),
        ("error_500", "answered 500"),
    ],
)
def test_misbehaving_registry_is_502_json_and_page(settings, stack, mode, message):
    ca_dir = Path(stack["BERTH_REGISTRY_CA"]).parent
    with FakeRegistry(ca_dir, mode=mode) as url:
        app = make_app(settings.replace(registry_url=url))
        client = app.test_client()
        response = client.get("/api/v1/repositories", auth=DAVE)
        assert response.status_code == 502, response.get_json()
        assert message in response.get_json()["error"]
        AuthActions(client).login("dave")
        page = client.get("/repositories")
        assert page.status_code == 502
        assert "Upstream error" in page.get_data(as_text=True) and "Traceback" not in page.get_data(as_text=True)


def test_hung_registry_is_504(settings, stack):
    ca_dir = Path(stack["BERTH_REGISTRY_CA"]).parent
    with FakeRegistry(ca_dir, mode="hang", hang_seconds=5) as url:
        app = make_app(settings.replace(registry_url=url, registry_timeout=1.0))
        response = app.test_client().get("/api/v1/repositories", auth=DAVE)
        assert response.status_code == 504 and "did not answer within 1 s" in response.get_json()["error"]


@pytest.fixture(scope="module")
def bulk_registry(stack):
    """1,100 repositories, past the registry's page cap of 1,000 (empty repositories, written in its layout)."""
    state_dir = stack["DEVSTACK_STATE_DIR"]
    root = auth.data_dir(state_dir, "app-bulk-registry") / "docker" / "registry" / "v2" / "repositories" / "bulk"
    for i in range(1100):
        (root / f"r{i:04d}" / "_layers").mkdir(parents=True, exist_ok=True)
    url = auth.start_plain_registry(state_dir, "app-bulk-registry")
    yield url
    auth.stop(state_dir, "app-bulk-registry")


def test_more_than_a_thousand_repositories_listed_and_searchable(settings, bulk_registry):
    client = make_app(settings.replace(registry_url=bulk_registry)).test_client()
    names = client.get("/api/v1/repositories?n=10000", auth=DAVE).get_json()["repositories"]
    assert len(names) == 1100 and names[-1] == "bulk/r1099"
    found = client.get("/api/v1/repositories?q=r1099", auth=DAVE).get_json()
    assert found == {"repositories": ["bulk/r1099"], "next": None}
    AuthActions(client).login("dave")
    page = client.get("/repositories?q=r10&page=2").get_data(as_text=True)
    assert "100 matches for" in page and "among 1,100 repositories" in page and "bulk/r1050" in page
