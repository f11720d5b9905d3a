"""Settings: required names, secrets from files, validation messages that name the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from berth.config import Settings
from berth.errors import SettingError

BASE = {
    "BERTH_SECRET_KEY": "0123456789abcdef0123",
    "BERTH_LDAP_URL": "ldap://127.0.0.1:389",
    "BERTH_LDAP_START_TLS": "true",
    "BERTH_LDAP_USER_BASE": "ou=people,dc=pure,dc=lab,dc=com",
    "BERTH_LDAP_GROUP_BASE": "ou=groups,dc=pure,dc=lab,dc=com",
    "BERTH_LDAP_ADMIN_GROUP": "cn=registry-admins,ou=groups,dc=pure,dc=lab,dc=com",
    "BERTH_LDAP_OPS_GROUP": "cn=registry-ops,ou=groups,dc=pure,dc=lab,dc=com",
}


def env(**changes):
    merged = {**BASE, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def test_defaults(tmp_path):
    settings = Settings.from_env(env(BERTH_DATA_DIR=str(tmp_path)))
    assert settings.registry_url == "https://127.0.0.1:5000"
    assert settings.ldap_user_filter == "(uid={username})"
    assert settings.nfs_path.as_posix() == "/var/lib/registry"
    assert settings.swarm_service == "registry"
    assert settings.registry_image == "registry:2"
    assert settings.cert_days == 90
    assert settings.ca_dir == tmp_path / "ca"
    assert settings.registry_hostnames == ("127.0.0.1",)
    assert settings.registry_host == "127.0.0.1:5000"


@pytest.mark.parametrize(
    "name",
    [
        "BERTH_LDAP_URL",
        "BERTH_LDAP_USER_BASE",
        "BERTH_LDAP_GROUP_BASE",
        "BERTH_LDAP_ADMIN_GROUP",
        "BERTH_LDAP_OPS_GROUP",
        "BERTH_SECRET_KEY",
    ],
)
def test_missing_required_setting_is_named(name):
    with pytest.raises(SettingError) as caught:
        Settings.from_env(env(**{name: None}))
    assert str(caught.value).startswith(name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BERTH_LDAP_URL", "http://ldap.example"),
        ("BERTH_REGISTRY_URL", "ftp://registry"),
        ("BERTH_REGISTRY_URL", "https://host:notaport"),
        ("BERTH_CERT_DAYS", "ninety"),
        ("BERTH_CERT_DAYS", "-1"),
        ("BERTH_LDAP_START_TLS", "maybe"),
        ("BERTH_LDAP_USER_FILTER", "(uid=alice)"),
        ("BERTH_REGISTRY_CA", "/nonexistent/ca.crt"),
        ("BERTH_SECRET_KEY", "short"),
    ],
)
def test_malformed_setting_is_named(name, value):
    with pytest.raises(SettingError) as caught:
        Settings.from_env(env(**{name: value}))
    assert str(caught.value).startswith(name)


def test_secret_from_file_strips_newline(tmp_path):
    secret = tmp_path / "bind"
    secret.write_text("s3cret\n")
    settings = Settings.from_env(env(BERTH_LDAP_BIND_PASSWORD_FILE=str(secret)))
    assert settings.ldap_bind_password == "s3cret"


def test_secret_and_file_both_set_is_an_error(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("x" * 32)
    with pytest.raises(SettingError, match="BERTH_SECRET_KEY"):
        Settings.from_env(env(BERTH_SECRET_KEY_FILE=str(secret)))


def test_unreadable_secret_file_is_named():
    with pytest.raises(SettingError, match="BERTH_LDAP_BIND_PASSWORD_FILE"):
        Settings.from_env(env(BERTH_LDAP_BIND_PASSWORD_FILE="/nonexistent/secret"))


def test_repr_masks_secrets():
    settings = Settings.from_env(env(BERTH_LDAP_BIND_PASSWORD="bind-pw-value", BERTH_REGISTRY_PASSWORD="reg-pw"))
    text = repr(settings)
    assert "bind-pw-value" not in text and "reg-pw" not in text and BASE["BERTH_SECRET_KEY"] not in text
    assert "***" in text


def test_debug_allows_missing_secret_key():
    settings = Settings.from_env(env(BERTH_SECRET_KEY=None, BERTH_DEBUG="1"))
    assert len(settings.secret_key) >= 32


def test_start_without_setting_prints_one_line(repo_root):
    """`gunicorn app:app` / `flask --app app` with a missing setting: one line, no traceback."""
    environment = {"PATH": "/usr/bin:/bin", **env(BERTH_LDAP_URL=None)}
    result = subprocess.run(
        [sys.executable, "-c", "import app; app.app"],
        cwd=repo_root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "berth: cannot start: BERTH_LDAP_URL: is required"


def test_token_server_settings(tmp_path):
    """BERTH_ACCESS_RULES must be a file; the service defaults to the registry's HOST:PORT."""
    base = {
        "BERTH_SECRET_KEY": "x" * 32,
        "BERTH_LDAP_URL": "ldaps://127.0.0.1:636",
        "BERTH_LDAP_USER_BASE": "ou=people,dc=x",
        "BERTH_LDAP_GROUP_BASE": "ou=groups,dc=x",
        "BERTH_LDAP_ADMIN_GROUP": "cn=a,ou=groups,dc=x",
        "BERTH_LDAP_OPS_GROUP": "cn=o,ou=groups,dc=x",
        "BERTH_REGISTRY_URL": "https://registry.example:5000",
        "BERTH_DATA_DIR": str(tmp_path),
    }
    settings = Settings.from_env(base)
    assert (settings.registry_service, settings.anonymous_pull, settings.access_rules) == (
        "registry.example:5000",
        False,
        None,
    )
    rules = tmp_path / "rules.yml"
    rules.write_text("- {actions: [pull]}\n")
    settings = Settings.from_env(
        {**base, "BERTH_ACCESS_RULES": str(rules), "BERTH_ANONYMOUS_PULL": "true", "BERTH_REGISTRY_SERVICE": "reg"}
    )
    assert (settings.registry_service, settings.anonymous_pull, settings.access_rules) == ("reg", True, rules)
    with pytest.raises(SettingError, match="BERTH_ACCESS_RULES"):
        Settings.from_env({**base, "BERTH_ACCESS_RULES": str(tmp_path / "missing.yml")})
