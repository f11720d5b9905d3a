"""Fixtures shared by every test: the real local stack, settings, app, client, auth.

The stack (slapd and the TLS registry) is started once per test session by devstack.
When it cannot start, tests that need it skip locally and fail under CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from berth.config import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
DEMO = {"alice": ("alice-pw", "admin"), "olivia": ("olivia-pw", "ops"), "dave": ("dave-pw", "developer")}


def need(reason: str) -> None:
    """A component the test needs is missing: fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required component unavailable: {reason}")
    pytest.skip(reason)


@contextmanager
def running_devstack(tmp_path_factory, label: str, swarm: bool = False) -> Iterator[tuple[Path, dict[str, str]]]:
    """A devstack of its own (with ``swarm``, a Docker engine in Swarm mode too): ``(state_dir, env)``.

    It is stopped on leaving, whatever happened; if it cannot start, the test fails under
    CI=true and skips elsewhere.
    """
    import devstack
    from devstack import swarm as engine

    if swarm and (reason := engine.missing_reason()):
        need(f"no Docker engine for the Swarm devstack: {reason}")
    state_dir = tmp_path_factory.mktemp(label)
    try:
        try:
            environment = devstack.up(state_dir, swarm=swarm)
        except Exception as exc:  # any failure to start is reported, not hidden
            need(f"devstack{' --swarm' if swarm else ''} did not start: {exc}")
        yield state_dir, environment
    finally:
        devstack.down(state_dir)


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


def make_app(settings: Settings):
    """A Berth app in testing mode for ``settings``."""
    from app import create_app

    application = create_app(settings)
    application.config.update(TESTING=True)
    return application


@pytest.fixture
def app(settings):
    return make_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


class AuthActions:
    """Logs a test client in and out through the real login form."""

    def __init__(self, client):
        self._client = client

    def csrf_token(self, path: str = "/login") -> str:
        import re

        page = self._client.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, username: str = "dave", password: str | None = None, **extra):
        password = DEMO[username][0] if password is None and username in DEMO else password
        data = {"username": username, "password": password or "", "csrf_token": self.csrf_token(), **extra}
        return self._client.post("/login", data=data)

    def logout(self):
        token = self.csrf_token("/")
        return self._client.post("/logout", data={"csrf_token": token})


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
