"""Faults while clients browse: Berth under gunicorn on the real stack (Swarm), components failing.

Each fault: no 500, no hung worker (every request answers within a bound), a clear
message where it matters, recovery without restarting Berth once the component is
back, and no job record lost.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import requests

from devstack.berth import BerthServer, BerthStartError
from devstack.hung_mount import HungMount
from tests.helpers import IN_CI, running_devstack

pytestmark = [pytest.mark.stack, pytest.mark.swarm]

ROOT = Path(__file__).resolve().parents[2]
REQUEST_BOUND = 10.0  # seconds: longer than this counts as a hung worker


@pytest.fixture(scope="module")
def swarm_stack(tmp_path_factory):
    with running_devstack(tmp_path_factory, "faults-stack", swarm=True) as (_, env):
        yield env


def record_finished_job(data: Path) -> int:
    """A finished job written into Berth's database before Berth starts.

    Before, not after: a job recorded while Berth runs is queued for an instant, and
    Berth's runner would claim it and run a real rotation.
    """
    from berth.audit import AuditLog
    from berth.db import Database
    from berth.jobs.runner import JobDefinition, Step
    from berth.jobs.store import JobStore

    db = Database(data / "berth.sqlite3")
    store = JobStore(db, AuditLog(db))
    kind = JobDefinition("rotate-certs", lambda options: [Step("issue", lambda ctx: None)])
    job = store.create(kind, "alice", "127.0.0.1")
    store.claim("test", job.id)
    store.step_finished(job.id, 0, "succeeded")
    store.finish(job.id, "succeeded", None, {"new_fingerprint": "AA:BB"})
    return job.id


@pytest.fixture(scope="module")
def berth(swarm_stack, tmp_path_factory):
    """gunicorn as the README deploys it, against the Swarm stack."""
    data = tmp_path_factory.mktemp("faults-data")
    job_id = record_finished_job(data)
    settings = {**swarm_stack, "BERTH_HEALTH_INTERVAL": "1", "BERTH_NFS_DEADLINE": "1", "BERTH_CACHE_TTL": "1"}
    server = BerthServer(settings, data, data.parent / "faults-gunicorn.log", clean_env=True)
    try:
        server.start(fresh=False)  # keep the job recorded above
    except BerthStartError as exc:
        server.stop()
        pytest.fail(f"gunicorn did not start: {exc}\n{server.log_tail()}")
    yield {"base": server.base_url, "data": data, "proc": server, "env": server.env, "job_id": job_id}
    server.stop()
    if not IN_CI:
        print(server.log_tail(2000))


def login(base: str, username: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    page = session.get(f"{base}/login", timeout=REQUEST_BOUND).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = session.post(
        f"{base}/login",
        data={"username": username, "password": f"{username}-pw", "csrf_token": token},
        timeout=REQUEST_BOUND,
        allow_redirects=False,
    )
    assert response.status_code == 303, response.text[:300]
    return session


class Browsing:
    """Clients browsing in the background, recording every status and the slowest answer."""

    PATHS = ("/repositories", "/repositories/node", "/repositories/node/tags/22", "/health", "/")

    def __init__(self, base: str, sessions: list[requests.Session]):
        self.base, self.sessions = base, sessions
        self.statuses: list[int] = []
        self.slowest = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in sessions]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_BOUND + 5)

    def _run(self, session: requests.Session) -> None:
        i = 0
        while not self._stop.is_set():
            path = self.PATHS[i % len(self.PATHS)]
            i += 1
            started = time.monotonic()
            try:
                status = session.get(f"{self.base}{path}", timeout=REQUEST_BOUND).status_code
            except requests.RequestException:
                status = -1  # no answer within the bound: a hung worker
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.statuses.append(status)
            time.sleep(0.05)

    def check(self) -> None:
        assert self.statuses, "no request was made"
        assert 500 not in self.statuses and -1 not in self.statuses, sorted(set(self.statuses))
        assert self.slowest < REQUEST_BOUND


def status_of(base: str, component: str) -> dict:
    return requests.get(f"{base}/api/v1/status", auth=("olivia", "olivia-pw"), timeout=REQUEST_BOUND).json()[component]


def wait_for(predicate, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def job_id(berth):
    """The finished job recorded before Berth started; it must survive all the faults."""
    return berth["job_id"]


def test_registry_stopped_and_started(berth, swarm_stack, job_id):
    import docker

    base = berth["base"]
    client = docker.DockerClient(base_url=swarm_stack["DOCKER_HOST"], timeout=20)
    service = client.services.get("registry")
    sessions = [login(base, "dave"), login(base, "olivia")]
    with Browsing(base, sessions) as browsing:
        service.scale(0)
        wait_for(
            lambda: "The registry API does not answer" in str(status_of(base, "registry")["findings"]),
            what="the registry panel to say the API does not answer",
        )
        assert status_of(base, "registry")["state"] == "critical"
        page = sessions[0].get(f"{base}/repositories/debian", timeout=REQUEST_BOUND)
        assert page.status_code == 502 and "Cannot connect to registry" in page.text
        service.reload()
        service.scale(1)
        # "ok" would stay false: the devstack registry is open to anyone, a critical finding of its own
        wait_for(
            lambda: "GET /v2/ answered" in str(status_of(base, "registry")["findings"]),
            timeout=40,
            what="the registry panel to recover",
        )
        wait_for(
            lambda: sessions[0].get(f"{base}/repositories/debian", timeout=REQUEST_BOUND).status_code == 200,
            what="the catalog to recover",
        )
    browsing.check()


def test_directory_stopped(berth, swarm_stack, job_id):
    from devstack import control

    base = berth["base"]
    session = login(base, "dave")
    state = swarm_stack["DEVSTACK_STATE_DIR"]
    with Browsing(base, [session]) as browsing:
        control.stop(state, "slapd")
        try:
            assert session.get(f"{base}/repositories", timeout=REQUEST_BOUND).status_code == 200  # still browsing
            fresh = requests.Session()
            fresh.trust_env = False
            page = fresh.get(f"{base}/login", timeout=REQUEST_BOUND).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            refused = fresh.post(
                f"{base}/login",
                data={"username": "olivia", "password": "olivia-pw", "csrf_token": token},
                timeout=REQUEST_BOUND,
            )
            assert refused.status_code == 503 and "Directory unreachable" in refused.text
        finally:
            control.restart_slapd(state)
        login(base, "olivia")  # recovered without restarting Berth
    browsing.check()


def test_docker_engine_frozen(berth, swarm_stack, job_id):
    from devstack import control

    base = berth["base"]
    state = swarm_stack["DEVSTACK_STATE_DIR"]
    with Browsing(base, [login(base, "olivia")]) as browsing:
        control.freeze(state, "dockerd")
        try:
            # each worker keeps the snapshot up to 1 s, so ask until the answer is the new one
            wait_for(
                lambda: any(f["level"] == "critical" for f in status_of(base, "swarm")["findings"]),
                what="the Swarm panel to show a critical finding",
            )
        finally:
            control.thaw(state, "dockerd")
        wait_for(lambda: status_of(base, "swarm")["ok"], timeout=30, what="the Swarm panel to recover")
    browsing.check()


def test_nfs_probe_hangs(berth, swarm_stack, job_id):
    """A FUSE mount that never answers over the NFS path: every stat blocks in the kernel, as on a hung hard mount."""
    base = berth["base"]
    nfs_path = Path(swarm_stack["BERTH_NFS_PATH"])
    with Browsing(base, [login(base, "olivia")]) as browsing:
        with HungMount(nfs_path):
            wait_for(
                lambda: "not responding" in str(status_of(base, "nfs")["findings"]),
                what="the NFS panel to say the server is not responding",
            )
            started = time.monotonic()
            assert requests.get(f"{base}/api/v1/status", auth=("olivia", "olivia-pw"), timeout=5).status_code == 200
            assert time.monotonic() - started < 2
        wait_for(lambda: status_of(base, "nfs")["error"] is None, what="the NFS panel to recover")
    browsing.check()


def test_sqlite_locked_for_five_seconds(berth, job_id):
    base = berth["base"]
    database = berth["data"] / "berth.sqlite3"
    with Browsing(base, [login(base, "dave")]) as browsing:
        conn = sqlite3.connect(database, timeout=10, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(5)
        conn.execute("COMMIT")
        conn.close()
        time.sleep(1)
    browsing.check()


def test_no_job_record_lost(berth, job_id):
    job = requests.get(f"{berth['base']}/api/v1/jobs/{job_id}", auth=("alice", "alice-pw"), timeout=REQUEST_BOUND)
    assert job.status_code == 200 and job.json()["kind"] == "rotate-certs"
    assert job.json()["status"] == "succeeded" and job.json()["result"] == {"new_fingerprint": "AA:BB"}
