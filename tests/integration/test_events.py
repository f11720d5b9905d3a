"""Registry events end to end: a real ``docker-registry serve`` notifying Berth under gunicorn.

One devstack (slapd and the seeded TLS registry) for the module; an events registry with
``notifications.endpoints`` pointing at a BerthServer (gunicorn, as deployed) with a long
cache TTL, so anything that shows up at once came from an event, not from an expiry.
Images are pushed with skopeo, as a user would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from berth.auth.tokens import signing_bundle_pem
from berth.events.parse import EVENTS_MEDIA_TYPE
from devstack import auth as devauth
from devstack.berth import BerthServer
from tests.helpers import need, running_devstack

pytestmark = pytest.mark.stack

SECRET = "integration-events-secret-0123456789"
SERVICE = "berth-events-test"
DAVE = ("dave", "dave-pw")
VISIBLE_WITHIN = 1.0


def notifications_yaml(berth_url: str) -> str:
    """The registry's notifications section: Berth, with a short backoff so a restart is caught up fast."""
    return (
        "notifications:\n  endpoints:\n    - name: berth\n"
        f"      url: {json.dumps(berth_url + '/api/v1/events')}\n"
        f"      headers:\n        Authorization: [{json.dumps('Bearer ' + SECRET)}]\n"
        "      timeout: 2s\n      threshold: 1\n      backoff: 1s\n"
        "      ignoredmediatypes: [application/octet-stream]\n"
    )


@dataclass
class World:
    state_dir: Path
    berth: BerthServer
    registry_url: str
    certs: Path
    source: Path
    http: requests.Session

    def push(self, reference: str, creds: str | None = None) -> float:
        """skopeo copy the demo image to ``reference`` on the events registry; return when it finished."""
        host = self.registry_url.removeprefix("https://")
        creds_args = ["--dest-creds", creds] if creds else []
        done = subprocess.run(
            ["skopeo", "--insecure-policy", "copy", *creds_args, "--dest-cert-dir", str(self.certs),
             f"oci:{self.source}:demo", f"docker://{host}/{reference}"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return time.monotonic()

    def api(self, path: str, **params) -> dict:
        response = self.http.get(self.berth.base_url + path, params=params, auth=DAVE, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def events(self, repository: str) -> list[dict]:
        return self.api("/api/v1/events", repository=repository, n=500)["events"]

    def wait_for(self, check, bound: float = 20.0):
        """Poll ``check`` every 20 ms until it returns something truthy, for at most ``bound`` seconds."""
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if result := check():
                return result
            time.sleep(0.02)
        raise AssertionError(f"not seen within {bound} s")

    def post(self, body: bytes, content_type: str = EVENTS_MEDIA_TYPE) -> requests.Response:
        headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": content_type}
        return self.http.post(self.berth.base_url + "/api/v1/events", data=body, headers=headers, timeout=60)


def _oci_source(environment: dict[str, str], certs: Path, work: Path) -> Path:
    source = work / "oci"
    seeded = environment["BERTH_REGISTRY_URL"].removeprefix("https://")
    copied = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--src-cert-dir", str(certs), f"docker://{seeded}/centos:7",
         f"oci:{source}:demo"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    return source


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not shutil.which("skopeo"):
        need("skopeo is not installed")
    with running_devstack(tmp_path_factory, "devstack-events") as (state_dir, environment):
        work = tmp_path_factory.mktemp("events-work")
        certs = work / "certs"
        certs.mkdir()
        shutil.copy(environment["BERTH_REGISTRY_CA"], certs / "ca.crt")
        env = {k: v for k, v in environment.items() if k.startswith("BERTH_")}
        env.update(BERTH_EVENTS_SECRET=SECRET, BERTH_CACHE_TTL="600", BERTH_BACKGROUND="false")
        berth = BerthServer(env, work / "berth-data", work / "berth.log", clean_env=True)
        registry_url = devauth.start_registry(state_dir, "events-registry", notifications_yaml(berth.base_url))
        berth.env["BERTH_REGISTRY_URL"] = registry_url
        berth.start()
        with requests.Session() as http:
            http.trust_env = False
            try:
                yield World(Path(state_dir), berth, registry_url, certs, _oci_source(environment, certs, work), http)
            finally:
                berth.stop()
                devauth.stop(state_dir, "events-registry")


def test_a_push_is_in_the_feed_and_in_search_within_a_second(world: World) -> None:
    world.push("warm/first:1")
    world.wait_for(lambda: world.api("/api/v1/repositories", q="warm/first")["repositories"])  # catalog now cached
    assert world.api("/api/v1/repositories/warm/first/tags")["tags"][0]["tag"] == "1"  # tags cached too
    pushed = world.push("fresh/app:1.0")
    found = world.wait_for(lambda: world.events("fresh/app"))
    feed_at = time.monotonic() - pushed
    world.wait_for(lambda: world.api("/api/v1/repositories", q="fresh/app")["repositories"] == ["fresh/app"])
    search_at = time.monotonic() - pushed
    print(f"push visible: feed {feed_at:.3f} s, search {search_at:.3f} s")
    assert feed_at <= VISIBLE_WITHIN and search_at <= VISIBLE_WITHIN, (feed_at, search_at)
    (event,) = found
    assert (event["action"], event["repository"], event["tag"]) == ("push", "fresh/app", "1.0")
    assert event["digest"].startswith("sha256:") and event["at"]
    second = world.push("warm/first:2")  # a new tag of a repository whose tags are cached for 600 s
    world.wait_for(lambda: [t["tag"] for t in world.api("/api/v1/repositories/warm/first/tags")["tags"]] == ["1", "2"])
    assert time.monotonic() - second <= VISIBLE_WITHIN


def test_a_delete_removes_the_tag_at_once(world: World) -> None:
    world.push("gone/app:1")
    world.push("gone/app:2")
    tags = world.wait_for(lambda: len(world.api("/api/v1/repositories/gone/app/tags")["tags"]) == 2 and
                          world.api("/api/v1/repositories/gone/app/tags")["tags"])  # fmt: skip
    digest = tags[0]["digest"]
    host = world.registry_url.removeprefix("https://")
    deleted = subprocess.run(
        ["skopeo", "delete", "--cert-dir", str(world.certs), f"docker://{host}/gone/app@{digest}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr
    world.wait_for(lambda: world.api("/api/v1/repositories/gone/app/tags")["tags"] == [], bound=VISIBLE_WITHIN + 1)
    assert any(e["action"] == "delete" for e in world.events("gone/app"))


def test_pulls_are_counted_on_the_repository(world: World) -> None:
    world.push("pulled/app:1")
    host = world.registry_url.removeprefix("https://")
    inspected = subprocess.run(
        ["skopeo", "inspect", "--cert-dir", str(world.certs), f"docker://{host}/pulled/app:1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    assert not [e for e in world.events("pulled/app") if e["action"] == "pull"]  # counted, not listed

    def counted() -> bool:
        page = world.http.get(
            world.berth.base_url + "/activity/pulls", params={"repository": "pulled/app"}, auth=DAVE, timeout=10
        )
        return page.status_code == 200 and " 0 pulls in the last 7 days" not in page.text

    world.wait_for(counted, bound=5)


def test_pushes_while_berth_is_down_arrive_once_after_it_starts(world: World) -> None:
    world.berth.stop()
    world.push("outage/app:1")
    world.push("outage/app:2")
    world.berth.start(fresh=False)
    events = world.wait_for(lambda: len(world.events("outage/app")) >= 2 and world.events("outage/app"), bound=30)
    time.sleep(2.5)  # one more backoff: anything retried twice would show now
    events = world.events("outage/app")
    assert sorted(e["tag"] for e in events) == ["1", "2"]
    assert len({e["id"] for e in events}) == len(events) == 2
    tags = [t["tag"] for t in world.api("/api/v1/repositories/outage/app/tags")["tags"]]
    assert tags == ["1", "2"]


def _count(world: World) -> int:
    return len(world.api("/api/v1/events", n=500)["events"])


def test_the_same_batch_twice_is_stored_once(world: World) -> None:
    event = {
        "id": "replayed-0001", "timestamp": "2026-01-01T00:00:00.123456789Z", "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1, "repository": "replay/app",
                   "digest": "sha256:" + "a" * 64, "tag": "1"},
        "actor": {"name": "ci"}, "source": {"addr": "registry:5000"},
    }  # fmt: skip
    body = json.dumps({"events": [event, {**event, "id": "replayed-0002"}]}).encode()
    assert world.post(body).json()["stored"] == 2
    assert world.post(body).json()["stored"] == 0
    assert [e["id"] for e in world.events("replay/app")] == ["replayed-0002", "replayed-0001"]


HOSTILE = [
    ("deep JSON", b"[" * 500_000, EVENTS_MEDIA_TYPE, 400),
    ("invalid UTF-8", b'{"events": ["\xff\xfe"]}', EVENTS_MEDIA_TYPE, 400),
    ("wrong media type", b'{"events": []}', "text/plain", 415),
    ("missing fields", b'{"events": [{"id": "x", "action": "push"}]}', EVENTS_MEDIA_TYPE, 400),
    ("huge array", b'{"events": [' + b",".join([b"{}"] * 1_500_000) + b"]}", EVENTS_MEDIA_TYPE, 400),
    ("not an object", b"null", EVENTS_MEDIA_TYPE, 400),
]


@pytest.mark.parametrize(("label", "body", "content_type", "status"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_change_nothing(world: World, label, body, content_type, status) -> None:
    before = _count(world)
    assert world.post(body, content_type).status_code == status, label
    assert _count(world) == before


def test_fifty_megabytes_are_refused_without_reading_them(world: World) -> None:
    before = _count(world)
    try:
        status = world.post(b"{" * (50 * 1024 * 1024)).status_code
    except requests.ConnectionError:  # the server answered 413 and closed while the body was still going
        status = 413
    assert status == 413
    assert world.http.get(world.berth.base_url + "/healthz", timeout=5).status_code == 200
    assert _count(world) == before


def test_token_auth_shows_the_pusher(world: World, tmp_path: Path) -> None:
    """A registry whose token server is Berth: the event's actor is who pushed."""
    env = dict(world.berth.env)
    berth = BerthServer(env, tmp_path / "data", tmp_path / "berth.log", clean_env=True)
    bundle = tmp_path / "rootcertbundle.pem"
    bundle.write_bytes(signing_bundle_pem(tmp_path / "data"))
    auth_yaml = (
        "auth:\n  token:\n"
        f"    realm: {json.dumps(berth.base_url + '/auth/token')}\n"
        f"    service: {SERVICE}\n    issuer: berth\n"
        f"    rootcertbundle: {json.dumps(str(bundle))}\n"
    )
    config = auth_yaml + notifications_yaml(berth.base_url)
    url = devauth.start_registry(world.state_dir, "events-token-registry", config)
    berth.env.update(BERTH_REGISTRY_URL=url, BERTH_PUBLIC_URL=berth.base_url, BERTH_REGISTRY_SERVICE=SERVICE)
    try:
        berth.start(fresh=False)
        other = World(world.state_dir, berth, url, world.certs, world.source, world.http)
        other.push("dave/evented:1", creds="dave:dave-pw")
        (event,) = other.wait_for(lambda: other.events("dave/evented"), bound=10)
        assert event["actor"] == "dave"
    finally:
        berth.stop()
        devauth.stop(world.state_dir, "events-token-registry")


def test_activity_page_lists_pushes_and_refreshes_itself(world: World) -> None:
    world.push("paged/app:7")
    world.wait_for(lambda: world.events("paged/app"))
    with requests.Session() as browser:
        browser.trust_env = False
        login = browser.get(world.berth.base_url + "/login", timeout=10).text
        token = login.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        browser.post(
            world.berth.base_url + "/login",
            data={"username": "dave", "password": "dave-pw", "csrf_token": token},
            timeout=10,
        )
        page = browser.get(world.berth.base_url + "/activity", params={"repository": "paged/app"}, timeout=10)
        assert page.status_code == 200 and "paged/app</a>:7" in page.text and 'hx-trigger="every 5s"' in page.text
        fragment = browser.get(
            world.berth.base_url + "/activity", params={"repository": "paged/app"}, headers={"HX-Request": "true"}
        )
        assert fragment.text.lstrip().startswith('<div id="activity-list"') and "paged/app" in fragment.text
        repository = browser.get(world.berth.base_url + "/repositories/paged/app", timeout=10)
        assert repository.status_code == 200 and "/activity/pulls?repository=paged" in repository.text
        stats = browser.get(world.berth.base_url + "/activity/pulls", params={"repository": "paged/app"}, timeout=10)
        assert "Last pushed" in stats.text and "in the last 30" in stats.text
