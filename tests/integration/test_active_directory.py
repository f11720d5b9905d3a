"""Login, roles, sessions and the token server against a real Samba AD domain controller.

One AD devstack for the module (``devstack.up(directory="ad")``): Samba's LDAP ports are
fixed, so only one can run on a machine at a time.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap3 import MODIFY_REPLACE

from berth.config import Settings
from berth.errors import DirectoryMisconfigured
from tests.helpers import AuthActions, make_app, running_devstack

pytestmark = pytest.mark.stack

ROLES = {"alice": "admin", "olivia": "ops", "dave": "developer", "erin": "ops"}
INVALID = "Invalid username or password."


@pytest.fixture(scope="module")
def ad(tmp_path_factory) -> Iterator[dict[str, str]]:
    with running_devstack(tmp_path_factory, "devstack-ad", directory="ad") as (_, environment):
        yield environment


@pytest.fixture
def ad_settings(ad, tmp_path) -> Settings:
    environment = {k: v for k, v in ad.items() if k.startswith("BERTH_")}
    environment.update(BERTH_DATA_DIR=str(tmp_path / "data"), BERTH_BACKGROUND="false")
    return Settings.from_env(environment)


def client_for(settings: Settings):
    client = make_app(settings).test_client()
    return client, AuthActions(client)


def who(client) -> str | None:
    response = client.get("/")
    if response.status_code != 200:
        return None
    page = response.get_data(as_text=True)
    marker = 'title="'
    start = page.find(marker)
    return page[start + len(marker) : page.find('"', start + len(marker))] if start >= 0 else None


def admin(ad: dict[str, str]):
    from devstack.ad import admin_connection

    return admin_connection(Path(ad["BERTH_LDAP_CA"]), ad["DEVSTACK_AD_ADMIN_PASSWORD"])


@pytest.mark.parametrize("username", sorted(ROLES))
def test_roles_including_nested_groups(ad_settings, username):
    client, auth = client_for(ad_settings)
    response = auth.login(username, f"{username}-pw")
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get("/").get_data(as_text=True)
    assert f"role-{ROLES[username]}" in page


@pytest.mark.parametrize("typed", ["LAB\\dave", "lab\\dave", "dave@lab.test", "DAVE", "Dave@LAB.TEST"])
def test_windows_login_forms_are_one_account(ad_settings, typed):
    client, auth = client_for(ad_settings)
    assert auth.login(typed, "dave-pw").status_code == 303
    assert who(client) == "dave"


def test_other_domain_refused(ad_settings):
    client, auth = client_for(ad_settings)
    response = auth.login("OTHER\\dave", "dave-pw")
    assert response.status_code == 401 and INVALID in response.get_data(as_text=True)


def test_session_survives_rechecks_and_names_the_user(ad_settings):
    client, auth = client_for(ad_settings.replace(session_recheck=1))
    assert auth.login("LAB\\olivia", "olivia-pw").status_code == 303
    for _ in range(3):
        time.sleep(1.2)
        page = client.get("/").get_data(as_text=True)
        assert 'title="olivia"' in page and "role-ops" in page
    assert "CN=" not in page


def test_disabled_in_ad_ends_the_session(ad, ad_settings):
    conn = admin(ad)
    dn = "CN=Temp Worker,CN=Users,DC=lab,DC=test"
    conn.delete(dn)
    conn.add(
        dn,
        ["top", "person", "organizationalPerson", "user"],
        {"sAMAccountName": "temp", "unicodePwd": '"temp-pw"'.encode("utf-16-le"), "userAccountControl": "512"},
    )
    try:
        client, auth = client_for(ad_settings.replace(session_recheck=1))
        assert auth.login("temp", "temp-pw").status_code == 303
        conn.modify(dn, {"userAccountControl": [(MODIFY_REPLACE, ["514"])]})
        time.sleep(1.2)
        assert client.get("/").status_code != 200
    finally:
        conn.delete(dn)
        conn.unbind()


@pytest.mark.parametrize(
    ("username", "says"),
    [
        ("disabled", "account is disabled"),
        ("mustchange", "password must be changed"),
        ("expired", "account has expired"),
        ("locked", "account is locked"),
    ],
)
def test_ad_reasons_have_their_own_messages(ad_settings, username, says):
    client, auth = client_for(ad_settings)
    response = auth.login(username, f"{username}-pw")
    assert response.status_code == 403
    assert says in response.get_data(as_text=True)
    api = client.get("/api/v1/repositories", headers=basic(username, f"{username}-pw"))
    assert api.status_code == 403 and says in api.get_json()["error"]


def test_disabled_with_a_wrong_password_says_nothing_more(ad_settings):
    _, auth = client_for(ad_settings)
    response = auth.login("disabled", "wrong")
    assert response.status_code == 401 and INVALID in response.get_data(as_text=True)


def bad_password_count(ad: dict[str, str], name: str) -> int:
    conn = admin(ad)
    conn.search("DC=lab,DC=test", f"(sAMAccountName={name})", attributes=["badPwdCount", "lockoutTime"])
    entry = conn.response[0]["attributes"]
    conn.unbind()
    return int((entry.get("badPwdCount") or ["0"])[0])


def test_ten_wrong_passwords_do_not_lock_the_ad_account(ad, ad_settings):
    """Berth's own delay starts after 3 failures, well before AD's lockout at 5."""
    settings = ad_settings.replace(login_max_failures=3, login_delay=4.0, login_max_delay=4.0)
    _, auth = client_for(settings)
    statuses = [auth.login("dave", "wrong").status_code for _ in range(10)]
    assert statuses == [401] * 3 + [429] * 7
    assert bad_password_count(ad, "dave") == 3
    time.sleep(4.1)
    assert auth.login("dave", "dave-pw").status_code == 303
    assert bad_password_count(ad, "dave") == 0


def test_berth_stops_one_short_of_ads_lockout(ad, ad_settings):
    """Even waiting out Berth's own delays, the fifth wrong password never reaches AD."""
    settings = ad_settings.replace(login_max_failures=10, login_address_max_failures=100)
    _, auth = client_for(settings)
    statuses = [auth.login("olivia", "wrong").status_code for _ in range(6)]
    assert statuses[:4] == [401] * 4 and statuses[4:] == [429, 429]
    assert bad_password_count(ad, "olivia") == 4  # not locked: Windows logins still work
    conn = admin(ad)  # the owner logs in elsewhere, which resets AD's count
    from ldap3 import Connection

    own = Connection(conn.server, "olivia@lab.test", "olivia-pw")
    assert own.bind()
    own.unbind()
    conn.unbind()
    assert auth.login("olivia", "olivia-pw").status_code == 303


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": "application/json"}


def test_token_server_names_the_ad_user(ad_settings):
    settings = ad_settings.replace(public_url="https://berth.example", registry_service="registry.example")
    client = make_app(settings).test_client()
    response = client.get(
        "/auth/token",
        query_string={"service": "registry.example", "scope": "repository:dave/app:pull,push"},
        headers=basic("LAB\\dave", "dave-pw"),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    payload = response.get_json()["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == "dave"
    assert claims["access"][0]["actions"] == ["pull", "push"]


def test_api_names_the_user_not_the_dn(ad_settings):
    client = make_app(ad_settings).test_client()
    response = client.get("/api/v1/me", headers=basic("dave@lab.test", "dave-pw"))
    assert response.get_json()["username"] == "dave"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"ldap_url": "ldaps://[::1]:636"}, "does not name the host"),
        ({"ldap_ca": None}, "not signed by a CA Berth trusts"),
        ({"ldap_url": "ldap://127.0.0.1:389", "ldap_allow_plaintext": True}, "requires TLS"),
        ({"ldap_bind_dn": None, "ldap_bind_password": None}, "refuses anonymous search"),
        ({"ldap_bind_password": "wrong"}, "BERTH_LDAP_BIND_PASSWORD"),
    ],
)
def test_configuration_errors_say_what_is_wrong(ad_settings, changes, says):
    settings = ad_settings.replace(**changes)
    client, auth = client_for(settings)
    response = auth.login("dave", "dave-pw")
    assert response.status_code == 503
    assert "directory settings are wrong" in response.get_data(as_text=True)
    with pytest.raises(DirectoryMisconfigured) as caught:
        make_app(settings).extensions["berth"].directory.check()
    assert says in caught.value.detail


def test_starttls_and_a_dead_first_server(ad, ad_settings):
    url = f"ldaps://127.0.0.1:9,{ad['DEVSTACK_AD_STARTTLS_URL']}"
    settings = ad_settings.replace(ldap_url=url, ldap_start_tls=True, ldap_timeout=1.0)
    client, auth = client_for(settings)
    assert auth.login("erin", "erin-pw").status_code == 303
    assert who(client) == "erin"


def test_a_second_ad_devstack_is_refused_while_one_runs(ad, tmp_path):
    import devstack

    with pytest.raises(devstack.StackError, match="another AD devstack runs"):
        devstack.up(tmp_path / "second", directory="ad")
    devstack.down(tmp_path / "second")
