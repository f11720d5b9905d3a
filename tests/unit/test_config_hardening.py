"""Settings added or tightened by the hardening issue: each refuses to start in one line naming it."""

from __future__ import annotations

import ipaddress

import pytest

from berth.config import Settings
from berth.errors import SettingError
from tests.unit.test_config import env


@pytest.mark.parametrize(
    "name",
    ["BERTH_REGISTRY_URL", "BERTH_LDAP_URL", "BERTH_PUBLIC_URL", "BERTH_REGISTRY_TOKEN_REALMS"],
)
@pytest.mark.parametrize("userinfo", ["svc:Hunter2@", "svc@", ":Hunter2@"])
def test_credentials_in_a_url_setting_stop_the_start_without_showing_them(name, userinfo):
    scheme = "ldaps" if name == "BERTH_LDAP_URL" else "https"
    with pytest.raises(SettingError) as caught:
        Settings.from_env(env(**{name: f"{scheme}://{userinfo}host.example:5000"}))
    message = str(caught.value)
    assert message.startswith(name) and "\n" not in message
    assert "Hunter2" not in message and "svc" not in message


def test_plain_ldap_without_start_tls_is_refused():
    with pytest.raises(SettingError) as caught:
        Settings.from_env(env(BERTH_LDAP_START_TLS=None))
    assert str(caught.value).startswith("BERTH_LDAP_URL") and "BERTH_LDAP_ALLOW_PLAINTEXT" in str(caught.value)


def test_plain_ldap_is_accepted_when_allowed_or_encrypted():
    assert Settings.from_env(env(BERTH_LDAP_START_TLS=None, BERTH_LDAP_ALLOW_PLAINTEXT="true")).ldap_allow_plaintext
    assert Settings.from_env(env(BERTH_LDAP_START_TLS=None, BERTH_LDAP_URL="ldaps://ldap.example")).ldap_url
    assert Settings.from_env(env()).ldap_start_tls


def test_trusted_proxies_are_networks():
    settings = Settings.from_env(env(BERTH_TRUSTED_PROXIES="10.0.0.0/8, 192.168.1.7,fd00::/64"))
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.7/32"),
        ipaddress.ip_network("fd00::/64"),
    )
    assert Settings.from_env(env()).trusted_proxies == ()


@pytest.mark.parametrize("value", ["1", "2", "10.0.0.0/33", "10.0.0.1/8", "proxy.example", "10.0.0.0/8,,x"])
def test_trusted_proxies_that_are_not_cidrs_stop_the_start(value):
    with pytest.raises(SettingError) as caught:
        Settings.from_env(env(BERTH_TRUSTED_PROXIES=value))
    assert str(caught.value).startswith("BERTH_TRUSTED_PROXIES") and "\n" not in str(caught.value)


def test_token_realms_and_developer_group():
    settings = Settings.from_env(
        env(
            BERTH_REGISTRY_TOKEN_REALMS="https://auth.example/token, https://auth2.example:8443/t",
            BERTH_LDAP_DEVELOPER_GROUP="cn=developers,ou=groups,dc=pure,dc=lab,dc=com",
        )
    )
    assert settings.registry_token_realms == ("https://auth.example/token", "https://auth2.example:8443/t")
    assert settings.ldap_developer_group == "cn=developers,ou=groups,dc=pure,dc=lab,dc=com"
    assert Settings.from_env(env()).ldap_developer_group is None


def test_login_delay_settings():
    settings = Settings.from_env(env())
    assert settings.login_max_failures < 5  # delays start before an AD lockout threshold of 5
    assert settings.login_delay > 0 and settings.login_max_delay >= settings.login_delay
