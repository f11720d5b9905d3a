"""Hostile input against the real stack: every case answers with the right status and a clear
message, and changes nothing — no session, no stray audit or job row, no registry write.

Tables of bad inputs, grouped by where they enter: the login form, names and references in
URLs, data pushed into the registry, a registry that misbehaves, cookies, CSRF tokens, JSON
bodies, htmx headers, query strings and request headers.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
import time
import tracemalloc
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from berth.jobs.runner import JobDefinition, Step
from devstack import seed
from tests.helpers import AuthActions, make_app
from tests.registry_fakes import HUGE_BYTES, FakeRegistry

pytestmark = pytest.mark.stack

INVALID = "Invalid username or password."
DAVE = ("dave", "dave-pw")
ALICE = ("alice", "alice-pw")
CSRF_MESSAGE = "The form expired or did not come from this Berth page"


# --- helpers -------------------------------------------------------------------------


def rows(app) -> dict[str, int]:
    """How many sessions, audit entries and jobs the app's database holds."""
    with app.extensions["berth"].db.connect() as conn:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
            for table in ("sessions", "audit", "jobs")
        }


def audit_rows(app) -> list[dict]:
    with app.extensions["berth"].db.connect() as conn:
        return [dict(r) for r in conn.execute("SELECT * FROM audit ORDER BY id").fetchall()]


def logged_in(client) -> bool:
    return client.get("/").status_code == 200


def no_traceback(body: str) -> None:
    assert "Traceback" not in body and 'File "' not in body


def data_script_tags(html: str) -> list[str]:
    """Every ``<script`` tag that is not one of Berth's own static scripts."""
    return [tag for tag in re.findall(r"<script\b[^>]*>", html, re.IGNORECASE) if 'src="/static/' not in tag]


@pytest.fixture
def registry_calls(app):
    """Every (method, URL) Berth sends to the registry during the test."""
    client = app.extensions["berth"].registry
    calls: list[tuple[str, str]] = []
    real = client.session.request

    def spy(method, url, *args, **kwargs):
        calls.append((method.upper(), url))
        return real(method, url, *args, **kwargs)

    client.session.request = spy
    yield calls
    client.session.request = real


# --- LDAP filter injection and odd credentials ----------------------------------------


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("*)(uid=*))(|(uid=*", "dave-pw"),
        ("admin)(|(objectClass=*)", "x"),
        ("dave)(|(objectClass=*)", "dave-pw"),
        ("d*", "dave-pw"),
        ("*", "*"),
        ("\\2a", "dave-pw"),
        ("dave\\29", "dave-pw"),
        ("dave\x00", "dave-pw"),
        ("\x00", "dave-pw"),
        ("dave\u200b", "dave-pw"),  # zero-width space
        ("d\u0430ve", "dave-pw"),  # Cyrillic a
        ("\u0501ave", "dave-pw"),  # Cyrillic komi de
        ("\u1d05ave", "dave-pw"),  # small capital D
        ("dave\u0301", "dave-pw"),  # combining accent
        ("uid=dave,ou=people,dc=pure,dc=lab,dc=com", "dave-pw"),
        ("dave", " "),
        ("dave", "\x00dave-pw"),
        ("dave", "dave-pw\x00tail"),
        ("dave", "*"),
        ("dave", "x" * 1025),
        ("dave", "dave-pw" + "\u200b"),
    ],
)
def test_login_injection_and_odd_credentials_are_401_without_session(app, client, auth, username, password):
    before = rows(app)
    response = auth.login(username, password)
    body = response.get_data(as_text=True)
    assert response.status_code == 401 and INVALID in body
    assert not logged_in(client)
    after = rows(app)
    assert after["sessions"] == before["sessions"] == 0 and after["jobs"] == 0
    assert after["audit"] == before["audit"] + 1  # exactly the failed attempt
    assert audit_rows(app)[-1]["outcome"] == "failure"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("*", "dave-pw"),
        ("*)(uid=*))(|(uid=*", "dave-pw"),
        ("d\u0430ve", "dave-pw"),
        ("dave\x00", "dave-pw"),
        ("dave", "dave-pw\x00"),
        ("dave", ""),
        ("dave", "p" * 10_000),
    ],
)
def test_api_basic_injection_is_401_json(app, client, username, password):
    response = client.get("/api/v1/me", auth=(username, password))
    assert response.status_code == 401 and response.get_json() == {"error": INVALID}
    assert "Set-Cookie" not in response.headers
    assert rows(app)["sessions"] == 0


def test_markup_in_a_username_is_escaped_on_the_form_and_the_audit_page(app, client, auth):
    evil = '"><script>alert(1)</script>'
    response = auth.login(evil, "x")
    body = response.get_data(as_text=True)
    assert response.status_code == 401 and "<script>alert(1)" not in body
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in body
    auth.login("alice")
    audit = client.get("/audit").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in audit and not data_script_tags(audit)


# --- repository names and references in URLs ------------------------------------------

BAD_NAMES = [
    "..",
    "%2e%2e",
    "a/../b",
    "a/./b",
    "centos/..",
    "Centos",
    "a" * 300,
    "caf%C3%A9",
    "%E2%80%AEsotnec",  # right-to-left override
    "centos/",
    "centos%00",
    "centos%0A",
    "centos%0D%0AX-Injected:%201",
    "centos%20",
    "-centos",
    "centos.",
    "a__-b",
    "%3Cscript%3Ealert(1)%3C/script%3E",
]
NAME_ROUTES = [
    "/repositories/{}",
    "/repositories/{}/tags/latest",
    "/api/v1/repositories/{}/tags",
    "/api/v1/repositories/{}/tags/latest",
]


@pytest.mark.parametrize("route", NAME_ROUTES)
@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_repository_names_are_404_without_asking_the_registry(app, client, auth, registry_calls, route, name):
    auth.login("dave")
    registry = app.extensions["berth"].registry
    before, before_rows = registry.requests_made, rows(app)
    response = client.get(route.format(name), auth=DAVE if route.startswith("/api/") else None)
    body = response.get_data(as_text=True)
    assert response.status_code == 404, (route, name, response.status_code, body[:300])
    assert "not a valid repository name" in body or "There is nothing at this address" in body
    assert registry.requests_made == before and registry_calls == []
    assert rows(app)["sessions"] == before_rows["sessions"] and rows(app)["jobs"] == 0
    no_traceback(body)
    if route.startswith("/api/"):  # JSON, never sniffed as HTML: the name is data
        assert set(response.get_json()) == {"error"} and response.headers["X-Content-Type-Options"] == "nosniff"
    else:
        assert not data_script_tags(body)


@pytest.mark.parametrize("route", NAME_ROUTES)
@pytest.mark.parametrize("path", ["//", "a//b", "centos//"])
def test_doubled_slashes_never_reach_the_registry_with_an_invalid_name(app, client, auth, registry_calls, route, path):
    auth.login("dave")
    response = client.get(route.format(path), auth=DAVE if route.startswith("/api/") else None)
    assert response.status_code in (308, 404), response.status_code
    if response.status_code == 308:  # Werkzeug merges slashes: a redirect to the same path, never a 500
        assert "//" not in response.headers["Location"].split("/repositories", 1)[1]
    for _method, url in registry_calls:
        assert "//" not in url.split("://", 1)[1]


BAD_REFERENCES = [
    "@sha256:" + "a" * 64,
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha256:" + "A" * 64,
    "sha256:XYZ",
    "sha256:",
    "sha512:" + "a" * 64,
    "md5:" + "a" * 32,
    "t" * 200,
    ".hidden",
    "-dash",
    "latest%0A",
    "sha256:" + "a" * 64 + "%0A",
    "latest%00",
    "lat%20est",
    "%3Cscript%3E",
]


@pytest.mark.parametrize("prefix", ["/repositories/centos/tags/", "/api/v1/repositories/centos/tags/"])
@pytest.mark.parametrize("reference", BAD_REFERENCES)
def test_invalid_references_are_404_without_asking_the_registry(app, client, auth, registry_calls, prefix, reference):
    auth.login("dave")
    response = client.get(prefix + reference, auth=DAVE if prefix.startswith("/api/") else None)
    body = response.get_data(as_text=True)
    assert response.status_code == 404, (reference, response.status_code, body[:300])
    assert "not a valid tag or digest" in body
    assert registry_calls == []
    no_traceback(body)
    assert response.is_json or not data_script_tags(body)


@pytest.mark.parametrize(
    ("name", "reference"),
    [("centos\n", "latest"), ("centos", "latest\n"), ("centos", "sha256:" + "a" * 64 + "\n"), ("centos", "\nlatest")],
)
def test_a_trailing_newline_never_passes_for_a_valid_name_or_reference(name, reference):
    from berth.errors import NotFound
    from berth.registry.references import check_name, check_reference

    with pytest.raises(NotFound):
        check_name(name)
        check_reference(reference)


@pytest.mark.parametrize("prefix", ["/repositories/centos/tags/", "/api/v1/repositories/centos/tags/"])
def test_a_tag_with_a_slash_is_a_clear_404(app, client, auth, registry_calls, prefix):
    auth.login("dave")
    response = client.get(prefix + "a/b", auth=DAVE if prefix.startswith("/api/") else None)
    body = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "There is no repository" in body or "There is nothing at this address" in body
    assert {method for method, _ in registry_calls} <= {"GET", "HEAD"}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v1/repositories/centos/tags/sha256:" + "0" * 64, "Repository 'centos' has no image sha256:0000"),
        ("/api/v1/repositories/nope/tags/sha256:" + "0" * 64, "There is no repository 'nope'"),
        ("/repositories/centos/tags/sha256:" + "0" * 64, "Repository &#39;centos&#39; has no image sha256:0000"),
    ],
)
def test_a_digest_that_does_not_exist_is_a_clear_404(client, auth, registry_calls, path, message):
    auth.login("dave")
    response = client.get(path, auth=DAVE if path.startswith("/api/") else None)
    assert response.status_code == 404 and message in response.get_data(as_text=True)
    assert {method for method, _ in registry_calls} <= {"GET", "HEAD"}


# --- markup in image data, pushed to the real registry --------------------------------

XSS_LABEL = "<script>alert('label')</script>"
XSS_KEY = "<b onmouseover=alert(2)>key</b>"
XSS_ENV = "EVIL=<img src=x onerror=alert(3)>"
XSS_HISTORY = "/bin/sh -c echo \"<script>alert('history')</script>\""
XSS_WORKDIR = "/srv/<svg onload=alert(4)>"
XSS_ENTRYPOINT = "</code><script>alert(5)</script>"


@pytest.fixture(scope="module")
def hostile_image(stack) -> str:
    """``hostile/app:xss``, an image whose label, env, history and config carry markup; its digest."""
    session = seed.registry_session(stack["BERTH_REGISTRY_CA"])
    created = "2024-05-01T00:00:00Z"
    layer = seed.make_layer({"srv/app": b"hostile"}, created, created_by=XSS_HISTORY)
    image = seed.build_image(
        seed.ImageSpec(
            created=created,
            layers=[layer],
            labels={"org.example.evil": XSS_LABEL, XSS_KEY: "v"},
            env=["PATH=/usr/bin:/bin", XSS_ENV],
            working_dir=XSS_WORKDIR,
            entrypoint=[XSS_ENTRYPOINT],
            author="<i>mallory</i>",
        )
    )
    return seed.push_image(session, stack["BERTH_REGISTRY_URL"], "hostile/app", image, ["xss"]).digest


@pytest.mark.parametrize(
    "path", ["hostile/%3Cscript%3E", "%3Cscript%3Ealert(1)%3C%2Fscript%3E", "hostile/app%22onload=x"]
)
def test_the_registry_refuses_markup_in_repository_names(stack, path):
    session = seed.registry_session(stack["BERTH_REGISTRY_CA"])
    base = stack["BERTH_REGISTRY_URL"]
    response = session.post(f"{base}/v2/{path}/blobs/uploads/", timeout=10)
    assert response.status_code in (400, 404), response.status_code
    catalog = session.get(f"{base}/v2/_catalog?n=1000", timeout=10).json()["repositories"]
    assert not [name for name in catalog if "<" in name or '"' in name]


def test_the_registry_refuses_markup_in_a_tag(stack, hostile_image):
    session = seed.registry_session(stack["BERTH_REGISTRY_CA"])
    base = stack["BERTH_REGISTRY_URL"]
    manifest = session.get(
        f"{base}/v2/hostile/app/manifests/xss",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    response = session.put(
        f"{base}/v2/hostile/app/manifests/%3Cscript%3E",
        data=manifest.content,
        headers={"Content-Type": manifest.headers["Content-Type"]},
        timeout=10,
    )
    assert response.status_code in (400, 404)
    assert "<script>" not in session.get(f"{base}/v2/hostile/app/tags/list", timeout=10).text


@pytest.mark.parametrize("reference", ["xss", "digest"])
def test_markup_in_image_data_is_escaped_on_the_tag_page(client, auth, hostile_image, reference):
    auth.login("dave")
    reference = hostile_image if reference == "digest" else reference
    response = client.get(f"/repositories/hostile/app/tags/{reference}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert not data_script_tags(page), data_script_tags(page)
    for raw in ("<script>alert", "<img src=x", "<svg onload", "<b onmouseover", "<i>mallory"):
        assert raw not in page
    assert "&lt;script&gt;alert(&#39;label&#39;)&lt;/script&gt;" in page
    assert "&lt;b onmouseover=alert(2)&gt;key&lt;/b&gt;" in page
    assert "EVIL=&lt;img src=x onerror=alert(3)&gt;" in page
    assert "&lt;script&gt;alert(&#39;history&#39;)&lt;/script&gt;" in page
    assert "/srv/&lt;svg onload=alert(4)&gt;" in page
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_markup_in_image_data_is_escaped_in_the_fragment_and_listings(client, auth, hostile_image):
    auth.login("dave")
    fragment = client.get("/repositories/hostile/app/tags/xss?platform=linux/amd64", headers={"HX-Request": "true"})
    for response in (
        fragment,
        client.get("/repositories/hostile/app"),
        client.get("/repositories?q=hostile"),
        client.get("/repositories?q=hostile", headers={"HX-Request": "true"}),
    ):
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and not data_script_tags(body)
        assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(&#39;label&#39;)&lt;/script&gt;" in fragment.get_data(as_text=True)


def test_markup_in_image_data_is_json_data_in_the_api(client, hostile_image):
    response = client.get("/api/v1/repositories/hostile/app/tags/xss", auth=DAVE)
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    config = response.get_json()["config"]
    assert config["labels"] == {"org.example.evil": XSS_LABEL, XSS_KEY: "v"}
    assert XSS_ENV in config["env"] and config["entrypoint"] == [XSS_ENTRYPOINT]
    assert any(h["created_by"] == XSS_HISTORY for h in config["history"])


# --- a registry that misbehaves, on the page routes too -------------------------------

FAULT_MESSAGES = {
    "huge": "not read further",
    "huge_declared": "Berth reads at most",
    "invalid_utf8": "not JSON",
    "malformed_json": "not JSON",
    "redirect_other_host": "not followed",
    "link_other_host": "not followed",
    "error_500": "answered 500",
}
FAULT_ROUTES = [
    "/repositories/x",
    "/repositories/x/tags/y",
    "/api/v1/repositories/x/tags",
    "/api/v1/repositories/x/tags/y",
]


@pytest.mark.parametrize("route", FAULT_ROUTES)
@pytest.mark.parametrize("mode", sorted(FAULT_MESSAGES))
def test_misbehaving_registry_is_502_naming_it_on_every_route(settings, stack, mode, route):
    ca_dir = Path(stack["BERTH_REGISTRY_CA"]).parent
    with FakeRegistry(ca_dir, mode=mode) as url:
        app = make_app(settings.replace(registry_url=url, registry_timeout=5.0))
        client = app.test_client()
        api = route.startswith("/api/")
        if not api:
            AuthActions(client).login("dave")
        tracemalloc.start()
        try:
            started = time.monotonic()
            response = client.get(route, auth=DAVE if api else None)
            elapsed = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        body = response.get_data(as_text=True)
        host = url.removeprefix("https://")
        assert response.status_code == 502, (mode, route, response.status_code, body[:300])
        assert f"Registry {host}" in body
        no_traceback(body)
        if route.endswith(("/x", "/tags")):  # tags/list: the fault's own message
            assert FAULT_MESSAGES[mode] in body
        if not api:
            assert "Upstream error" in body and "<html" in body
        else:
            assert set(response.get_json()) == {"error"}
        assert peak < 24 * 1024 * 1024, f"{peak:,} bytes held while reading a misbehaving registry"
        assert elapsed < 15


@pytest.mark.parametrize("path", ["/repositories/x", "/repositories/x/tags/y", "/repositories"])
def test_a_huge_answer_is_not_read_to_the_end(settings, stack, path):
    fake = FakeRegistry(Path(stack["BERTH_REGISTRY_CA"]).parent, mode="huge")
    with fake as url:
        client = make_app(settings.replace(registry_url=url)).test_client()
        AuthActions(client).login("dave")
        assert client.get(path).status_code == 502
        time.sleep(0.2)  # let the fake notice the closed connection
    assert fake.bytes_sent < HUGE_BYTES // 2  # one 16 MB list page at most, plus socket buffers


# --- forged and replayed session cookies ----------------------------------------------


def sign(app, payload: dict, secret: str | None = None) -> str:
    """A session cookie for ``payload`` signed like Flask does, with ``secret`` (default: the app's)."""
    signer_app = Flask("forger")
    signer_app.config.update(app.config)
    if secret is not None:
        signer_app.secret_key = secret
    return SecureCookieSessionInterface().get_signing_serializer(signer_app).dumps(payload)


def real_session_id(app, client) -> str:
    AuthActions(client).login("alice")
    with app.extensions["berth"].db.connect() as conn:
        return conn.execute("SELECT id FROM sessions").fetchone()[0]


FORGERIES = {
    "random bytes": lambda app, sid: secrets.token_urlsafe(96),
    "random dotted": lambda app, sid: ".".join(secrets.token_urlsafe(20) for _ in range(3)),
    "unsigned payload": lambda app, sid: base64.urlsafe_b64encode(b'{"_user_id":"' + sid.encode() + b'"}').decode(),
    "real id, other secret": lambda app, sid: sign(app, {"_user_id": sid, "_fresh": True}, "another-secret-key-123"),
    "invented id, right secret": lambda app, sid: sign(app, {"_user_id": secrets.token_urlsafe(32), "_fresh": True}),
    "empty id, right secret": lambda app, sid: sign(app, {"_user_id": ""}),
    "integer id, right secret": lambda app, sid: sign(app, {"_user_id": 1}),
    "list id, right secret": lambda app, sid: sign(app, {"_user_id": [sid]}),
    "object id, right secret": lambda app, sid: sign(app, {"_user_id": {"id": sid}}),
    "sql in id, right secret": lambda app, sid: sign(app, {"_user_id": "x' OR '1'='1"}),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_forged_session_cookies_are_anonymous(app, forgery):
    sid = real_session_id(app, app.test_client())  # a live session exists, owned by someone else
    client = app.test_client()
    before = rows(app)
    client.set_cookie("berth_session", FORGERIES[forgery](app, sid))
    page = client.get("/repositories")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login")
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/audit").status_code == 302
    assert rows(app) == before


def test_replayed_cookie_after_logout_is_anonymous_for_pages_and_api(app, client, auth):
    auth.login("alice")
    stolen = client.get_cookie("berth_session").value
    assert client.get("/api/v1/me").status_code == 200  # the cookie works for the API while live
    assert auth.logout().status_code == 303
    thief = app.test_client()
    thief.set_cookie("berth_session", stolen)
    assert thief.get("/jobs").status_code == 302
    assert thief.get("/api/v1/me").status_code == 401
    assert thief.post("/api/v1/jobs", json={"kind": "setup"}).status_code == 401
    assert rows(app)["jobs"] == 0 and rows(app)["sessions"] == 0


# --- CSRF -----------------------------------------------------------------------------


def foreign_token(app) -> str:
    return AuthActions(app.test_client()).csrf_token()


@pytest.mark.parametrize("token", ["foreign", "missing", "empty", "garbage", "foreign-header"])
def test_login_with_a_bad_csrf_token_is_400_and_logs_nothing(app, client, token):
    client.get("/login")
    before = rows(app)
    data = {"username": "dave", "password": "dave-pw"}
    headers = {}
    if token == "foreign":
        data["csrf_token"] = foreign_token(app)
    elif token == "empty":
        data["csrf_token"] = ""
    elif token == "garbage":
        data["csrf_token"] = "x" * 5000
    elif token == "foreign-header":
        headers = {"X-CSRFToken": foreign_token(app), "HX-Request": "true"}
    response = client.post("/login", data=data, headers=headers)
    assert response.status_code == 400 and CSRF_MESSAGE in response.get_data(as_text=True)
    assert rows(app) == before and not logged_in(client)


@pytest.mark.parametrize("token", ["foreign", "missing", "garbage", "foreign-header"])
def test_logout_with_a_bad_csrf_token_is_400_and_keeps_the_session(app, client, auth, token):
    auth.login("dave")
    before = rows(app)
    other = AuthActions(app.test_client())
    other.login("olivia")
    foreign = other.csrf_token("/")
    before = rows(app)
    data, headers = {}, {}
    if token == "foreign":
        data["csrf_token"] = foreign
    elif token == "garbage":
        data["csrf_token"] = "not-a-token"
    elif token == "foreign-header":
        headers = {"X-CSRFToken": foreign, "HX-Request": "true"}
    response = client.post("/logout", data=data, headers=headers)
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and CSRF_MESSAGE in body
    if token == "foreign-header":
        assert "<html" not in body  # htmx gets the alert fragment
    assert logged_in(client) and rows(app) == before


# --- JSON bodies for jobs -------------------------------------------------------------


@pytest.fixture
def job_app(app):
    """The app with job kinds whose steps do nothing (nothing here may run them anyway)."""
    app.extensions["berth"].runner._kinds = {
        name: JobDefinition(name, lambda options: [Step("nothing", lambda ctx: None)])
        for name in ("setup", "rotate-certs")
    }
    return app


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": b'{"kind": "' + b"x" * (2 * 1024 * 1024) + b'"}', "content_type": "application/json"}, 413),
        ({"data": "null", "content_type": "application/json"}, 400),
        ({"data": '"setup"', "content_type": "application/json"}, 400),
        ({"data": "", "content_type": "application/json"}, 400),
        ({"data": "[" * 100_000 + "]" * 100_000, "content_type": "application/json"}, 400),
        ({"data": '{"kind":' * 50_000 + '"setup"' + "}" * 50_000, "content_type": "application/json"}, 400),
        ({"data": b'{"kind": "set\xffup"}', "content_type": "application/json"}, 400),
        ({"json": {"kind": {"kind": "setup"}}}, 400),
        ({"json": {"kind": ["setup"]}}, 400),
        ({"json": {"kind": None}}, 400),
        ({"json": {"kind": "setup", "confirm": None}}, 400),
        ({"json": {"kind": "setup", "confirm": {"yes": True}}}, 400),
        ({"json": {"kind": "setup\u0000"}}, 404),
        ({"json": {"kind": "<script>alert(1)</script>"}}, 404),
    ],
)
def test_job_post_with_hostile_body_changes_nothing(job_app, client, kwargs, status):
    app = job_app
    before = rows(app)
    response = client.post("/api/v1/jobs", auth=ALICE, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert set(response.get_json()) == {"error"}
    after = rows(app)
    assert after["jobs"] == before["jobs"] == 0
    assert after["audit"] == before["audit"] + 1  # alice's API login, nothing else


def test_job_form_with_markup_kind_is_an_escaped_404(job_app, client, auth):
    app = job_app
    auth.login("alice")
    token = auth.csrf_token("/jobs")
    response = client.post("/jobs", data={"kind": "<script>alert(1)</script>", "csrf_token": token})
    body = response.get_data(as_text=True)
    assert response.status_code == 404 and "&lt;script&gt;" in body and not data_script_tags(body)
    assert rows(app)["jobs"] == 0


# --- htmx headers on routes that do not expect them -----------------------------------

HX = {"HX-Request": "true"}


@pytest.mark.parametrize(
    ("method", "path", "who", "status"),
    [
        ("GET", "/login", None, 200),
        ("POST", "/login", None, 400),  # no CSRF token
        ("POST", "/logout", None, 400),
        ("GET", "/logout", None, 405),
        ("GET", "/api/v1/me", None, 401),
        ("GET", "/api/v1/me", "api", 200),
        ("GET", "/api/v1/repositories", "api", 200),
        ("GET", "/api/v1/jobs/1", "api-alice", 404),
        ("GET", "/jobs/1/status", None, 401),
        ("GET", "/jobs/1/status", "alice", 404),
        ("GET", "/ca.crt", None, 200),
        ("GET", "/healthz", None, 200),
        ("GET", "/trust", "dave", 200),
        ("GET", "/nowhere", None, 404),
        ("GET", "/repositories/centos/tags/7", "dave", 200),
    ],
)
def test_htmx_header_on_any_route_is_never_a_500(client, auth, method, path, who, status):
    if who in ("dave", "alice"):
        auth.login(who)
    credentials = {"api": DAVE, "api-alice": ALICE}.get(who)
    response = client.open(path, method=method, headers=HX, auth=credentials)
    body = response.get_data(as_text=True)
    assert response.status_code == status, (path, response.status_code, body[:300])
    no_traceback(body)
    if path.startswith("/api/"):
        assert response.is_json
    elif status >= 400:
        assert "<html" not in body  # htmx gets the alert fragment, not a page
    if status == 401 and not path.startswith("/api/"):
        assert response.headers["HX-Redirect"].startswith("/login")


# --- query-string abuse ---------------------------------------------------------------

QUERY_CASES = [
    ("/repositories?page=-1", "dave", 200),
    ("/repositories?page=0", "dave", 200),
    ("/repositories?page=999999999999999999999", "dave", 404),  # past the end: said, not the last page
    ("/repositories?page=abc", "dave", 200),
    ("/repositories?page=1e9", "dave", 200),
    ("/repositories?q=" + "a" * 10_240, "dave", 200),
    ("/repositories?q=%00%0A%3Cscript%3E", "dave", 200),
    ("/repositories/node?sort=../../etc&order=DROP", "dave", 200),
    ("/repositories/node?sort=created&order=DROP%20TABLE%20audit&page=-5", "dave", 200),
    ("/repositories/node?page=999999999999999999999&q=" + "b" * 10_240, "dave", 404),
    ("/repositories/node/tags/22?platform=%3Cscript%3Ealert(1)%3C/script%3E", "dave", 404),
    ("/repositories/node/tags/22?platform=" + "p" * 10_240, "dave", 404),
    ("/api/v1/repositories?n=0", "api", 200),
    ("/api/v1/repositories?n=-5", "api", 200),
    ("/api/v1/repositories?n=1000000000", "api", 200),
    ("/api/v1/repositories?n=99999999999999999999999", "api", 200),
    ("/api/v1/repositories?n=abc", "api", 200),
    ("/api/v1/repositories?q=" + "c" * 10_240, "api", 200),
    ("/api/v1/repositories?last=" + "%FF" * 100, "api", 200),
    ("/api/v1/repositories?last=" + "z" * 10_240, "api", 200),
    ("/api/v1/repositories/node/tags?sort=../../etc", "api", 200),
    ("/audit?before=-1", "alice", 200),
    ("/audit?before=abc", "alice", 200),
    ("/audit?before=99999999999999999999999", "alice", 200),
    ("/jobs/99999999999999999999999", "alice", 404),
    ("/jobs/99999999999999999999999/status", "alice", 404),
    ("/api/v1/jobs/99999999999999999999999", "api-alice", 404),
    ("/api/v1/jobs/-1", "api-alice", 404),
]


@pytest.mark.parametrize(("path", "who", "status"), QUERY_CASES)
def test_query_string_abuse_is_never_a_500(app, client, auth, registry_calls, path, who, status):
    credentials = {"api": DAVE, "api-alice": ALICE}.get(who)
    if credentials is None:
        auth.login(who)
    client.get(path, auth=credentials)  # warm the catalog cache: what follows is the abuse alone
    registry = app.extensions["berth"].registry
    before = registry.requests_made
    started = time.monotonic()
    response = client.get(path, auth=credentials)
    elapsed = time.monotonic() - started
    body = response.get_data(as_text=True)
    assert response.status_code == status, (path[:120], response.status_code, body[:300])
    no_traceback(body)
    assert not data_script_tags(body) and "<script>alert" not in body
    assert elapsed < 5 and registry.requests_made - before <= 1  # cached: bounded work
    assert {method for method, _ in registry_calls} <= {"GET", "HEAD"}


@pytest.mark.parametrize(("n", "expected"), [("0", 1), ("-5", 1), ("abc", None), ("1000000000", None), ("2", 2)])
def test_page_size_is_clamped(client, n, expected):
    every = client.get("/api/v1/repositories?n=10000", auth=DAVE).get_json()["repositories"]
    listing = client.get(f"/api/v1/repositories?n={n}", auth=DAVE).get_json()
    assert len(listing["repositories"]) == (expected or len(every))
    assert (listing["next"] is None) == (expected is None)


def test_page_numbers_below_one_are_the_first_and_past_the_end_a_404_that_links_back(client, auth):
    auth.login("dave")
    for page in ("-1", "0", "abc"):
        html = client.get(f"/repositories?page={page}").get_data(as_text=True)
        assert "centos" in html
    response = client.get("/repositories?page=999999999999999999999")
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and "There is no page" in html
    assert 'href="/repositories"' in html and "Last page (1)" in html


# --- header abuse ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"dave:" + b"x" * 30_000).decode(),
        "Basic " + base64.b64encode(b"d" * 30_000 + b":dave-pw").decode(),
        "Basic !!!not-base64!!!",
        "Basic ZGF2ZQ",  # bad padding
        "Basic ",
        "Basic",
        "Basic " + base64.b64encode(b"dave").decode(),  # no colon
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),  # not UTF-8
        "Basic " + base64.b64encode(b"dave\x00:dave-pw").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Bearer " + "t" * 10_000,
        "Digest username=dave",
        "x" * 20_000,
    ],
)
def test_odd_authorization_headers_are_401_json(app, client, authorization):
    before = rows(app)
    response = client.get("/api/v1/me", headers={"Authorization": authorization})
    assert response.status_code == 401 and "error" in response.get_json()
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert rows(app)["sessions"] == before["sessions"] == 0
    assert rows(app)["audit"] - before["audit"] <= 1


def get_with_host(app, client, path: str, host: str):
    """GET ``path`` with a forged ``Host``, still carrying the session cookie ``client`` holds."""
    cookie = f"berth_session={client.get_cookie('berth_session').value}"
    return app.test_client(use_cookies=False).get(path, headers={"Host": host, "Cookie": cookie})


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:443", "evil.example/phish?", 'evil.example"><script>alert(1)</script>']
)
def test_forged_host_is_never_a_500_nor_markup_on_trust(app, client, auth, host):
    auth.login("dave")
    response = get_with_host(app, client, "/trust", host)
    body = response.get_data(as_text=True)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert "curl -fsSL" in body  # logged in: the commands are shown
    no_traceback(body)
    assert not data_script_tags(body) and "<script>alert" not in body


def test_forged_host_does_not_change_the_trust_commands(settings):
    """With BERTH_PUBLIC_URL set (as stack.yml does), the commands never come from the Host header."""
    app = make_app(settings.replace(public_url="https://berth.pure.lab.com"))
    client = app.test_client()
    AuthActions(client).login("dave")
    body = get_with_host(app, client, "/trust", "evil.example").get_data(as_text=True)
    assert "evil.example" not in body and "https://berth.pure.lab.com/ca.crt" in body


def test_spoofed_forwarded_for_is_ignored_by_default(app, client, auth):
    assert app.extensions["berth"].settings.trusted_proxies == ()
    spoofed = {"X-Forwarded-For": "10.9.8.7", "X-Forwarded-Proto": "https", "X-Real-IP": "10.9.8.7"}
    token = auth.csrf_token()
    client.post("/login", data={"username": "dave", "password": "wrong", "csrf_token": token}, headers=spoofed)
    client.get("/api/v1/me", auth=("olivia", "wrong"), headers=spoofed)
    addresses = {row["address"] for row in audit_rows(app)}
    assert addresses == {"127.0.0.1"}
    response = client.get("/login", headers=spoofed)
    assert "Strict-Transport-Security" not in response.headers  # X-Forwarded-Proto is not trusted either


def test_spoofed_forwarded_for_does_not_escape_the_address_throttle(settings):
    app = make_app(settings.replace(login_address_max_failures=3, login_max_failures=100))
    client = app.test_client()
    auth = AuthActions(client)
    for number in range(3):
        headers = {"X-Forwarded-For": f"10.0.0.{number}"}
        data = {"username": f"user{number}", "password": "wrong", "csrf_token": auth.csrf_token()}
        assert client.post("/login", data=data, headers=headers).status_code == 401
    data = {"username": "dave", "password": "dave-pw", "csrf_token": auth.csrf_token()}
    response = client.post("/login", data=data, headers={"X-Forwarded-For": "10.0.0.99"})
    assert response.status_code == 429 and not logged_in(client)
    assert client.get("/api/v1/me", auth=DAVE, headers={"X-Forwarded-For": "10.0.0.98"}).status_code == 429


def test_forwarded_for_is_honoured_only_behind_a_configured_proxy(settings):
    app = make_app(settings.replace(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)))
    client = app.test_client()
    client.get("/api/v1/me", auth=("olivia", "wrong"), headers={"X-Forwarded-For": "10.9.8.7"})
    assert [row["address"] for row in audit_rows(app)] == ["10.9.8.7"]
