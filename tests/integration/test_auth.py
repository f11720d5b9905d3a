"""Login, roles, throttling and sessions against the real slapd that devstack starts."""

from __future__ import annotations

import socket
import time

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, Connection, Server

from tests.helpers import DEMO, make_app

pytestmark = pytest.mark.stack

INVALID = "Invalid username or password."


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logged_in(client) -> bool:
    return client.get("/").status_code == 200


@pytest.mark.parametrize("username", sorted(DEMO))
def test_demo_accounts_log_in_with_their_role(client, auth, username):
    response = auth.login(username)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert f"role-{DEMO[username][1]}" in page
    assert "Log out" in page


def test_login_is_case_insensitive_and_canonical(client, auth):
    auth.login("ALICE", "alice-pw")
    assert 'title="alice"' in client.get("/").get_data(as_text=True)


def test_login_redirects_to_safe_next(client, auth):
    response = auth.login("dave", next="/repositories")
    assert response.headers["Location"] == "/repositories"
    client.post("/logout", data={"csrf_token": auth.csrf_token("/")})
    response = auth.login("dave", next="https://evil.example/")
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("alice", "wrong"),
        ("alice", ""),
        ("nobody", "alice-pw"),
        ("*", "alice-pw"),
        ("alice)(uid=*", "alice-pw"),
        ("*)(|(uid=*", "x"),
        ("a" * 300, "pw"),
        ("al\x00ice", "alice-pw"),
        ("alice", "alice-pw\x00"),
        ("alice", "p" * 10_000),
        ("twin", "twin-pw"),
        ("dave\\2a", "dave-pw"),
    ],
)
def test_bad_logins_are_refused_without_session(client, auth, username, password):
    response = auth.login(username, password)
    assert response.status_code == 401
    assert INVALID in response.get_data(as_text=True)
    assert not logged_in(client)


def test_directory_down_is_told_apart(stack, settings, tmp_path):
    client = make_app(settings.replace(ldap_url=f"ldap://127.0.0.1:{closed_port()}", ldap_timeout=1.0)).test_client()
    response = _login(client, "alice", "alice-pw")
    assert response.status_code == 503
    assert "Directory unreachable" in response.get_data(as_text=True)
    response = _login(client, "alice", "wrong")
    assert "Directory unreachable" in response.get_data(as_text=True)  # nothing said about the password


def test_service_account_refused_is_directory_problem(settings):
    client = make_app(settings.replace(ldap_bind_password="not-the-password")).test_client()
    response = _login(client, "alice", "alice-pw")
    assert response.status_code == 503
    # a wrong service password is a setting to fix, not an outage (issue 17)
    assert "directory settings are wrong" in response.get_data(as_text=True)


def test_start_tls_with_ca(settings):
    client = make_app(settings.replace(ldap_start_tls=True)).test_client()
    assert _login(client, "olivia", "olivia-pw").status_code == 303


def test_ldaps_with_ca(stack, settings):
    client = make_app(settings.replace(ldap_url=stack["DEVSTACK_LDAPS_URL"])).test_client()
    assert _login(client, "olivia", "olivia-pw").status_code == 303


def test_ldaps_without_trusting_the_ca_fails_closed(stack, settings):
    client = make_app(settings.replace(ldap_url=stack["DEVSTACK_LDAPS_URL"], ldap_ca=None)).test_client()
    response = _login(client, "olivia", "olivia-pw")
    assert response.status_code == 503


def test_throttling_kicks_in_and_lets_go(settings):
    client = make_app(settings.replace(login_max_failures=3, login_window=2)).test_client()
    for _ in range(3):
        assert _login(client, "dave", "wrong").status_code == 401
    response = _login(client, "dave", "dave-pw")
    assert response.status_code == 429
    assert "Too many failed logins" in response.get_data(as_text=True)
    time.sleep(2.2)
    assert _login(client, "dave", "dave-pw").status_code == 303


def test_throttling_applies_to_api_basic_auth(settings):
    client = make_app(settings.replace(login_max_failures=2)).test_client()
    for _ in range(2):
        assert client.get("/api/v1/me", auth=("olivia", "nope")).status_code == 401
    response = client.get("/api/v1/me", auth=("olivia", "olivia-pw"))
    assert response.status_code == 429 and "Too many" in response.get_json()["error"]
    assert response.headers["Retry-After"].isdigit()


@pytest.mark.parametrize("username", sorted(DEMO))
def test_api_basic_auth(client, username):
    response = client.get("/api/v1/me", auth=(username, DEMO[username][0]))
    assert response.status_code == 200
    assert response.get_json()["role"] == DEMO[username][1]
    assert "Set-Cookie" not in response.headers


def test_api_wrong_password_is_json_401(client):
    response = client.get("/api/v1/me", auth=("alice", "wrong"))
    assert response.status_code == 401 and response.get_json() == {"error": INVALID}


ROUTES = [
    ("/", "developer"),
    ("/repositories", "developer"),
    ("/repositories/centos", "developer"),
    ("/repositories/team/app/api", "developer"),
    ("/repositories/centos/tags/7", "developer"),
    ("/trust", "developer"),
    ("/health", "ops"),
    ("/jobs", "admin"),
    ("/audit", "admin"),
    ("/api/v1/me", "developer"),
]
RANK = {"developer": 1, "ops": 2, "admin": 3}


@pytest.mark.parametrize("username", sorted(DEMO))
def test_every_route_for_every_role(client, auth, username):
    auth.login(username)
    for path, needed in ROUTES:
        response = client.get(path)
        allowed = RANK[DEMO[username][1]] >= RANK[needed]
        assert response.status_code == (200 if allowed else 403), (username, path, response.status_code)
        assert "Content-Security-Policy" in response.headers
        if not allowed and not path.startswith("/api/"):
            assert f"needs the {needed} role" in response.get_data(as_text=True)


def test_forbidden_api_answer_is_json(app, client, auth, monkeypatch):
    from berth.roles import Role

    # monkeypatch: the view function is shared by every app, so the change must not outlive this test
    monkeypatch.setattr(app.view_functions["api.me"], "berth_access", Role.OPS)
    response = client.get("/api/v1/me", auth=("dave", "dave-pw"))
    assert response.status_code == 403 and "needs the ops role" in response.get_json()["error"]


def test_navigation_fits_the_role(client, auth):
    auth.login("dave")
    page = client.get("/").get_data(as_text=True)
    assert 'href="/repositories"' in page and 'href="/health"' not in page and 'href="/jobs"' not in page
    auth.logout()
    auth.login("alice")
    page = client.get("/").get_data(as_text=True)
    assert 'href="/health"' in page and 'href="/jobs"' in page and 'href="/audit"' in page


def test_logout_is_post_and_ends_the_session_for_replayed_cookies(client, auth):
    auth.login("alice")
    stolen = client.get_cookie("berth_session").value
    assert client.post("/logout").status_code == 400  # no CSRF token
    assert logged_in(client)
    response = auth.logout()
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    client.set_cookie("berth_session", stolen)
    assert not logged_in(client)


def test_forged_cookie_is_ignored(client):
    client.set_cookie("berth_session", "eyJfdXNlcl9pZCI6ImFkbWluIn0.forged.signature")
    assert not logged_in(client)


def test_csrf_token_from_another_session_is_refused(app, auth):
    other = app.test_client()
    foreign_token = type(auth)(other).csrf_token()
    client = app.test_client()
    client.get("/login")
    response = client.post("/login", data={"username": "dave", "password": "dave-pw", "csrf_token": foreign_token})
    assert response.status_code == 400


def test_removed_member_loses_the_role(stack, settings):
    client = make_app(settings.replace(session_recheck=1)).test_client()
    assert _login(client, "olivia", "olivia-pw").status_code == 303
    assert client.get("/health").status_code == 200
    group = settings.ldap_ops_group
    olivia = f"uid=olivia,{settings.ldap_user_base}"
    with _root(stack) as root:
        assert root.modify(group, {"uniqueMember": [(MODIFY_DELETE, [olivia])]}), root.result
        try:
            time.sleep(1.1)
            assert client.get("/health").status_code == 403
            assert "role-developer" in client.get("/").get_data(as_text=True)
        finally:
            root.modify(group, {"uniqueMember": [(MODIFY_ADD, [olivia])]})


def test_audit_page_lists_logins(client, auth):
    auth.login("dave", "wrong")
    auth.login("alice")
    page = client.get("/audit").get_data(as_text=True)
    assert "dave" in page and "failure" in page and "success" in page and "127.0.0.1" in page


def _login(client, username, password):
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def _root(stack):
    server = Server(stack["BERTH_LDAP_URL"])
    return Connection(server, stack["DEVSTACK_LDAP_ROOT_DN"], stack["DEVSTACK_LDAP_ROOT_PASSWORD"], auto_bind=True)


@pytest.mark.parametrize(("nested", "role"), [(False, "developer"), (True, "ops")])
def test_nested_groups_by_walking_the_directory(settings, nested, role):
    """erin is in platform-team, which is in registry-ops; OpenLDAP has no in-chain rule."""
    client = make_app(settings.replace(ldap_nested_groups=nested)).test_client()
    assert _login(client, "erin", "erin-pw").status_code == 303
    assert f"role-{role}" in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("ldaps", [False, True])
def test_directory_connections_send_without_delay(stack, settings, ldaps):
    """TCP_NODELAY on StartTLS and ldaps:// connections: a bind is not held back by Nagle (40 ms each)."""
    import socket

    from berth.auth.connection import Servers

    url = stack["DEVSTACK_LDAPS_URL"] if ldaps else settings.ldap_url
    servers = Servers([url], start_tls=not ldaps, ca_file=settings.ldap_ca, timeout=5.0)
    conn, _ = servers.open(settings.ldap_bind_dn, settings.ldap_bind_password)
    try:
        assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert conn.bind()
    finally:
        conn.unbind()
