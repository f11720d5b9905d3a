"""Web hardening that needs no directory: cookie name and flags, database file modes, API CSRF."""

from __future__ import annotations

import os
import stat

import pytest
from itsdangerous import URLSafeTimedSerializer

from berth.db import Database
from berth.jobs.runner import JobDefinition, Step
from berth.roles import Role
from tests.helpers import make_app


def test_secure_cookies_use_the_host_prefix(offline_settings):
    client = make_app(offline_settings.replace(secure_cookies=True)).test_client()
    header = client.get("/login", base_url="https://berth.example").headers["Set-Cookie"]
    assert header.startswith("__Host-berth_session=")
    assert "Secure" in header and "Path=/" in header and "Domain" not in header


def test_plain_cookies_keep_their_name(offline_settings):
    client = make_app(offline_settings).test_client()
    assert client.get("/login").headers["Set-Cookie"].startswith("berth_session=")


def test_database_files_are_private(tmp_path):
    old = os.umask(0o022)
    try:
        db = Database(tmp_path / "data" / "berth.sqlite3")
        with db.connect() as conn:
            conn.execute("INSERT INTO audit (at, action, outcome, username, address) VALUES (0, 'a', 'b', 'c', 'd')")
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "data").iterdir()}
    finally:
        os.umask(old)
    assert {"berth.sqlite3", "berth.sqlite3-wal", "berth.sqlite3-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def test_an_existing_database_is_made_private(tmp_path):
    path = tmp_path / "berth.sqlite3"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    Database(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- CSRF on cookie-authenticated API writes -------------------------------------------


@pytest.fixture
def admin(offline_settings):
    """An app whose jobs do nothing, and a client holding an admin's session cookie and CSRF token."""
    app = make_app(offline_settings)
    svc = app.extensions["berth"]
    svc.runner._kinds = {"setup": JobDefinition("setup", lambda options: [Step("nothing", lambda ctx: None)])}
    record = svc.sessions.create("alice", "uid=alice", "Alice", Role.ADMIN, "127.0.0.1")
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = record.id
        session["_fresh"] = True
        session["csrf_token"] = "raw-csrf-secret"
    token = URLSafeTimedSerializer(offline_settings.secret_key, salt="wtf-csrf-token").dumps("raw-csrf-secret")
    return app, client, token


def jobs(app) -> int:
    with app.extensions["berth"].db.connect() as conn:
        return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "https://evil.example", "X-CSRFToken": "TOKEN"},
        {"Origin": "http://localhost", "X-CSRFToken": "garbage"},
        {"Origin": "http://localhost"},
        {"X-CSRFToken": "TOKEN"},  # neither Origin nor Sec-Fetch-Site
        {"Sec-Fetch-Site": "cross-site", "X-CSRFToken": "TOKEN"},
        {"Origin": "null", "X-CSRFToken": "TOKEN"},
    ],
)
def test_cookie_api_writes_need_token_and_same_origin(admin, headers):
    app, client, token = admin
    headers = {k: v.replace("TOKEN", token) for k, v in headers.items()}
    response = client.post("/api/v1/jobs", json={"kind": "setup"}, headers=headers)
    assert response.status_code in (400, 403), response.get_data(as_text=True)
    assert "error" in response.get_json()
    assert jobs(app) == 0


@pytest.mark.parametrize("origin", [{"Origin": "http://localhost"}, {"Sec-Fetch-Site": "same-origin"}])
def test_cookie_api_write_from_the_page_itself_works(admin, origin):
    app, client, token = admin
    response = client.post("/api/v1/jobs", json={"kind": "setup"}, headers={**origin, "X-CSRFToken": token})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert jobs(app) == 1
