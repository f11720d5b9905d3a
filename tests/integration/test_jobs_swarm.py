"""The setup and rotate-certs jobs against a real Docker engine in Swarm mode.

One ``devstack up --swarm`` per module. The jobs deploy their own service (``berth-jobs``
on a free loopback port, host network, a fresh CA, a temporary storage directory), so the
devstack's ``registry`` service is left alone. Jobs run through the real JobStore and
JobRunner. Setup turns on token auth: a Berth app (werkzeug, HTTPS with the devstack's
certificate, sharing the jobs' data directory and so their signing keys) serves the
realm, and skopeo logs in there as a directory user. Failure paths use real breakage,
never a hook in the job: another process takes the registry's port while the new task
starts; the registry's config.yml reads its TLS files from other paths, so the served
certificate does not change; a convergence deadline too short for any update. Figures
(job durations, longest time without an answer during a rotation, pulls that failed) are
printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests
import yaml
from cryptography import x509
from werkzeug.serving import make_server

from berth.audit import AuditLog
from berth.auth.tokens import SigningKeys, TokenIssuer, signing_dir
from berth.config import Settings
from berth.db import Database
from berth.jobs.rotation import rotation_kind
from berth.jobs.selftest import REPOSITORY, TAG
from berth.jobs.setup import plan, setup_kind
from berth.jobs.store import JobRecord, JobStore
from berth.registry import config as rc
from berth.swarm import deploy as sd
from berth.swarm.inspect import docker_client, find_service, service_config_yaml
from berth.tls.certs import fingerprint, served_certificate
from devstack.ports import LOOPBACK, free_port
from tests.helpers import job_logs, make_app, need, run_job, running_devstack

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
    app: object

    @property
    def service_id(self) -> str:
        return find_service(self.client, SERVICE)["ID"]

    def run(self, kind: str, settings: Settings | None = None, options: dict | None = None) -> JobRecord:
        """Queue and run one job of ``kind`` to its end; print its duration."""
        settings = settings or self.settings
        kinds = {"setup": setup_kind(settings), "rotate-certs": rotation_kind(settings)}
        return run_job(self.store, kinds, kind, options)

    def served(self) -> str:
        """The fingerprint the registry serves, verified against the CA (fails otherwise)."""
        served = served_certificate(self.settings.registry_url, self.settings.ca_dir / "ca.crt")
        assert served.verified, served.error
        return served.info.sha256

    def secret_names(self) -> set[str]:
        return {s["Spec"]["Name"] for s in self.client.api.secrets() if s["Spec"]["Name"].startswith(SERVICE)}

    def config_names(self) -> set[str]:
        return {c["Spec"]["Name"] for c in self.client.api.configs() if c["Spec"]["Name"].startswith(SERVICE)}

    @property
    def kept_dir(self) -> Path:
        return self.settings.data_dir / rc.KEPT_DIR

    def running_config(self) -> dict:
        """The config.yml the service runs with (Berth's copy of its secret, hash-checked)."""
        text = service_config_yaml(self.client, find_service(self.client, SERVICE), self.kept_dir)
        assert text is not None, "the running config.yml is not readable"
        return yaml.safe_load(text)

    def skopeo(self, *args: str) -> subprocess.CompletedProcess:
        """skopeo with both CAs (Berth's for the registry, the devstack's for the realm)."""
        trusted = self.root / "certs.d" / "ca.crt"
        if not trusted.is_file():
            shutil.copy(self.settings.ca_dir / "ca.crt", trusted)
        return subprocess.run(
            ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=60, check=False
        )

    def inspect(self, reference: str, creds: str | None = "dave:dave-pw") -> subprocess.CompletedProcess:
        creds_args = ["--creds", creds] if creds else ["--no-creds"]
        target = f"docker://{self.settings.registry_host}/{reference}"
        return self.skopeo("inspect", *creds_args, "--cert-dir", str(self.root / "certs.d"), target)

    def digest(self, reference: str = "dave/demo:1") -> str:
        done = self.inspect(reference)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["Digest"]

    def push(self, reference: str, creds: str = "dave:dave-pw") -> subprocess.CompletedProcess:
        target = f"docker://{self.settings.registry_host}/{reference}"
        certs = str(self.root / "certs.d")
        return self.skopeo(
            "copy", "--dest-creds", creds, "--dest-cert-dir", certs, f"oci:{self.root / 'oci'}:demo", target
        )

    def anonymous(self, path: str) -> requests.Response:
        return requests.get(self.settings.registry_url + path, verify=str(self.settings.ca_dir / "ca.crt"), timeout=10)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A running ``devstack up --swarm``, the settings of the jobs' own service, Berth serving the realm."""
    if not shutil.which("skopeo"):
        need("skopeo is not installed")
    with running_devstack(tmp_path_factory, "swarm-jobs", swarm=True) as (state_dir, env):
        root = tmp_path_factory.mktemp("jobs")
        (root / "nfs").mkdir()
        (root / "certs.d").mkdir()
        port = free_port()
        environment = {k: v for k, v in env.items() if k.startswith(("BERTH_", "DOCKER_"))}
        devstack_ca = environment.pop("BERTH_REGISTRY_CA")
        environment.pop("BERTH_REGISTRY_USERNAME", None)
        environment.pop("BERTH_REGISTRY_PASSWORD", None)
        environment |= {
            "BERTH_DATA_DIR": str(root / "data"),
            "BERTH_CA_DIR": str(root / "ca"),
            "BERTH_NFS_PATH": str(root / "nfs"),
            "BERTH_REGISTRY_URL": f"https://127.0.0.1:{free_port()}",
            "BERTH_SWARM_SERVICE": SERVICE,
            "BERTH_SWARM_HOST_NETWORK": "true",
            "BERTH_SWARM_CONVERGE_TIMEOUT": "60",
            "BERTH_PUBLIC_URL": f"https://{LOOPBACK}:{port}",
            "BERTH_BACKGROUND": "false",
        }
        settings = Settings.from_env(environment).replace(registry_ca=root / "ca" / "ca.crt")
        shutil.copy(devstack_ca, root / "certs.d" / "devstack-ca.crt")
        source = env["BERTH_REGISTRY_URL"].removeprefix("https://")
        copied = subprocess.run(
            ["skopeo", "--insecure-policy", "copy", "--src-cert-dir", str(root / "certs.d"),
             f"docker://{source}/centos:7", f"oci:{root / 'oci'}:demo"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert copied.returncode == 0, copied.stderr
        app = make_app(settings)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(
            str(Path(state_dir) / "tls" / "server.crt"), str(Path(state_dir) / "tls" / "server.key")
        )
        server = make_server(LOOPBACK, port, app, threaded=True, ssl_context=context)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        db = Database(settings.database_path)
        audit = AuditLog(db)
        client = docker_client(settings.docker_host, timeout=30)
        try:
            yield Deployment(settings, JobStore(db, audit), audit, client, root, app)
        finally:
            server.shutdown()
            thread.join(5)
            client.close()


def test_setup_stops_on_a_critical_nfs_finding(deployment: Deployment) -> None:
    settings = deployment.settings.replace(nfs_path=deployment.root / "missing")
    job = deployment.run("setup", settings)
    assert job.status == "failed" and "does not exist" in job.error
    assert [s.status for s in job.steps][:2] == ["failed", "skipped"]
    assert find_service(deployment.client, SERVICE) is None and not (settings.ca_dir / "ca.crt").exists()


def test_setup_without_a_public_url_fails_in_one_line(deployment: Deployment) -> None:
    root = deployment.root
    settings = deployment.settings.replace(public_url=None, data_dir=root / "other", ca_dir=root / "other-ca")
    job = deployment.run("setup", settings)
    assert job.status == "failed" and job.error.startswith("BERTH_PUBLIC_URL is not set") and "\n" not in job.error
    assert "Registry config.yml" in [s.name for s in job.steps if s.status == "failed"]
    assert find_service(deployment.client, SERVICE) is None


def test_setup_from_nothing(deployment: Deployment) -> None:
    s = deployment.settings
    items = plan(s)
    assert {i.action for i in items[1:]} == {"create"}
    access = next(i for i in items if i.what == "registry access")
    assert "need `docker login` with a directory account or an access token" in access.detail
    job = deployment.run("setup")
    assert job.status == "succeeded", job_logs(job)
    assert deployment.served() == job.result["fingerprint"]
    assert (s.ca_dir / "server.crt").is_file() and sorted(p.name for p in s.ca_dir.iterdir()) == [
        "ca.crt", "ca.key", "server.crt",
    ]  # fmt: skip
    assert (s.data_dir / rc.HTTP_SECRET_FILE).stat().st_mode & 0o777 == 0o600
    logs = job_logs(job)
    assert "PRIVATE KEY" not in logs and (s.data_dir / rc.HTTP_SECRET_FILE).read_text() not in logs
    service = find_service(deployment.client, SERVICE)
    config = deployment.running_config()
    assert config["storage"]["filesystem"]["rootdirectory"] == str(s.nfs_path)
    assert config["http"]["addr"] == s.registry_host and config["http"]["draintimeout"] == "30s"
    assert config["auth"]["token"]["realm"] == f"{s.public_url}/auth/token" and config["storage"]["delete"]["enabled"]
    secrets = sd.references(service["Spec"], "secret")
    assert secrets[rc.KEY_TARGET]["File"]["Mode"] == 0o400 and secrets[rc.CONFIG_TARGET]["File"]["Mode"] == 0o400
    assert rc.BUNDLE_TARGET in secrets and not sd.references(service["Spec"], "config")  # config.yml is a secret
    assert [p.stat().st_mode & 0o777 for p in deployment.kept_dir.iterdir()] == [0o600]
    assert service["Spec"]["UpdateConfig"]["FailureAction"] == "rollback"
    assert service["Spec"]["UpdateConfig"]["Order"] == "stop-first"
    # the self-test used Berth's own token and left nothing behind that developers would see
    assert deployment.inspect(f"{REPOSITORY}:{TAG}", "alice:alice-pw").returncode != 0


def test_with_auth_on_clients_log_in_and_berth_still_reads(deployment: Deployment) -> None:
    assert deployment.anonymous("/v2/_catalog").status_code == 401
    assert deployment.anonymous("/v2/").status_code == 401
    pushed = deployment.push("dave/demo:1")
    assert pushed.returncode == 0, pushed.stderr
    assert deployment.push("library/demo:1").returncode != 0  # dave's rules: his own namespace only
    assert deployment.inspect("dave/demo:1", creds=None).returncode != 0  # anonymous pulls are off
    svc = deployment.app.extensions["berth"]
    assert "dave/demo" in svc.catalog.repositories() and REPOSITORY not in svc.catalog.repositories()
    assert svc.catalog.tag_names("dave/demo") == ["1"]
    svc.health.run_once()
    registry = svc.health.current()["registry"]
    assert registry["state"] == "healthy", registry
    assert not any("accepts pushes from anyone" in f["message"] for f in registry["findings"])


def test_second_setup_changes_nothing(deployment: Deployment) -> None:
    before = (find_service(deployment.client, SERVICE)["Version"], deployment.secret_names(), deployment.config_names())
    assert {i.action for i in plan(deployment.settings)} == {"keep"}
    job = deployment.run("setup")
    assert job.status == "succeeded", job_logs(job)
    assert job.result["changed"] == [] and "Nothing to change" in job_logs(job)
    after = (find_service(deployment.client, SERVICE)["Version"], deployment.secret_names(), deployment.config_names())
    assert after == before


def _run_on_config(deployment: Deployment, config: dict, label: str | None, name: str) -> None:
    """Point the service at ``config`` as a plain Swarm config (an operator's, or an older Berth's: ``label``)."""
    client = deployment.client
    service = find_service(client, SERVICE)
    text = yaml.safe_dump(config).encode()
    labels = {sd.LABEL: label} if label else {}
    config_id = client.api.create_config(name=name, data=text, labels=labels)["ID"]
    _apply_with_config(client, service["ID"], copy.deepcopy(service["Spec"]), config_id, name)


def _apply_with_config(client, service_id: str, spec: dict, config_id: str, name: str) -> None:
    """Run ``spec`` with config.yml from the Swarm config ``name`` instead of a secret; wait for it."""
    container = spec["TaskTemplate"]["ContainerSpec"]
    container["Secrets"] = [r for r in container["Secrets"] if r["File"]["Name"] != rc.CONFIG_TARGET]
    spec = sd.with_references(spec, "config", [sd.reference("config", config_id, name, rc.CONFIG_TARGET, 0o444)])
    since = sd.now_utc()
    sd.apply_spec(client, service_id, spec)
    sd.wait_converged(client, service_id, timeout=60, since=since)


def test_operator_sections_survive_setup(deployment: Deployment) -> None:
    config = deployment.running_config()
    config["notifications"] = {"endpoints": [{"name": "audit", "url": "https://127.0.0.1:9/events", "timeout": "1s"}]}
    config["http"]["headers"]["X-Frame-Options"] = ["DENY"]
    _run_on_config(deployment, config, None, f"{SERVICE}-operator-edit")
    try:
        assert any(i.action == "update" and "notifications" in i.detail for i in plan(deployment.settings))
        job = deployment.run("setup")  # auth is Berth's already: nothing to confirm
        assert job.status == "succeeded", job_logs(job)
        running = deployment.running_config()
        endpoints = running["notifications"]["endpoints"]
        assert config["notifications"]["endpoints"][0] in endpoints  # the operator's endpoint survives
        assert [e["name"] for e in endpoints] == ["audit", "berth"]  # and Berth's own is added beside it
        assert running["http"]["headers"]["X-Frame-Options"] == ["DENY"]
        assert f"Left the config {SERVICE}-operator-edit in place" in job_logs(job)
        assert deployment.run("setup").result["changed"] == []
    finally:
        deployment.client.api.remove_config(sd.object_id(deployment.client, "config", f"{SERVICE}-operator-edit"))


def test_turning_auth_on_needs_confirm_and_migrates_the_old_config(deployment: Deployment) -> None:
    """A registry set up before auth: an open config.yml in a Swarm config that Berth made."""
    config = deployment.running_config()
    del config["auth"]
    name = f"{SERVICE}-config-old"
    _run_on_config(deployment, config, "registry-config", name)
    assert deployment.anonymous("/v2/_catalog").status_code == 200
    version = find_service(deployment.client, SERVICE)["Version"]
    item = next(i for i in plan(deployment.settings) if i.what == "registry access")
    assert item.confirm and "Anonymous access stops" in item.detail and "docker login" in item.detail
    refused = deployment.run("setup")
    assert refused.status == "failed" and "Anonymous access stops" in refused.error and "confirming" in refused.error
    assert find_service(deployment.client, SERVICE)["Version"] == version
    job = deployment.run("setup", options={"confirm": True})
    assert job.status == "succeeded", job_logs(job)
    assert deployment.anonymous("/v2/_catalog").status_code == 401
    assert name not in deployment.config_names() and f"Removed the old config {name}." in job_logs(job)
    assert deployment.digest()  # dave still pulls, now through Berth's tokens


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
            try:  # any answer of the registry counts (401: it asks for a token)
                ok = requests.get(self.url, verify=self.ca, timeout=1).status_code in (200, 401)
            except requests.RequestException:
                ok = False
            now = time.monotonic()
            if ok:
                self.longest, last_ok = max(self.longest, now - last_ok), now
            else:
                self.failures += 1
            self.stop.wait(0.05)


class PullLoop(threading.Thread):
    """``skopeo inspect`` of dave/demo:1 as dave, one every 100 ms, until stopped (bounded to 400 runs)."""

    def __init__(self, deployment: Deployment):
        super().__init__(daemon=True)
        self.deployment = deployment
        self.stop = threading.Event()
        self.results: list[tuple[float, bool, str]] = []

    def run(self) -> None:
        while not self.stop.is_set() and len(self.results) < 400:
            done = self.deployment.inspect("dave/demo:1")
            self.results.append((time.monotonic(), done.returncode == 0, done.stderr[-300:]))
            self.stop.wait(0.1)


def test_rotation(deployment: Deployment) -> None:
    s = deployment.settings
    old_fp = deployment.served()
    digest = deployment.digest()
    keys = SigningKeys(signing_dir(s.data_dir))
    old_bundle = keys.bundle_pem()
    in_flight = TokenIssuer(keys.load(), s.registry_service).issue("in-flight", []).token  # signed by the old key
    poller, pulls = Poller(s), PullLoop(deployment)
    poller.start()
    pulls.start()
    try:
        job = deployment.run("rotate-certs")
        finished = time.monotonic()
        time.sleep(1.0)  # a few pulls after the swap
    finally:
        poller.stop.set()
        pulls.stop.set()
        poller.join()
        pulls.join()
    failed = [r for r in pulls.results if not r[1]]
    print(f"[figures] rotation: longest time without an answer to GET /v2/: {poller.longest:.2f} s "
          f"({poller.failures} failed polls); skopeo pulls: {len(pulls.results)}, {len(failed)} failed")  # fmt: skip
    assert job.status == "succeeded", job_logs(job)
    assert not [r for r in failed if re.search(r"unauthori[sz]ed|denied|401", r[2], re.I)], failed
    assert [r for r in pulls.results if r[0] > finished] and all(r[1] for r in pulls.results if r[0] > finished)
    new_fp = deployment.served()  # verified against the same CA
    assert (
        new_fp != old_fp and job.result["old"]["fingerprint"] == old_fp and job.result["new"]["fingerprint"] == new_fp
    )
    assert job.result["old"]["not_after"] and job.result["new"]["not_after"]
    assert deployment.digest() == digest  # through a token signed with the new key
    new_bundle = keys.bundle_pem()
    assert new_bundle != old_bundle and new_bundle.count(b"BEGIN CERTIFICATE") == 2
    assert "The registry accepts a token signed with the next key" in job_logs(job)
    fresh = TokenIssuer(SigningKeys(signing_dir(s.data_dir)).load(), s.registry_service).issue("new", []).token
    assert jwt.get_unverified_header(fresh)["x5c"] != jwt.get_unverified_header(in_flight)["x5c"]
    for token in (in_flight, fresh):  # the old key's token in flight still works, and the new key's
        response = requests.get(
            f"{s.registry_url}/v2/", headers={"Authorization": f"Bearer {token}"}, verify=str(s.ca_dir / "ca.crt"),
            timeout=10,
        )  # fmt: skip
        assert response.status_code == 200
    assert set(job.result["old"]["secrets"]).isdisjoint(deployment.secret_names())
    assert set(job.result["new"]["secrets"]) <= deployment.secret_names() and len(job.result["new"]["secrets"]) == 3
    held = x509.load_pem_x509_certificate((s.ca_dir / "server.crt").read_bytes())
    assert fingerprint(held) == new_fp
    assert any(
        e.action == "job" and e.outcome == "succeeded" and "rotate-certs" in e.detail for e in deployment.audit.recent()
    )
    assert deployment.run("setup").result["changed"] == []  # setup agrees with the rotated bundle


def _assert_restored(
    deployment: Deployment, job: JobRecord, old_fp: str, old_secrets: set[str], held: bytes, bundle: bytes
) -> None:
    assert job.status == "failed", job_logs(job)
    assert deployment.served() == old_fp, job_logs(job)
    assert f"The old certificate is served again: {old_fp}" in job_logs(job)
    assert deployment.secret_names() == old_secrets  # no secret lost, the new ones removed
    assert (deployment.settings.ca_dir / "server.crt").read_bytes() == held
    assert SigningKeys(signing_dir(deployment.settings.data_dir)).bundle_pem() == bundle  # the staged key forgotten
    assert deployment.digest()  # tokens from Berth still work
    refs = sd.references(find_service(deployment.client, SERVICE)["Spec"], "secret")
    assert {refs[rc.CERT_TARGET]["SecretName"], refs[rc.KEY_TARGET]["SecretName"]} <= old_secrets


def _state(deployment: Deployment) -> tuple[str, set[str], bytes, bytes]:
    s = deployment.settings
    bundle = SigningKeys(signing_dir(s.data_dir)).bundle_pem()
    return deployment.served(), deployment.secret_names(), (s.ca_dir / "server.crt").read_bytes(), bundle


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
    assert "Wait for convergence" in [s.name for s in job.steps if s.status == "failed"], job_logs(job)
    assert "rolled the update back" in job.error
    _assert_restored(deployment, job, *old)
    again = deployment.run("setup")  # Swarm's own rollback left an old status behind: still nothing to change
    assert again.status == "succeeded" and again.result["changed"] == [], job_logs(again)


def test_rotation_rolls_back_when_the_new_certificate_is_not_served(deployment: Deployment) -> None:
    """config.yml reads TLS from other paths (still the old secrets): the served certificate does not change."""
    client, old = deployment.client, _state(deployment)
    service = find_service(client, SERVICE)
    original = service["Spec"]
    config = deployment.running_config()
    config["http"]["tls"] = {"certificate": "/run/secrets/pinned.crt", "key": "/run/secrets/pinned.key"}
    text = yaml.safe_dump(config).encode()
    name = sd.versioned_name(SERVICE, "pinned", rc.content_hash(text.decode()))
    config_id, _ = sd.ensure_object(client, "config", name, text, "test")
    refs = sd.references(original, "secret")
    pinned = [
        {**refs[rc.CERT_TARGET], "File": {**refs[rc.CERT_TARGET]["File"], "Name": "/run/secrets/pinned.crt"}},
        {**refs[rc.KEY_TARGET], "File": {**refs[rc.KEY_TARGET]["File"], "Name": "/run/secrets/pinned.key"}},
    ]
    _apply_with_config(client, service["ID"], sd.with_references(original, "secret", pinned), config_id, name)
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
    assert again.status == "succeeded" and again.result["changed"] == [], job_logs(again)
