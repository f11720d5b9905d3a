"""Several nodes: setup with two replicas, then pulls through the balancer that never fail during rotations.

One ``devstack up --nodes 3`` per module (three engines, each in its own network, mount
and UTS namespaces, one Swarm, nginx in front). The jobs take over the devstack's
``registry`` service (same port, the balancer's) and run through the real JobStore and
JobRunner. A client pulls the self-test image through the balancer every 100 ms during
``rotate-certs`` and ``rotate-ca``: a new TLS connection verified against the CA for each
pull, the manifest and every blob checked against their digests. Figures are printed; run
with ``-s``.

Berth's own HTTPS (the token realm clients fetch tokens from) has a certificate from a CA
of its own, as a company's web server would: replacing the registry's CA must not touch it.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.serving import make_server

from berth.audit import AuditLog
from berth.config import Settings
from berth.db import Database
from berth.errors import BerthError
from berth.jobs.kinds import job_definitions
from berth.jobs.store import JobRecord, JobStore
from berth.registry.client import RegistryClient
from berth.swarm.inspect import docker_client, find_service
from berth.swarm.nodecheck import apply_storage_labels, check_nodes
from berth.swarm.noderules import STORAGE_LABEL, NodeReport
from berth.tls.authority import Authority
from berth.tls.certs import fingerprint, served_certificate
from berth.tls.issue import create_ca, issue_server_certificate, load_ca, write_private
from devstack.nodes import set_storage
from devstack.ports import free_port
from tests.helpers import AuthActions, job_logs, make_app, need, run_job, running_devstack

NODES = 3
# A seeded image (devstack pushes it before setup turns auth on; the self-test image is deleted after setup).
REPOSITORY, TAG = "centos", "latest"
PULLER = ("dave", "dave-pw")  # developers pull everything; with token auth on, pulls need an account
pytestmark = [pytest.mark.swarm]


@dataclass
class Cluster:
    """The settings the jobs run with, their store, a client of the manager, the devstack."""

    settings: Settings
    store: JobStore
    client: object
    state_dir: Path
    env: dict[str, str]
    web_ca: Path  # the CA of Berth's own HTTPS certificate

    def registry(self, username: str = "alice", password: str = "alice-pw", ca: Path | None = None) -> RegistryClient:  # noqa: S107
        """A client of the registry through the balancer (trusting ``ca``, default Berth's ``ca.crt``), with tokens."""
        s = self.settings
        realms = (s.public_url,) if s.public_url else ()
        bundle = self.state_dir / f"client-{threading.get_ident()}.pem"
        bundle.write_bytes((ca or s.ca_dir / "ca.crt").read_bytes() + self.web_ca.read_bytes())
        return RegistryClient(s.registry_url, ca_bundle=bundle, username=username,
                              password=password, timeout=5.0, token_realms=realms)  # fmt: skip

    def run(self, kind: str, options: dict | None = None, settings: Settings | None = None) -> JobRecord:
        """Queue and run one job of ``kind`` to its end (with other ``settings``); print its duration."""
        return run_job(self.store, job_definitions(settings or self.settings), kind, options)

    def task_nodes(self) -> list[str]:
        """Hostnames of the nodes running a registry task now."""
        service = find_service(self.client, self.settings.swarm_service)
        names = {n["ID"]: n["Description"]["Hostname"] for n in self.client.api.nodes()}
        tasks = self.client.api.tasks(filters={"service": service["ID"], "desired-state": "running"})
        return sorted(names[t["NodeID"]] for t in tasks if t["Status"]["State"] == "running")

    def skopeo(self) -> str:
        """``skopeo inspect`` of the self-test image through the balancer, with the CA; its digest."""
        cert_dir = self.state_dir / "skopeo-certs"
        cert_dir.mkdir(exist_ok=True)
        shutil.copy(self.settings.ca_dir / "ca.crt", cert_dir / "ca.crt")
        shutil.copy(self.web_ca, cert_dir / "berth-web-ca.crt")  # every *.crt there is a trusted CA
        ref = f"docker://{self.settings.registry_host}/{REPOSITORY}:{TAG}"
        done = subprocess.run(
            ["skopeo", "inspect", "--cert-dir", str(cert_dir), "--creds", ":".join(PULLER),
             "--format", "{{.Digest}}", ref],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@dataclass(eq=False)  # a Thread must stay hashable
class Puller(threading.Thread):
    """Pulls the self-test image every ``interval`` s until stopped (at most ``limit`` s)."""

    cluster: Cluster
    ca: Path | None = None  # the CA file this client trusts (default: Berth's ca.crt)
    interval: float = 0.1
    limit: float = 300.0
    pulls: int = 0
    failures: list[str] = field(default_factory=list)  # pulls that failed, retry included
    retried: list[str] = field(default_factory=list)  # first attempts that failed (a retry then worked)
    longest: float = 0.0  # the longest time between the ends of two good pulls
    slowest: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def pull(self) -> None:
        """One pull on new connections: the manifest and each blob, each checked against its digest."""
        client = self.cluster.registry(*PULLER, ca=self.ca)
        try:
            manifest = json.loads(client.manifest(REPOSITORY, TAG).data)
            for blob in [manifest["config"], *manifest["layers"]]:
                client.blob(REPOSITORY, blob["digest"])
        finally:
            client.close()

    def run(self) -> None:
        began = last_ok = time.monotonic()
        while not self.stop.is_set() and time.monotonic() - began < self.limit:
            start = time.monotonic()
            try:
                self._pull_with_one_retry(start - began)
            except (BerthError, OSError, ValueError, KeyError) as exc:
                self.failures.append(f"{start - began:.2f}s: {type(exc).__name__}: {exc}"[:300])
            else:
                now = time.monotonic()
                self.longest, last_ok = max(self.longest, now - last_ok), now
                self.slowest = max(self.slowest, now - start)
            self.pulls += 1
            self.stop.wait(self.interval)

    def _pull_with_one_retry(self, at: float) -> None:
        """A pull, tried again once after 0.1 s, as a client does whose connection was cut."""
        try:
            self.pull()
        except (BerthError, OSError, ValueError, KeyError) as exc:
            self.retried.append(f"{at:.2f}s: {type(exc).__name__}: {exc}"[:300])
            time.sleep(0.1)
            self.pull()

    def report(self, what: str) -> str:
        """One line of figures."""
        return (f"[figures] {what}: {self.pulls} pulls, {len(self.failures)} failed, "
                f"{len(self.retried)} needed a retry, longest pause between "
                f"good pulls {self.longest:.2f} s, slowest pull {self.slowest:.2f} s"
                + "".join(f"\n  first try failed at {line}" for line in self.retried[:5])
                + "".join(f"\n  FAILED at {line}" for line in self.failures[:5]))  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running ``devstack up --nodes 3`` and settings whose jobs manage its registry service."""
    if not shutil.which("skopeo"):
        need("skopeo is not installed")
    began = time.monotonic()
    with running_devstack(tmp_path_factory, "nodes", nodes=NODES) as (state_dir, env):
        print(f"\n[figures] devstack up --nodes {NODES}: {time.monotonic() - began:.1f} s")
        environment = {k: v for k, v in env.items() if k.startswith(("BERTH_", "DOCKER_"))}
        root = tmp_path_factory.mktemp("multinode")
        port = free_port()
        environment |= {
            "BERTH_DATA_DIR": str(root / "data"),
            "BERTH_SWARM_CONVERGE_TIMEOUT": "90",
            "BERTH_PUBLIC_URL": f"https://127.0.0.1:{port}",  # setup makes Berth the registry's token server
            "BERTH_BACKGROUND": "false",
        }
        settings = Settings.from_env(environment)
        # Berth serves the token realm over HTTPS (clients ask it; the registry never), from a CA of its own.
        web_ca = create_ca(root / "web-ca")
        web_cert = issue_server_certificate(web_ca, load_ca(root / "web-ca")[1], ["127.0.0.1"], 30)
        (root / "web.crt").write_bytes(web_cert.certificate_pem)
        write_private(root / "web.key", web_cert.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(root / "web.crt"), str(root / "web.key"))
        server = make_server("127.0.0.1", port, make_app(settings), threaded=True, ssl_context=context)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        db = Database(settings.database_path)
        client = docker_client(settings.docker_host, timeout=30)
        try:
            yield Cluster(settings, JobStore(db, AuditLog(db)), client, state_dir, env, root / "web-ca" / "ca.crt")
        finally:
            server.shutdown()
            thread.join(5)
            client.close()


def test_devstack_nodes_are_separate(cluster: Cluster) -> None:
    nodes = cluster.client.api.nodes()
    assert sorted(n["Description"]["Hostname"] for n in nodes) == [f"node{i}" for i in range(1, NODES + 1)]
    assert {n["Status"]["State"] for n in nodes} == {"ready"}
    assert len({n["Status"]["Addr"] for n in nodes}) == NODES
    assert len(set(cluster.task_nodes())) == 2  # the devstack's two replicas, on two nodes


def test_setup_with_two_replicas(cluster: Cluster) -> None:
    assert cluster.settings.registry_replicas == 2
    job = cluster.run("setup", {"confirm": True})  # the devstack registry is open: setup turns auth on
    assert job.status == "succeeded", job_logs(job)
    spec = find_service(cluster.client, cluster.settings.swarm_service)["Spec"]
    assert spec["Mode"] == {"Replicated": {"Replicas": 2}}
    assert spec["TaskTemplate"]["Placement"]["MaxReplicas"] == 1
    assert spec["UpdateConfig"]["Parallelism"] == 1 and spec["UpdateConfig"]["Order"] == "stop-first"
    running = cluster.task_nodes()
    assert len(running) == 2 and len(set(running)) == 2
    assert cluster.skopeo().startswith("sha256:")  # a seeded image pulls, through Berth's tokens
    again = cluster.run("setup")
    assert again.status == "succeeded" and again.result["changed"] == [], job_logs(again)


def test_no_pull_fails_during_rotate_certs(cluster: Cluster) -> None:
    digest = cluster.skopeo()
    puller = Puller(cluster)
    puller.start()
    try:
        time.sleep(1.0)  # a baseline before the rotation starts
        job = cluster.run("rotate-certs")
        time.sleep(1.0)
    finally:
        puller.stop.set()
        puller.join(timeout=30)
    print(puller.report("pulls through the balancer during rotate-certs on 2 replicas"))
    assert job.status == "succeeded", job_logs(job)
    assert puller.pulls >= 20
    # 0 failed pulls. A first try may still meet a replica closing its listener with a connection
    # queued (reset inside the TLS handshake): the client tries once more after 0.1 s (counted apart).
    assert puller.failures == []
    assert cluster.skopeo() == digest
    assert len(set(cluster.task_nodes())) == 2


def _catalog(cluster: Cluster) -> list[str]:
    client = cluster.registry()
    try:
        return client.catalog()
    finally:
        client.close()


def _ca_fingerprint(cluster: Cluster) -> str:
    return fingerprint(x509.load_pem_x509_certificate((cluster.settings.ca_dir / "ca.crt").read_bytes()))


def _check(cluster: Cluster) -> dict[str, NodeReport]:
    began = time.monotonic()
    reports = check_nodes(cluster.client, cluster.settings, _catalog(cluster), [_ca_fingerprint(cluster)])
    print(f"\n[figures] node checks (a global-job on {len(reports)} nodes): {time.monotonic() - began:.1f} s")
    return {r.node: r for r in reports}


def test_node_checks_report_every_node(cluster: Cluster) -> None:
    reports = _check(cluster)
    assert sorted(reports) == [f"node{i}" for i in range(1, NODES + 1)]
    for report in reports.values():
        assert report.nfs.ok and report.ca.ok, report.as_dict()
        assert report.nfs.details["missing_count"] == 0 and report.nfs.details["expected"] >= 5
        assert "not on NFS" in report.nfs.findings[0].message  # devstack has no kernel NFS


def test_a_node_without_the_shared_storage_is_labelled_and_loses_its_task(cluster: Cluster) -> None:
    storage = cluster.settings.nfs_path
    victim = cluster.task_nodes()[0]
    set_storage(cluster.state_dir, victim, storage, local=True)  # the fstab `bg` trap
    try:
        reports = _check(cluster)
        assert not reports[victim].nfs.ok and "are not in" in str(reports[victim].as_dict())
        assert all(r.nfs.ok for name, r in reports.items() if name != victim)
        changes = apply_storage_labels(cluster.client, list(reports.values()))
        assert changes == [f"{victim}: labelled {STORAGE_LABEL}=bad, the registry moves off it"]
        assert reports[victim].labels[STORAGE_LABEL] == "bad"
        running = cluster.task_nodes()
        deadline = time.monotonic() + 60
        while (victim in running or len(running) != 2) and time.monotonic() < deadline:  # Swarm moves it off
            running = cluster.task_nodes()
            time.sleep(0.5)
        assert victim not in running and len(set(running)) == 2
    finally:
        set_storage(cluster.state_dir, victim, storage, local=False)
    reports = _check(cluster)
    assert reports[victim].nfs.ok
    assert apply_storage_labels(cluster.client, list(reports.values())) == [
        f"{victim}: storage passes, label {STORAGE_LABEL} lifted"
    ]
    assert STORAGE_LABEL not in reports[victim].labels


def test_distribute_ca_fixes_a_node_without_the_ca(cluster: Cluster) -> None:
    host = cluster.settings.registry_host
    node_ca = cluster.state_dir / "nodes" / "node2" / "certs.d" / host / "ca.crt"
    node_ca.unlink()
    reports = _check(cluster)
    assert not reports["node2"].ca.ok and "missing" in reports["node2"].ca.findings[0].message
    assert reports["node1"].ca.ok
    job = cluster.run("distribute-ca")
    assert job.status == "succeeded", job_logs(job)
    assert job.result["nodes"] == {f"node{i}": True for i in range(1, NODES + 1)}
    assert node_ca.read_bytes() == (cluster.settings.ca_dir / "ca.crt").read_bytes()
    assert _check(cluster)["node2"].ca.ok


def test_status_and_health_show_every_node(cluster: Cluster) -> None:
    settings = cluster.settings.replace(background=False)
    client = make_app(settings).test_client()
    body = client.get("/api/v1/status", auth=("olivia", "olivia-pw")).get_json()
    nodes = {n["node"]: n for n in body["nodes"]}
    assert sorted(nodes) == [f"node{i}" for i in range(1, NODES + 1)]
    for node in nodes.values():
        assert node["nfs"]["state"] == "warning" and node["ca"]["state"] == "healthy", node  # warning: not NFS
        assert node["nfs"]["ok"] and isinstance(node["labels"], dict)
    AuthActions(client).login("olivia")
    page = client.get("/health").get_data(as_text=True)
    assert "<h2>Nodes</h2>" in page and all(f"<td>node{i}</td>" in page for i in range(1, NODES + 1))


def _certs_in(path: Path) -> list[str]:
    return [fingerprint(c) for c in x509.load_pem_x509_certificates(path.read_bytes())]


def test_a_failed_roll_onto_the_new_ca_puts_the_old_one_back(cluster: Cluster) -> None:
    """The roll times out (no roll converges in 0.5 s): old certificate and CA back, the new CA staged."""
    settings = cluster.settings
    old = _ca_fingerprint(cluster)
    job = cluster.run("rotate-ca", settings=settings.replace(swarm_converge_timeout=0.5))
    assert job.status == "failed", job_logs(job)
    assert "stays staged: run rotate-ca again" in job_logs(job)
    state = Authority(settings.ca_dir).state()
    assert state is not None and state.phase == "trusted" and state.old == old
    assert _certs_in(settings.ca_dir / "ca.crt") == [old, state.new]  # the old CA issues; Berth verifies either
    only_old = cluster.state_dir / "only-old-ca.crt"
    only_old.write_bytes(x509.load_pem_x509_certificates((settings.ca_dir / "ca.crt").read_bytes())[0].public_bytes(
        serialization.Encoding.PEM))  # fmt: skip
    handshakes = [served_certificate(settings.registry_url, only_old) for _ in range(6)]  # every replica, round-robin
    assert all(h.verified for h in handshakes), [h.error for h in handshakes if not h.verified] + [job_logs(job)]
    assert cluster.skopeo().startswith("sha256:")


def test_rotate_ca_with_overlap_and_no_failed_pull(cluster: Cluster) -> None:
    """rotate-ca on 2 replicas, resumed from a staged CA, with a client on node1 trusting what node1 holds."""
    settings = cluster.settings
    node_ca = {f"node{i}": cluster.state_dir / "nodes" / f"node{i}" / "certs.d" / settings.registry_host / "ca.crt"
               for i in range(1, NODES + 1)}  # fmt: skip
    old = _ca_fingerprint(cluster)
    assert all(old in _certs_in(path) for path in node_ca.values())
    staged = Authority(settings.ca_dir).stage(settings.registry_hostnames)  # kept from the failed run before
    digest = cluster.skopeo()
    puller = Puller(cluster, ca=node_ca["node1"])
    puller.start()
    try:
        time.sleep(1.0)  # a baseline before the rotation starts
        overlap = cluster.run("rotate-ca")
        assert overlap.status == "succeeded", job_logs(overlap)
        assert "Resuming the CA rotation" in job_logs(overlap) and overlap.result["ca"]["new"] == staged.new
        assert overlap.result["ca"]["phase"] == "overlap"
        assert all(_certs_in(path) == [staged.new, old] for path in node_ca.values())
        assert _certs_in(settings.ca_dir / "ca.crt") == [staged.new, old]
        trust = _trust_page(cluster)
        assert "The CA is being replaced" in trust and staged.new in trust and old in trust
        waiting = cluster.run("rotate-ca")  # no confirm, grace period not over: nothing changes
        assert waiting.status == "succeeded" and "stays trusted until" in job_logs(waiting), job_logs(waiting)
        assert all(_certs_in(path) == [staged.new, old] for path in node_ca.values())
        done = cluster.run("rotate-ca", {"confirm": True})
        assert done.status == "succeeded", job_logs(done)
        time.sleep(1.0)
    finally:
        puller.stop.set()
        puller.join(timeout=30)
    print(puller.report("pulls through the balancer during rotate-ca on 2 replicas (all three runs)"))
    assert puller.pulls >= 20
    assert puller.failures == []
    assert all(_certs_in(path) == [staged.new] for path in node_ca.values())
    assert _certs_in(settings.ca_dir / "ca.crt") == [staged.new] and Authority(settings.ca_dir).state() is None
    served = served_certificate(settings.registry_url, node_ca["node2"])  # the new CA alone verifies it
    assert served.verified, served.error
    assert cluster.skopeo() == digest
    assert len(set(cluster.task_nodes())) == 2


def _trust_page(cluster: Cluster) -> str:
    client = make_app(cluster.settings.replace(background=False)).test_client()
    AuthActions(client).login("dave")
    return client.get("/trust").get_data(as_text=True)
