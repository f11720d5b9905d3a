"""The setup and rotate-certs jobs against a real Docker engine in Swarm mode.

One ``devstack up --swarm`` per module. The jobs deploy their own service (``berth-jobs``
on a free loopback port, host network, a fresh CA, a temporary storage directory), so the
devstack's ``registry`` service is left alone. Jobs run through the real JobStore and
JobRunner. Failure paths use real breakage, never a hook in the job: another process takes
the registry's port while the new task starts; the registry's config.yml reads its TLS
files from other paths, so the served certificate does not change; a convergence deadline
too short for any update. Figures (job durations, longest time without an answer during a
rotation) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from cryptography import x509

from berth.audit import AuditLog
from berth.config import Settings
from berth.db import Database
from berth.jobs.rotation import rotation_kind
from berth.jobs.runner import JobRunner
from berth.jobs.selftest import REPOSITORY, TAG
from berth.jobs.setup import plan, setup_kind
from berth.jobs.store import JobRecord, JobStore
from berth.registry import config as rc
from berth.swarm import deploy as sd
from berth.swarm.inspect import docker_client, find_service, service_config_yaml
from berth.tls.certs import fingerprint, served_certificate
from devstack.ports import free_port
from tests.helpers import need, running_devstack

SERVICE = "berth-jobs"
pytestmark = [pytest.mark.swarm]


@dataclass
class Deployment:
    """Settings for the jobs' own service, the job store and a client of the engine."""

    settings: Settings
    store: JobStore
    audit: AuditLog
    client: object
    root: Path

    @property
    def service_id(self) -> str:
        return find_service(self.client, SERVICE)["ID"]

    def run(self, kind: str, settings: Settings | None = None, options: dict | None = None) -> JobRecord:
        """Queue and run one job of ``kind`` to its end; print its duration."""
        settings = settings or self.settings
        kinds = {"setup": setup_kind(settings), "rotate-certs": rotation_kind(settings)}
        self.store.create(kinds[kind], "alice", "127.0.0.1", options or {})
        job = JobRunner(self.store, lambda: kinds).run(self.store.claim("test"))
        print(
            f"\n[figures] {kind} job: {job.status} in {job.duration_seconds:.1f} s"
            + (f" ({job.error})" if job.error else "")
        )
        return job

    def served(self) -> str:
        """The fingerprint the registry serves, verified against the CA (fails otherwise)."""
        served = served_certificate(self.settings.registry_url, self.settings.ca_dir / "ca.crt")
        assert served.verified, served.error
        return served.info.sha256

    def secret_names(self) -> set[str]:
        return {s["Spec"]["Name"] for s in self.client.api.secrets() if s["Spec"]["Name"].startswith(SERVICE)}

    def config_names(self) -> set[str]:
        return {c["Spec"]["Name"] for c in self.client.api.configs() if c["Spec"]["Name"].startswith(SERVICE)}

    def skopeo(self) -> str:
        """``skopeo inspect`` of the self-test image with the CA; returns its digest."""
        cert_dir = self.root / "certs.d"
        cert_dir.mkdir(exist_ok=True)
        shutil.copy(self.settings.ca_dir / "ca.crt", cert_dir / "ca.crt")
        ref = f"docker://{self.settings.registry_host}/{REPOSITORY}:{TAG}"
        done = subprocess.run(
            ["skopeo", "inspect", "--cert-dir", str(cert_dir), "--format", "{{.Digest}}", ref],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A running ``devstack up --swarm`` and the settings of the jobs' own service."""
    if not shutil.which("skopeo"):
        need("skopeo is not installed")
    with running_devstack(tmp_path_factory, "swarm-jobs", swarm=True) as (_, env):
        root = tmp_path_factory.mktemp("jobs")
        (root / "nfs").mkdir()
        environment = {k: v for k, v in env.items() if k.startswith(("BERTH_", "DOCKER_"))}
        environment.pop("BERTH_REGISTRY_CA", None)
        environment |= {
            "BERTH_DATA_DIR": str(root / "data"),
            "BERTH_CA_DIR": str(root / "ca"),
            "BERTH_NFS_PATH": str(root / "nfs"),
            "BERTH_REGISTRY_URL": f"https://127.0.0.1:{free_port()}",
            "BERTH_SWARM_SERVICE": SERVICE,
            "BERTH_SWARM_HOST_NETWORK": "true",
            "BERTH_SWARM_CONVERGE_TIMEOUT": "60",
        }
        settings = Settings.from_env(environment)
        db = Database(settings.database_path)
        audit = AuditLog(db)
        client = docker_client(settings.docker_host, timeout=30)
        yield Deployment(settings, JobStore(db, audit), audit, client, root)
        client.close()


def _logs(job: JobRecord) -> str:
    return "\n".join(f"[{s.name}: {s.status}]\n{s.log}" for s in job.steps)


def test_setup_stops_on_a_critical_nfs_finding(deployment: Deployment) -> None:
    settings = deployment.settings.replace(nfs_path=deployment.root / "missing")
    job = deployment.run("setup", settings)
    assert job.status == "failed" and "does not exist" in job.error
    assert [s.status for s in job.steps][:2] == ["failed", "skipped"]
    assert find_service(deployment.client, SERVICE) is None and not (settings.ca_dir / "ca.crt").exists()


def test_setup_from_nothing(deployment: Deployment) -> None:
    s = deployment.settings
    assert {i.action for i in plan(s)[1:]} == {"create"}
    job = deployment.run("setup")
    assert job.status == "succeeded", _logs(job)
    assert deployment.served() == job.result["fingerprint"]
    assert (s.ca_dir / "server.crt").is_file() and sorted(p.name for p in s.ca_dir.iterdir()) == [
        "ca.crt", "ca.key", "server.crt",
    ]  # fmt: skip
    assert (s.data_dir / rc.HTTP_SECRET_FILE).stat().st_mode & 0o777 == 0o600
    logs = _logs(job)
    assert "PRIVATE KEY" not in logs and (s.data_dir / rc.HTTP_SECRET_FILE).read_text() not in logs
    assert deployment.skopeo() == job.result["selftest"]
    service = find_service(deployment.client, SERVICE)
    config = yaml.safe_load(service_config_yaml(deployment.client, service))
    assert config["storage"]["filesystem"]["rootdirectory"] == str(s.nfs_path)
    assert config["http"]["addr"] == s.registry_host and config["http"]["draintimeout"] == "30s"
    key_ref = sd.references(service["Spec"], "secret")[rc.KEY_TARGET]
    assert key_ref["File"]["Mode"] == 0o400
    assert service["Spec"]["UpdateConfig"]["FailureAction"] == "rollback"
    assert service["Spec"]["UpdateConfig"]["Order"] == "stop-first"


def test_second_setup_changes_nothing(deployment: Deployment) -> None:
    before = (find_service(deployment.client, SERVICE)["Version"], deployment.secret_names(), deployment.config_names())
    assert {i.action for i in plan(deployment.settings)} == {"keep"}
    job = deployment.run("setup")
    assert job.status == "succeeded", _logs(job)
    assert job.result["changed"] == [] and "Nothing to change" in _logs(job)
    after = (find_service(deployment.client, SERVICE)["Version"], deployment.secret_names(), deployment.config_names())
    assert after == before


class Poller(threading.Thread):
    """Polls ``GET /v2/`` every 50 ms (new connection, CA verified); records the longest gap."""

    def __init__(self, settings: Settings):
        super().__init__(daemon=True)
        self.url, self.ca = f"{settings.registry_url}/v2/", str(settings.ca_dir / "ca.crt")
        self.stop = threading.Event()
        self.longest = 0.0
        self.failures = 0

    def run(self) -> None:
        last_ok = time.monotonic()
        while not self.stop.is_set():
            try:
                ok = requests.get(self.url, verify=self.ca, timeout=1).status_code == 200
            except requests.RequestException:
                ok = False
            now = time.monotonic()
            if ok:
                self.longest, last_ok = max(self.longest, now - last_ok), now
            else:
                self.failures += 1
            self.stop.wait(0.05)


def test_rotation(deployment: Deployment) -> None:
    s = deployment.settings
    old_fp, old_secrets = deployment.served(), deployment.secret_names()
    digest = deployment.skopeo()
    poller = Poller(s)
    poller.start()
    try:
        job = deployment.run("rotate-certs")
    finally:
        poller.stop.set()
        poller.join()
    print(f"[figures] rotation: longest time without an answer to GET /v2/: {poller.longest:.2f} s "
          f"({poller.failures} failed polls)")  # fmt: skip
    assert job.status == "succeeded", _logs(job)
    new_fp = deployment.served()  # verified against the same CA
    assert (
        new_fp != old_fp and job.result["old"]["fingerprint"] == old_fp and job.result["new"]["fingerprint"] == new_fp
    )
    assert job.result["old"]["not_after"] and job.result["new"]["not_after"]
    assert deployment.skopeo() == digest
    assert (
        old_secrets.isdisjoint(deployment.secret_names())
        and set(job.result["new"]["secrets"]) == deployment.secret_names()
    )
    held = x509.load_pem_x509_certificate((s.ca_dir / "server.crt").read_bytes())
    assert fingerprint(held) == new_fp
    assert any(
        e.action == "job" and e.outcome == "succeeded" and "rotate-certs" in e.detail for e in deployment.audit.recent()
    )


def _assert_restored(deployment: Deployment, job: JobRecord, old_fp: str, old_secrets: set[str], held: bytes) -> None:
    assert job.status == "failed", _logs(job)
    assert deployment.served() == old_fp, _logs(job)
    assert f"The old certificate is served again: {old_fp}" in _logs(job)
    assert deployment.secret_names() == old_secrets  # no secret lost, the new ones removed
    assert (deployment.settings.ca_dir / "server.crt").read_bytes() == held
    refs = sd.references(find_service(deployment.client, SERVICE)["Spec"], "secret")
    assert {refs[rc.CERT_TARGET]["SecretName"], refs[rc.KEY_TARGET]["SecretName"]} <= old_secrets


def _state(deployment: Deployment) -> tuple[str, set[str], bytes]:
    return deployment.served(), deployment.secret_names(), (deployment.settings.ca_dir / "server.crt").read_bytes()


def test_rotation_rolls_back_when_the_new_task_cannot_start(deployment: Deployment) -> None:
    """Another process takes the port while the old task is stopped: the new task fails to bind."""
    old = _state(deployment)
    port = int(deployment.settings.registry_host.rsplit(":", 1)[1])
    done = threading.Event()
    took = threading.Event()

    def squat() -> None:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            while not done.is_set():
                try:
                    sock.bind(("127.0.0.1", port))
                    sock.listen(1)
                    break
                except OSError:
                    time.sleep(0.005)
            else:
                return
            took.set()
            service_id = deployment.service_id
            while not done.is_set():  # hold the port until a new task has failed on it
                tasks = deployment.client.api.tasks(filters={"service": service_id})
                if any(t["Status"]["State"] in ("failed", "rejected") for t in tasks):
                    return
                time.sleep(0.05)

    squatter = threading.Thread(target=squat, daemon=True)
    squatter.start()
    try:
        job = deployment.run("rotate-certs")
    finally:
        done.set()
        squatter.join()
    assert took.is_set()
    assert "Wait for convergence" in [s.name for s in job.steps if s.status == "failed"], _logs(job)
    assert "rolled the update back" in job.error
    _assert_restored(deployment, job, *old)
    again = deployment.run("setup")  # Swarm's own rollback left an old status behind: still nothing to change
    assert again.status == "succeeded" and again.result["changed"] == [], _logs(again)


def test_rotation_rolls_back_when_the_new_certificate_is_not_served(deployment: Deployment) -> None:
    """config.yml reads TLS from other paths (still the old secrets): the served certificate does not change."""
    client, old = deployment.client, _state(deployment)
    service = find_service(client, SERVICE)
    original = service["Spec"]
    config = yaml.safe_load(service_config_yaml(client, service))
    config["http"]["tls"] = {"certificate": "/run/secrets/pinned.crt", "key": "/run/secrets/pinned.key"}
    text = yaml.safe_dump(config).encode()
    name = sd.versioned_name(SERVICE, "pinned", rc.content_hash(text.decode()))
    config_id, _ = sd.ensure_object(client, "config", name, text, "test")
    refs = sd.references(original, "secret")
    pinned = [
        {**refs[rc.CERT_TARGET], "File": {**refs[rc.CERT_TARGET]["File"], "Name": "/run/secrets/pinned.crt"}},
        {**refs[rc.KEY_TARGET], "File": {**refs[rc.KEY_TARGET]["File"], "Name": "/run/secrets/pinned.key"}},
    ]
    spec = sd.with_references(original, "secret", pinned)
    spec = sd.with_references(spec, "config", [sd.reference("config", config_id, name, rc.CONFIG_TARGET, 0o444)])
    since = sd.now_utc()
    sd.apply_spec(client, service["ID"], spec)
    sd.wait_converged(client, service["ID"], timeout=60, since=since)
    try:
        job = deployment.run("rotate-certs")
        assert "Verify the new certificate is served" in [s.name for s in job.steps if s.status == "failed"]
        assert "not the expected" in job.error
        _assert_restored(deployment, job, *old)
    finally:
        since = sd.now_utc()
        sd.apply_spec(client, service["ID"], original)
        sd.wait_converged(client, service["ID"], timeout=60, since=since)
        client.api.remove_config(config_id)


def test_rotation_rolls_back_when_the_deadline_passes(deployment: Deployment) -> None:
    old = _state(deployment)
    job = deployment.run("rotate-certs", deployment.settings.replace(swarm_converge_timeout=1.0))
    assert "did not converge within 1 s" in job.error
    _assert_restored(deployment, job, *old)
    again = deployment.run("setup")  # and the deployment is as setup left it
    assert again.status == "succeeded" and again.result["changed"] == [], _logs(again)
