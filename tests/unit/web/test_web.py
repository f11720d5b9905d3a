"""Web plumbing that needs no directory: headers, CSRF, access rules, errors, assets."""

from __future__ import annotations

import hashlib

import pytest

from berth.auth.directory import Directory
from berth.errors import InvalidCredentials
from tests.helpers import make_app

HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"


@pytest.fixture
def app(offline_settings):
    return make_app(offline_settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.mark.parametrize("path", ["/login", "/healthz", "/nope", "/", "/api/v1/me", "/static/css/berth.css"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script_or_style(client):
    page = client.get("/login").get_data(as_text=True)
    assert "<script>" not in page and "<style" not in page and " style=" not in page
    assert 'src="/static/vendor/htmx.min.js?v=' in page  # versioned by content, cached a year (assets.py)


def test_every_view_declares_access(app):
    for endpoint, view in app.view_functions.items():
        if endpoint != "static":
            assert hasattr(view, "berth_access"), f"{endpoint} declares no access rule"


def test_view_without_rule_is_refused(app, client):
    app.add_url_rule("/undeclared", "undeclared", lambda: "secret")
    assert client.get("/undeclared").status_code == 403


@pytest.mark.parametrize("path", ["/", "/repositories", "/health", "/jobs", "/audit", "/trust"])
def test_pages_redirect_anonymous_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_htmx_request_gets_hx_redirect(client):
    response = client.get("/repositories", headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"].startswith("/login")


def test_api_needs_credentials_as_json(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.get_json() == {"error": "Log in with your directory account (HTTP Basic)."}
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "Set-Cookie" not in response.headers


def test_post_without_csrf_token_is_refused(client):
    response = client.post("/login", data={"username": "alice", "password": "alice-pw"})
    assert response.status_code == 400
    assert "did not come from this Berth page" in response.get_data(as_text=True)


def test_session_cookie_flags(client):
    client.get("/login")
    cookie = client.get_cookie("berth_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert not cookie.secure
    https = client.get("/login", base_url="https://berth.example")
    assert "Secure" in https.headers["Set-Cookie"]
    assert https.headers["Strict-Transport-Security"].startswith("max-age=")


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "There is nothing at this address." in response.get_data(as_text=True)


def test_unexpected_error_is_plain_500_with_log(app, client, caplog):
    from blueprints.access import public

    app.add_url_rule("/boom", "boom", public(lambda: 1 / 0))
    response = client.get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "ZeroDivisionError" not in body
    assert "ZeroDivisionError" in caplog.text


def test_wrong_method_is_405(client):
    assert client.get("/logout").status_code == 405


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_ca_download_without_ca_is_404(client):
    assert client.get("/ca.crt").status_code == 404


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/repositories?q=x", "/repositories?q=x"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ],
)
def test_safe_next(app, target, expected):
    from blueprints.auth import safe_next

    with app.test_request_context():
        assert safe_next(target) == expected


@pytest.mark.parametrize("password", ["", "x\x00y", "p" * 2000])
def test_bad_passwords_refused_before_any_bind(password):
    # The directory URL points nowhere: reaching the network would raise DirectoryUnavailable.
    directory = Directory("ldap://127.0.0.1:9", "ou=people", "ou=groups", "cn=a", "cn=o", timeout=0.5)
    with pytest.raises(InvalidCredentials):
        directory.authenticate("alice", password)


@pytest.mark.parametrize("username", ["", "a" * 300, "al\x00ice", "tab\there"])
def test_bad_usernames_refused_before_any_bind(username):
    directory = Directory("ldap://127.0.0.1:9", "ou=people", "ou=groups", "cn=a", "cn=o", timeout=0.5)
    with pytest.raises(InvalidCredentials):
        directory.authenticate(username, "pw")


def test_vendored_htmx_matches_noted_checksum(repo_root):
    data = (repo_root / "static/vendor/htmx.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == HTMX_SHA256
    assert HTMX_SHA256 in (repo_root / "static/vendor/README.md").read_text()


def test_domain_has_no_flask_imports(repo_root):
    for module in (repo_root / "berth").rglob("*.py"):
        text = module.read_text()
        assert "import flask" not in text and "from flask" not in text, module.name


def test_alert_rules_use_exported_metrics(repo_root):
    import re

    import yaml

    rules = yaml.safe_load((repo_root / "docs/prometheus/berth-alerts.yml").read_text())
    exported = set(re.findall(r'"(berth_[a-z_]+)"', (repo_root / "berth/health/metrics.py").read_text()))
    for group in rules["groups"]:
        for rule in group["rules"]:
            used = {m.removesuffix("_bucket") for m in re.findall(r"berth_[a-z_]+", rule["expr"])}
            assert used <= exported, (rule["alert"], used - exported)
