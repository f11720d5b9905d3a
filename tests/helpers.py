"""Helpers that tests call directly: the local stack, a test app, logging in through the form.

Fixtures built on these live in ``conftest.py``; here is only what a test imports by name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from berth.config import Settings

if TYPE_CHECKING:
    from berth.jobs.runner import JobDefinition
    from berth.jobs.store import JobRecord, JobStore

IN_CI = os.environ.get("CI", "").lower() == "true"
DEMO = {"alice": ("alice-pw", "admin"), "olivia": ("olivia-pw", "ops"), "dave": ("dave-pw", "developer")}


def need(reason: str) -> None:
    """A component the test needs is missing: fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"required component unavailable: {reason}")
    pytest.skip(reason)


@contextmanager
def running_devstack(
    tmp_path_factory,
    label: str,
    swarm: bool = False,
    directory: str = "openldap",
    nodes: int = 0,
    berth_image: bool = False,
) -> Iterator[tuple[Path, dict[str, str]]]:
    """A devstack of its own (with ``swarm``, a Docker engine in Swarm mode too): ``(state_dir, env)``.

    With ``nodes``, that many engines in namespaces of their own, one Swarm, a balancer.
    With ``berth_image`` (implies ``swarm``) Berth's image is built on that engine (``BERTH_IMAGE``).

    It is stopped on leaving, whatever happened; if it cannot start, the test fails under
    CI=true and skips elsewhere.
    """
    import devstack
    from devstack import swarm as engine

    swarm = swarm or berth_image
    if (swarm or nodes) and (reason := engine.missing_reason()):
        need(f"no Docker engine for the Swarm devstack: {reason}")
    state_dir = tmp_path_factory.mktemp(label)
    try:
        try:
            environment = devstack.up(state_dir, swarm=swarm, directory=directory, nodes=nodes, berth_image=berth_image)
        except Exception as exc:  # any failure to start is reported, not hidden
            kind = f" --nodes {nodes}" if nodes else " --swarm" if swarm else ""
            need(f"devstack{kind} --directory {directory} did not start: {exc}")
        yield state_dir, environment
    finally:
        devstack.down(state_dir)


def make_app(settings: Settings):
    """A Berth app in testing mode for ``settings``."""
    from app import create_app

    application = create_app(settings)
    application.config.update(TESTING=True)
    return application


class AuthActions:
    """Logs a test client in and out through the real login form."""

    def __init__(self, client):
        self._client = client

    def csrf_token(self, path: str = "/login") -> str:
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


def run_job(
    store: JobStore, kinds: dict[str, JobDefinition], kind: str, options: dict | None = None, show_result: bool = False
) -> JobRecord:
    """Record one job of ``kind`` and run it to its end here, as a worker would; print its figures."""
    from berth.jobs.runner import JobRunner

    store.create(kinds[kind], "alice", "127.0.0.1", options or {})
    job = JobRunner(store, lambda: kinds).run(store.claim("test"))
    extra = f"; result {job.result}" if show_result else (f" ({job.error})" if job.error else "")
    print(f"\n[figures] {kind} job: {job.status} in {job.duration_seconds:.1f} s{extra}")
    return job


def job_logs(job: JobRecord) -> str:
    """Every step of ``job`` with its status and log, for an assertion's message."""
    return "\n".join(f"[{s.name}: {s.status}]\n{s.log}" for s in job.steps)
