"""Login hardening against the real slapd: one count per directory entry, equal work for
unknown names, sessions ended on a new login, the optional developer group."""

from __future__ import annotations

import pytest

from berth.auth.directory import Directory
from tests.helpers import AuthActions, make_app

pytestmark = pytest.mark.stack


def login(client, username, password):
    return AuthActions(client).login(username, password)


@pytest.mark.parametrize("variants", [("dave ", "DAVE", "\uff44\uff41\uff56\uff45"), (" Dave", "dAvE", "dave")])
def test_spellings_of_one_account_share_one_count(settings, variants):
    """The directory finds dave for each spelling, so each failure counts against dave."""
    app = make_app(settings.replace(login_max_failures=3, login_delay=60))
    client = app.test_client()
    for name in variants:
        assert login(client, name, "wrong").status_code == 401
    response = login(client, "dave", "dave-pw")
    assert response.status_code == 429 and "Too many failed logins" in response.get_data(as_text=True)


def test_unknown_names_cost_a_bind_like_known_ones(settings, monkeypatch):
    binds = []
    real = Directory._bind_as

    def spy(self, url, dn, password):
        binds.append(dn)
        return real(self, url, dn, password)

    monkeypatch.setattr(Directory, "_bind_as", spy)
    client = make_app(settings).test_client()
    assert login(client, "nobody", "some-password").status_code == 401
    assert login(client, "twin", "twin-pw").status_code == 401  # two entries: refused, same work
    assert login(client, "dave", "wrong").status_code == 401
    assert len(binds) == 3
    assert "nobody" not in binds[0] and binds[0] == binds[1]


def test_logging_in_again_ends_the_previous_session(settings):
    app = make_app(settings)
    client = app.test_client()
    auth = AuthActions(client)
    auth.login("dave")
    first = client.get_cookie("berth_session").value
    token = auth.csrf_token("/")
    response = client.post("/login", data={"username": "alice", "password": "alice-pw", "csrf_token": token})
    assert response.status_code == 303
    assert client.get_cookie("berth_session").value != first
    replay = app.test_client()
    replay.set_cookie("berth_session", first)
    assert replay.get("/").status_code == 302  # the first session is over
    with app.extensions["berth"].db.connect() as conn:
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1


def test_developer_group_limits_who_may_log_in(settings):
    group = settings.ldap_ops_group  # olivia and alice are members; dave is not
    app = make_app(settings.replace(ldap_developer_group=group, ldap_admin_group="cn=nobody,dc=x"))
    client = app.test_client()
    response = login(client, "dave", "dave-pw")
    assert response.status_code == 403 and "not allowed to use Berth" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    assert app.test_client().get("/api/v1/me", auth=("dave", "dave-pw")).status_code == 403
    assert login(app.test_client(), "olivia", "olivia-pw").status_code == 303
    assert login(app.test_client(), "alice", "alice-pw").status_code == 303  # admin/ops always may


def test_without_developer_group_any_account_logs_in(settings):
    assert settings.ldap_developer_group is None
    assert login(make_app(settings).test_client(), "mallory", "mallory-pw").status_code == 303
