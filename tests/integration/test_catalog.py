"""The catalog browser and API against the real devstack registry."""

from __future__ import annotations

import re
import time

import pytest

from devstack import seed
from devstack.tls import make_ca
from tests.helpers import make_app

pytestmark = pytest.mark.stack

DAVE = ("dave", "dave-pw")


@pytest.fixture
def api(client):
    def get(path, **kwargs):
        return client.get(path, auth=DAVE, **kwargs)

    return get


def push_test_image(stack, repo: str, tag: str, created: str, marker: str) -> str:
    """Push a one-layer image with distinct content; returns its digest."""
    session = seed.registry_session(stack["BERTH_REGISTRY_CA"])
    layer = seed.make_layer({"marker": marker.encode()}, created)
    image = seed.build_image(seed.ImageSpec(created=created, layers=[layer]))
    return seed.push_image(session, stack["BERTH_REGISTRY_URL"], repo, image, [tag]).digest


def test_repositories_listed_and_searchable(api):
    names = api("/api/v1/repositories").get_json()["repositories"]
    assert {"centos", "debian", "node", "wordpress", "team/app/api"} <= set(names)
    assert names == sorted(names)
    assert api("/api/v1/repositories?q=APP").get_json() == {"repositories": ["team/app/api"], "next": None}


def test_repositories_paging_follows_next(api):
    first = api("/api/v1/repositories?n=2").get_json()
    assert len(first["repositories"]) == 2 and first["next"]
    collected = list(first["repositories"])
    following = first["next"]
    while following:
        page = api(following).get_json()
        collected += page["repositories"]
        following = page["next"]
    assert collected == api("/api/v1/repositories").get_json()["repositories"]


def test_tags_with_size_date_platforms(api):
    body = api("/api/v1/repositories/node/tags").get_json()
    tags = {t["tag"]: t for t in body["tags"]}
    assert body["name"] == "node" and set(tags) >= {"18", "20", "22", "lts"}
    assert tags["22"]["digest"] == tags["lts"]["digest"]
    assert tags["22"]["media_type"] == "application/vnd.oci.image.index.v1+json"
    assert tags["22"]["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert tags["22"]["created"].endswith("Z") and tags["22"]["size_bytes"] > 0
    for entry in body["tags"]:
        assert set(entry) >= {"tag", "digest", "media_type", "size_bytes", "created", "platforms"}


def test_docker_manifest_list_and_nested_name(api):
    wordpress = {t["tag"]: t for t in api("/api/v1/repositories/wordpress/tags").get_json()["tags"]}
    multi = [t for t in wordpress.values() if len(t["platforms"]) > 1]
    assert multi and "linux/arm/v7" in multi[0]["platforms"]
    nested = api("/api/v1/repositories/team/app/api/tags").get_json()
    assert nested["name"] == "team/app/api" and {t["tag"] for t in nested["tags"]} >= {"1.0.0", "1.1.0", "main"}


def test_tag_detail_by_tag_and_digest(api, settings):
    detail = api("/api/v1/repositories/node/tags/22").get_json()
    assert detail["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert [i["platform"] for i in detail["images"]] == ["linux/amd64", "linux/arm64/v8"]
    assert detail["layers"] and detail["config"]["cmd"] == ["node"]
    assert {"labels", "env", "entrypoint", "cmd", "history"} <= set(detail["config"])
    host = settings.registry_host
    assert detail["pull"] == {
        "tag": f"docker pull {host}/node:22",
        "digest": f"docker pull {host}/node@{detail['digest']}",
    }
    by_digest = api(f"/api/v1/repositories/node/tags/{detail['digest']}").get_json()
    assert by_digest["digest"] == detail["digest"] and by_digest["tag"] is None


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v1/repositories/nope/tags", "There is no repository 'nope'"),
        ("/api/v1/repositories/centos/tags/nope", "has no tag 'nope'"),
        ("/api/v1/repositories/nope/tags/latest", "There is no repository 'nope'"),
        ("/api/v1/repositories/centos/tags/sha256:abc", "not a valid tag or digest"),
        ("/api/v1/repositories/Centos/tags", "not a valid repository name"),
        ("/api/v1/repositories/a..b/tags", "not a valid repository name"),
    ],
)
def test_unknown_things_are_404(api, path, message):
    response = api(path)
    assert response.status_code == 404 and message in response.get_json()["error"]


def test_pages_render(client, auth):
    auth.login("dave")
    page = client.get("/repositories").get_data(as_text=True)
    assert "team/app/api" in page and "repositories" in page
    page = client.get("/repositories/node").get_data(as_text=True)
    assert "linux/arm64/v8" in page and 'href="/repositories/node/tags/lts"' in page
    page = client.get("/repositories/node/tags/22").get_data(as_text=True)
    assert 'data-copy="docker pull' in page and 'role="tablist"' in page
    arm = client.get("/repositories/node/tags/22?platform=linux/arm64/v8", headers={"HX-Request": "true"})
    fragment = arm.get_data(as_text=True)
    assert "<html" not in fragment and 'id="platform-panel"' in fragment and "linux/arm64/v8" in fragment
    assert "HX-Request" in arm.headers["Vary"]
    assert client.get("/repositories/node/tags/22?platform=plan9/mips").status_code == 404


def test_search_as_you_type_returns_fragment(client, auth):
    auth.login("dave")
    response = client.get("/repositories?q=team", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert "<html" not in body and "team/app/api" in body and "centos" not in body


def test_unknown_repository_page_is_404(client, auth):
    auth.login("dave")
    response = client.get("/repositories/nope")
    assert response.status_code == 404 and "There is no repository" in response.get_data(as_text=True)


def _tags_in_page(html: str) -> list[str]:
    return re.findall(r'class="tag" href="/repositories/[^"]+/tags/([^"]+)"', html)


def test_sort_by_date_is_right_across_pages(app, client, auth, monkeypatch):
    import blueprints.catalog

    monkeypatch.setattr(blueprints.catalog, "IMAGES_PER_PAGE", 1)
    auth.login("dave")
    # More tags than a page: the first view shows page 1 by name while the rest is read (berth.catalog.streaming).
    assert "progress-line" in client.get("/repositories/node?sort=created").get_data(as_text=True)
    deadline = time.monotonic() + 30
    while app.extensions["berth"].streaming.tags_progress("node") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    newest_first = []
    for number in (1, 2, 3):
        html = client.get(f"/repositories/node?sort=created&order=desc&page={number}").get_data(as_text=True)
        newest_first.append(_tags_in_page(html))
    assert newest_first == [["22", "lts"], ["20"], ["18"]]
    oldest = client.get("/repositories/node?sort=created&order=asc&page=1").get_data(as_text=True)
    assert _tags_in_page(oldest) == ["18"]


def test_filter_by_tag_and_digest_prefix(client, auth, api):
    auth.login("dave")
    assert _tags_in_page(client.get("/repositories/node?q=l").get_data(as_text=True)) == ["22", "lts"]
    digest = api("/api/v1/repositories/node/tags/20").get_json()["digest"]
    for prefix in (digest[:15], digest[7:15]):
        assert _tags_in_page(client.get(f"/repositories/node?q={prefix}").get_data(as_text=True)) == ["20"]


def test_registry_down_is_502(settings):
    client = make_app(settings.replace(registry_url="https://127.0.0.1:9", registry_timeout=1.0)).test_client()
    response = client.get("/api/v1/repositories", auth=DAVE)
    assert response.status_code == 502 and "Cannot connect to registry 127.0.0.1:9" in response.get_json()["error"]


def test_wrong_ca_is_a_clear_tls_message(settings, tmp_path):
    make_ca(tmp_path / "other-ca.crt", tmp_path / "other-ca.key", "Some Other CA")
    client = make_app(settings.replace(registry_ca=tmp_path / "other-ca.crt")).test_client()
    response = client.get("/api/v1/repositories", auth=DAVE)
    error = response.get_json()["error"]
    assert response.status_code == 502
    assert "does not chain to the configured CA" in error and "issuer CN=Berth devstack CA" in error


def test_cold_load_costs_the_floor_and_revalidation_one_head_per_tag(settings):
    app = make_app(settings.replace(cache_ttl=1))
    client = app.test_client()
    registry = app.extensions["berth"].registry
    before = registry.requests_made
    client.get("/api/v1/repositories/node/tags", auth=DAVE)
    # tags/list + 4 manifests by tag + 2 index children + 4 configs = the floor
    assert registry.requests_made - before == 11
    before = registry.requests_made
    client.get("/api/v1/repositories/node/tags", auth=DAVE)
    assert registry.requests_made == before  # warm: nothing asked
    time.sleep(1.1)
    client.get("/api/v1/repositories/node/tags", auth=DAVE)
    assert registry.requests_made - before == 5  # tags/list + one HEAD per tag


def test_second_worker_reads_the_persisted_cache(settings):
    first = make_app(settings)
    first.test_client().get("/api/v1/repositories/node/tags", auth=DAVE)
    second = make_app(settings)
    body = second.test_client().get("/api/v1/repositories/node/tags", auth=DAVE).get_json()
    assert len(body["tags"]) >= 4
    assert second.extensions["berth"].registry.requests_made == 0


def test_repushed_tag_shows_new_digest_within_ttl(stack, settings):
    client = make_app(settings.replace(cache_ttl=1)).test_client()
    old = push_test_image(stack, "cachetest/app", "moving", "2024-01-01T00:00:00Z", "one")
    assert client.get("/api/v1/repositories/cachetest/app/tags", auth=DAVE).get_json()["tags"][0]["digest"] == old
    new = push_test_image(stack, "cachetest/app", "moving", "2025-01-01T00:00:00Z", f"two-{time.time()}")
    time.sleep(1.1)
    tags = client.get("/api/v1/repositories/cachetest/app/tags", auth=DAVE).get_json()["tags"]
    assert tags[0]["digest"] == new != old
    assert tags[0]["created"] == "2025-01-01T00:00:00Z"
