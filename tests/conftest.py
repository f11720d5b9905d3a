"""Fixtures shared by every test: the real local stack, settings, app, client, auth.

What tests call directly (``need``, ``running_devstack``, ``make_app``, ``AuthActions``)
lives in :mod:`tests.helpers`.

The stack (slapd and the TLS registry) is started once per test session by devstack.
When it cannot start, tests that need it skip locally and fail under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from berth.config import Settings
from tests.helpers import AuthActions, make_app, running_devstack


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[dict[str, str]]:
    """The running devstack's environment (BERTH_* and DEVSTACK_* variables)."""
    with running_devstack(tmp_path_factory, "devstack") as (_, environment):
        yield environment


@pytest.fixture
def settings(stack, tmp_path) -> Settings:
    """Settings for the devstack, with a fresh data directory per test."""
    environment = {k: v for k, v in stack.items() if k.startswith(("BERTH_", "DOCKER_"))}
    environment["BERTH_DATA_DIR"] = str(tmp_path / "data")
    environment["BERTH_BACKGROUND"] = "false"  # no probe or job threads per test app: tests drive them
    return Settings.from_env(environment)


@pytest.fixture
def offline_settings(tmp_path) -> Settings:
    """Settings that need no running stack (the directory points at a closed port)."""
    return Settings(
        secret_key="test-secret-key-0123456789",
        ldap_url="ldap://127.0.0.1:9",
        ldap_user_base="ou=people,dc=pure,dc=lab,dc=com",
        ldap_group_base="ou=groups,dc=pure,dc=lab,dc=com",
        ldap_admin_group="cn=registry-admins,ou=groups,dc=pure,dc=lab,dc=com",
        ldap_ops_group="cn=registry-ops,ou=groups,dc=pure,dc=lab,dc=com",
        ldap_timeout=1.0,
        data_dir=tmp_path / "data",
        background=False,
    )


@pytest.fixture
def app(settings):
    return make_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
