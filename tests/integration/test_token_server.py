"""Berth as the token server of a real Distribution registry, proven with real clients (skopeo).

One devstack for this module; a ``docker-registry serve`` whose ``auth.token`` realm is a
Berth instance served over HTTPS (devstack CA) by werkzeug on a free loopback port, and
whose ``rootcertbundle`` is Berth's signing bundle. The registry decides every request
itself from the tokens Berth signed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
from werkzeug.serving import make_server

from berth.auth.tokens import SigningKeys, signing_bundle_pem, signing_dir
from berth.config import Settings
from devstack import auth as devauth
from devstack.ports import LOOPBACK, free_port
from tests.helpers import AuthActions, make_app, need, running_devstack

pytestmark = pytest.mark.stack

SERVICE = "berth-token-test"
ISSUER = "berth"


class World:
    """What the tests share: URLs, the CA, the Berth app and a skopeo runner."""

    def __init__(self, registry_url: str, berth_url: str, ca: Path, certs: Path, app, source: Path, data_dir: Path):
        self.registry_url = registry_url
        self.host = registry_url.removeprefix("https://")
        self.berth_url = berth_url
        self.ca = ca
        self.certs = certs
        self.app = app
        self.source = source
        self.data_dir = data_dir

    def skopeo(self, *args: str) -> subprocess.CompletedProcess:
        """Run skopeo with the devstack CA for every registry and token realm."""
        command = ["skopeo", "--insecure-policy", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def push(self, creds: str, repository: str) -> subprocess.CompletedProcess:
        return self.skopeo(
            "copy", "--dest-creds", creds, "--dest-cert-dir", str(self.certs),
            f"oci:{self.source}:demo", f"docker://{self.host}/{repository}",
        )  # fmt: skip

    def inspect(self, creds: str | None, reference: str) -> subprocess.CompletedProcess:
        cred_args = ["--creds", creds] if creds else ["--no-creds"]
        return self.skopeo("inspect", *cred_args, "--cert-dir", str(self.certs), f"docker://{self.host}/{reference}")

    def token(self, scopes: list[str], auth: tuple[str, str] | None = None, **params) -> requests.Response:
        query = {"service": SERVICE, "scope": scopes, **params}
        return requests.get(f"{self.berth_url}/auth/token", params=query, auth=auth, verify=str(self.ca), timeout=30)

    def registry(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(
            method, self.registry_url + path, headers=headers, verify=str(self.ca), timeout=30, **kwargs
        )


@contextlib.contextmanager
def running_world(tmp_path_factory: pytest.TempPathFactory, label: str, swarm: bool = False) -> Iterator[World]:
    """A devstack of its own, a token-auth registry and a Berth serving its realm."""
    if not shutil.which("skopeo"):
        need("skopeo is not installed")
    with running_devstack(tmp_path_factory, label, swarm=swarm) as (state_dir, environment):
        work = tmp_path_factory.mktemp(label + "-work")
        yield from _world(Path(state_dir), environment, work)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory, "devstack-token-server") as shared:
        yield shared


def _world(state_dir: Path, environment: dict[str, str], work: Path) -> Iterator[World]:
    ca = Path(environment["BERTH_REGISTRY_CA"])
    certs = work / "certs"
    certs.mkdir()
    shutil.copy(ca, certs / "ca.crt")
    data_dir = work / "berth"
    bundle = work / "rootcertbundle.pem"
    bundle.write_bytes(signing_bundle_pem(data_dir))
    port = free_port()
    berth_url = f"https://{LOOPBACK}:{port}"
    auth_yaml = (
        "auth:\n  token:\n"
        f"    realm: {json.dumps(berth_url + '/auth/token')}\n"
        f"    service: {SERVICE}\n    issuer: {ISSUER}\n"
        f"    rootcertbundle: {json.dumps(str(bundle))}\n"
    )
    registry_url = devauth.start_registry(state_dir, "berth-token-registry", auth_yaml)
    env = {k: v for k, v in environment.items() if k.startswith(("BERTH_", "DOCKER_"))}
    env.update(
        BERTH_DATA_DIR=str(data_dir),
        BERTH_BACKGROUND="false",
        BERTH_REGISTRY_URL=registry_url,
        BERTH_PUBLIC_URL=berth_url,
        BERTH_REGISTRY_SERVICE=SERVICE,
    )
    env.pop("BERTH_REGISTRY_USERNAME", None)
    env.pop("BERTH_REGISTRY_PASSWORD", None)
    app = make_app(Settings.from_env(env))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(state_dir / "tls" / "server.crt"), str(state_dir / "tls" / "server.key"))
    server = make_server(LOOPBACK, port, app, threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    source = work / "oci"
    copied = subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--src-cert-dir", str(certs),
         f"docker://{environment['BERTH_REGISTRY_URL'].removeprefix('https://')}/centos:7", f"oci:{source}:demo"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    try:
        yield World(registry_url, berth_url, ca, certs, app, source, data_dir)
    finally:
        server.shutdown()
        thread.join(5)
        devauth.stop(state_dir, "berth-token-registry")


def audit_rows(world: World, action: str) -> list:
    return [e for e in world.app.extensions["berth"].audit.recent(500) if e.action == action]


# --- real clients against the registry ----------------------------------------------------


def test_developer_pushes_to_own_namespace_only(world: World) -> None:
    pushed = world.push("dave:dave-pw", "dave/demo:1")
    assert pushed.returncode == 0, pushed.stderr
    refused = world.push("dave:dave-pw", "library/demo:1")
    assert refused.returncode != 0
    assert re.search(r"denied|unauthorized", refused.stderr, re.I), refused.stderr
    denials = [e for e in audit_rows(world, "registry-token") if e.outcome == "denied" and e.username == "dave"]
    assert any("library/demo" in e.detail and "push" in e.detail for e in denials)
    grants = [e for e in audit_rows(world, "registry-token") if e.outcome == "granted"]
    assert any(e.username == "dave" and "dave/demo" in e.detail and e.address == LOOPBACK for e in grants)


def test_ops_pulls_but_cannot_push(world: World) -> None:
    assert world.push("dave:dave-pw", "dave/demo:1").returncode == 0
    inspected = world.inspect("olivia:olivia-pw", "dave/demo:1")
    assert inspected.returncode == 0, inspected.stderr
    assert world.push("olivia:olivia-pw", "dave/demo:olivia").returncode != 0
    assert world.push("olivia:olivia-pw", "olivia/demo:1").returncode != 0


def test_anonymous_catalog_is_401_and_admin_lists_it(world: World) -> None:
    anonymous = world.registry("GET", "/v2/_catalog")
    assert anonymous.status_code == 401
    assert f'realm="{world.berth_url}/auth/token"' in anonymous.headers["WWW-Authenticate"]
    token = world.token(["registry:catalog:*"], ("alice", "alice-pw")).json()["token"]
    listed = world.registry("GET", "/v2/_catalog", token)
    assert listed.status_code == 200 and "dave/demo" in listed.json()["repositories"]
    token = world.token(["registry:catalog:*"], ("dave", "dave-pw")).json()["token"]
    assert world.registry("GET", "/v2/_catalog", token).status_code == 401


def test_wrong_password_fails(world: World) -> None:
    assert world.inspect("dave:not-dave-pw", "dave/demo:1").returncode != 0
    assert world.token(["repository:dave/demo:pull"], ("dave", "not-dave-pw")).status_code == 401


def test_admin_deletes_by_digest_developer_cannot(world: World) -> None:
    assert world.push("dave:dave-pw", "dave/demo:to-delete").returncode == 0
    digest = json.loads(world.inspect("dave:dave-pw", "dave/demo:to-delete").stdout)["Digest"]
    certs = ["--cert-dir", str(world.certs)]
    reference = f"docker://{world.host}/dave/demo@{digest}"
    refused = world.skopeo("delete", "--creds", "dave:dave-pw", *certs, reference)
    assert refused.returncode != 0
    deleted = world.skopeo("delete", "--creds", "alice:alice-pw", *certs, reference)
    assert deleted.returncode == 0, deleted.stderr
    assert world.inspect("alice:alice-pw", "dave/demo:to-delete").returncode != 0
    granted = [e for e in audit_rows(world, "registry-token") if e.outcome == "granted" and e.username == "alice"]
    assert any("repository:dave/demo:*" in e.detail for e in granted)


def _claims(**changes) -> dict:
    now = int(time.time())
    claims = {
        "iss": ISSUER, "sub": "mallory", "aud": SERVICE, "exp": now + 300, "nbf": now - 1, "iat": now,
        "jti": "forged", "access": [{"type": "registry", "name": "catalog", "actions": ["*"]}],
    }  # fmt: skip
    claims.update(changes)
    return claims


@pytest.mark.parametrize(
    ("label", "changes", "other_key", "expected"),
    [
        ("control: Berth's key, right claims", {}, False, 200),
        ("signed by another key", {}, True, 401),
        ("expired", {"exp": int(time.time()) - 600, "nbf": int(time.time()) - 900}, False, 401),
        ("for another service", {"aud": "another-registry"}, False, 401),
        ("another issuer", {"iss": "not-berth"}, False, 401),
    ],
)
def test_registry_itself_refuses_foreign_tokens(world: World, tmp_path: Path, label, changes, other_key, expected):
    keys = SigningKeys(tmp_path if other_key else signing_dir(world.data_dir)).load()
    token = keys.sign(_claims(**changes))
    assert world.registry("GET", "/v2/_catalog", token).status_code == expected, label


def test_access_token_works_until_revoked(world: World) -> None:
    client = world.app.test_client()
    actions = AuthActions(client)
    assert actions.login("dave").status_code == 303
    page = client.post(
        "/tokens",
        data={"name": "ci", "actions": ["pull", "push"], "days": "7", "csrf_token": actions.csrf_token("/tokens")},
    ).get_data(as_text=True)
    secret = re.search(r'id="new-token">(berth_[A-Za-z0-9_-]+)<', page).group(1)
    assert world.push(f"dave:{secret}", "dave/from-ci:1").returncode == 0
    assert world.push(f"dave:{secret}", "library/from-ci:1").returncode != 0
    assert world.push(f"olivia:{secret}", "dave/from-ci:2").returncode != 0  # someone else's token
    listing = client.get("/tokens").get_data(as_text=True)
    assert "ci" in listing and "never" not in listing  # last use shown
    token_id = re.search(r"/tokens/([0-9a-f]+)/revoke", listing).group(1)
    client.post(f"/tokens/{token_id}/revoke", data={"csrf_token": actions.csrf_token("/tokens")})
    assert world.inspect(f"dave:{secret}", "dave/from-ci:1").returncode != 0
    assert world.token(["repository:dave/from-ci:pull"], ("dave", secret)).status_code == 401


def test_berth_reads_the_registry_with_its_own_tokens(world: World) -> None:
    assert world.push("dave:dave-pw", "dave/demo:1").returncode == 0
    registry = world.app.extensions["berth"].registry
    assert "dave/demo" in registry.catalog()
    assert "1" in registry.tags("dave/demo")


def test_access_page_in_plain_words(world: World) -> None:
    client = world.app.test_client()
    AuthActions(client).login("dave")
    page = client.get("/access").get_data(as_text=True)
    assert "You can pull and push dave/* (any repository under dave/)." in page
    assert "You can pull every repository." in page


def test_oauth_password_grant(world: World) -> None:
    response = requests.post(
        f"{world.berth_url}/auth/token",
        data={"grant_type": "password", "username": "dave", "password": "dave-pw", "service": SERVICE,
              "scope": "repository:dave/demo:pull,push repository:library/x:push", "client_id": "containerd-client"},
        verify=str(world.ca), timeout=30,
    )  # fmt: skip
    body = response.json()
    assert response.status_code == 200 and body["scope"] == "repository:dave/demo:pull,push"
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["aud"] == SERVICE


# --- hostile requests to the live endpoint ------------------------------------------------


@pytest.mark.parametrize(
    ("params", "auth_header"),
    [
        ({"scope": ["repository:../../etc/passwd:pull,push"]}, None),
        ({"scope": ["repository:dave/demo:pull"] * 1000}, None),
        ({"scope": ["repository:" + "a/" * 1500 + "b:pull"]}, None),
        ({"scope": ["registry:catalog:*,push", "repository(evil/x):a:pull", "x" * 3000]}, None),
        ({"scope": ["repository:dave/demo:pull"]}, "Basic %%%not-base64%%%"),
        ({"scope": ["repository:dave/demo:pull"]}, "Basic ZGF2ZQ=="),  # "dave", no colon
    ],
)
def test_hostile_token_requests_grant_nothing(world: World, params, auth_header) -> None:
    headers = {"Authorization": auth_header} if auth_header else {}
    query = "&".join(f"scope={requests.utils.quote(s, safe='')}" for s in params["scope"])
    response = requests.get(
        f"{world.berth_url}/auth/token?service={SERVICE}&{query}", headers=headers, verify=str(world.ca), timeout=30
    )
    assert response.status_code in (200, 400, 401, 414, 431), response.text
    if response.status_code == 200:
        assert jwt.decode(response.json()["token"], options={"verify_signature": False})["access"] == []


def test_ten_kilobyte_password_is_refused(world: World) -> None:
    response = world.token(["repository:dave/demo:pull"], ("dave", "p" * 10240))
    assert response.status_code == 401 and response.json()["error"]


def test_repeated_failures_are_throttled_with_retry_after(world: World) -> None:
    free = world.app.extensions["berth"].settings.login_max_failures  # then growing delays start
    statuses = [world.token([], ("mallory", f"guess-{i}")).status_code for i in range(free)]
    assert statuses == [401] * free
    throttled = world.token([], ("mallory", "guess-next"))
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0


# --- the Docker engine (only when no other engine runs: two Swarm engines collide) ----------


@pytest.mark.swarm
def test_docker_login_and_push(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    with running_world(tmp_path_factory, "devstack-token-docker", swarm=True) as docker_world:
        certs_d = Path("/etc/docker/certs.d") / docker_world.host
        certs_d.mkdir(parents=True, exist_ok=True)
        shutil.copy(docker_world.ca, certs_d / "ca.crt")
        try:
            _docker_proof(docker_world, tmp_path)
        finally:
            shutil.rmtree(certs_d, ignore_errors=True)


def _docker_proof(world: World, tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    env["DOCKER_HOST"] = world.app.extensions["berth"].settings.docker_host or env.get("DOCKER_HOST", "")

    def docker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker", *args], input=stdin, capture_output=True, text=True, timeout=120, env=env, check=False
        )

    archive = tmp_path / "demo.tar"
    image = f"{world.host}/dave/engine:1"
    copied = world.skopeo("copy", f"oci:{world.source}:demo", f"docker-archive:{archive}:{image}")
    assert copied.returncode == 0, copied.stderr
    assert docker("load", "-i", str(archive)).returncode == 0
    assert docker("login", "-u", "dave", "--password-stdin", world.host, stdin="wrong").returncode != 0
    logged_in = docker("login", "-u", "dave", "--password-stdin", world.host, stdin="dave-pw")
    assert logged_in.returncode == 0, logged_in.stderr
    pushed = docker("push", image)
    assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    assert docker("tag", image, f"{world.host}/library/engine:1").returncode == 0
    refused = docker("push", f"{world.host}/library/engine:1")
    assert refused.returncode != 0 and "denied" in (refused.stderr + refused.stdout).lower()
