"""Reclaiming space on a real registry service: accounting, delete, garbage collection, retention.

One ``devstack up --swarm`` per module; the setup job deploys the module's own registry
service (``berth-life``, host network, a temporary storage directory Berth reads as its
NFS path), so every byte can be measured on disk. Three images share a base layer. The
tests run in order and build on each other: account, delete one image, collect garbage
(pulls work and pushes are refused meanwhile), kill a collection halfway, apply retention.
Figures are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from berth.config import Settings
from berth.jobs.kinds import job_definitions
from berth.jobs.selftest import selftest_image
from berth.jobs.store import JobRecord
from berth.storage.disk import blob_usage
from berth.swarm import maintenance
from berth.swarm.inspect import docker_client, find_service
from devstack.ports import free_port
from tests.helpers import AuthActions, job_logs, make_app, need, run_job, running_devstack
from tests.lifecycle_images import Pushed, layer, pull, push

SERVICE = "berth-life"
pytestmark = [pytest.mark.swarm]


@dataclass
class Life:
    """The module's registry, app, and what was pushed."""

    settings: Settings
    app: object
    client: object
    root: Path
    images: dict[str, Pushed] = field(default_factory=dict)

    def token(self) -> str:
        """A registry token from Berth for alice on the test's repositories (setup turned token auth on)."""
        scopes = [f"repository:{name}:pull,push,delete" for name in ("life/app", "life/other", "life/probe")]
        query = {"service": self.settings.registry_service or self.settings.registry_host, "scope": scopes}
        answer = self.app.test_client().get("/auth/token", query_string=query, auth=("alice", "alice-pw"))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()["token"]

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.settings.ca_dir / "ca.crt")
        session.headers["Authorization"] = f"Bearer {self.token()}"
        return session

    def run(self, kind: str, options: dict) -> JobRecord:
        """Record and run one job through the app's store, as a worker would; print its figures."""
        store = self.app.extensions["berth"].jobs
        return run_job(store, job_definitions(self.settings), kind, options, show_result=True)

    def skopeo_copy(self, repository: str, tag: str) -> None:
        cert_dir = self.root / "certs.d"
        cert_dir.mkdir(exist_ok=True)
        shutil.copy(self.settings.ca_dir / "ca.crt", cert_dir / "ca.crt")
        target = self.root / f"copy-{repository.replace('/', '-')}-{tag}"
        shutil.rmtree(target, ignore_errors=True)
        done = subprocess.run(
            ["skopeo", "copy", "--src-cert-dir", str(cert_dir), "--src-registry-token", self.token(),
             f"docker://{self.settings.registry_host}/{repository}:{tag}", f"dir:{target}"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def life(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Life]:
    """The devstack, the module's registry deployed by the setup job, three images sharing a layer."""
    if not shutil.which("skopeo"):
        need("skopeo is not installed")
    with running_devstack(tmp_path_factory, "swarm-life", swarm=True) as (_, env):
        root = tmp_path_factory.mktemp("life")
        (root / "nfs").mkdir()
        environment = {k: v for k, v in env.items() if k.startswith(("BERTH_", "DOCKER_"))}
        for name in ("BERTH_REGISTRY_CA", "BERTH_PUBLIC_URL", "BERTH_REGISTRY_USERNAME", "BERTH_REGISTRY_PASSWORD"):
            environment.pop(name, None)
        (root / "rules.yml").write_text('rules:\n  - repositories: "life/*"\n    keep_newest: 0\n')
        environment |= {
            "BERTH_DATA_DIR": str(root / "data"), "BERTH_CA_DIR": str(root / "ca"), "BERTH_NFS_PATH": str(root / "nfs"),
            "BERTH_REGISTRY_URL": f"https://127.0.0.1:{free_port()}", "BERTH_SWARM_SERVICE": SERVICE,
            "BERTH_SWARM_HOST_NETWORK": "true", "BERTH_SWARM_CONVERGE_TIMEOUT": "60", "BERTH_BACKGROUND": "false",
            "BERTH_RETENTION_RULES": str(root / "rules.yml"),
            # Setup makes Berth the registry's token server; clients here get tokens from the app in-process.
            "BERTH_PUBLIC_URL": f"https://127.0.0.1:{free_port()}",
        }  # fmt: skip
        settings = Settings.from_env(environment)
        app = make_app(settings)
        client = docker_client(settings.docker_host, timeout=30)
        life = Life(settings, app, client, root)
        setup = life.run("setup", {"confirm": True})
        assert setup.status == "succeeded", job_logs(setup)
        life.settings = settings = Settings.from_env(environment)  # now BERTH_REGISTRY_CA finds the new CA
        life.app = make_app(settings)
        base, big = layer("base", 300_000), [layer(f"own-{i}", 100_000 + 20_000 * i) for i in range(3)]
        with life.session() as s:
            url = settings.registry_url
            life.images["app1"] = push(s, url, "life/app", "1", [base, big[0]], "2024-01-01T00:00:00Z")
            life.images["app2"] = push(s, url, "life/app", "2", [base, big[1]], "2024-02-01T00:00:00Z")
            life.images["other"] = push(s, url, "life/other", "latest", [base, big[2]], "2024-03-01T00:00:00Z")
        yield life
        client.close()


def test_accounting_matches_the_manifests_exactly(life: Life) -> None:
    images = life.images
    response = life.app.test_client().get("/api/v1/storage", auth=("olivia", "olivia-pw"))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    repos = {r["name"]: r for r in body["repositories"]}
    base = next(iter(set(images["app1"].blobs) & set(images["other"].blobs)))
    base_size = images["other"].blobs[base]
    app_blobs = {**images["app1"].blobs, **images["app2"].blobs}
    assert repos["life/app"] == {"name": "life/app", "tags": 2, "images": 2, "shared_bytes": base_size,
                                 "unique_bytes": sum(app_blobs.values()) - base_size}  # fmt: skip
    assert repos["life/other"]["unique_bytes"] == sum(images["other"].blobs.values()) - base_size
    assert repos["life/other"]["shared_bytes"] == base_size
    everything = {**app_blobs, **images["other"].blobs}
    assert body["referenced_bytes"] == sum(everything.values())
    # On disk besides: only the self-test image, whose manifest setup deleted after checking it (GC reclaims it).
    orphans = sum(len(blob) for blob in selftest_image())
    assert blob_usage(life.settings.nfs_path).blob_bytes == body["referenced_bytes"] + orphans
    assert life.app.test_client().get("/api/v1/storage", auth=("dave", "dave-pw")).status_code == 403


def test_delete_lists_tags_and_services_and_is_audited(life: Life) -> None:
    spec = {"ContainerSpec": {"Image": f"{life.settings.registry_host}/life/app:2"}}
    life.client.api.create_service(spec, name="life-user", mode={"Replicated": {"Replicas": 0}})
    web = life.app.test_client()
    AuthActions(web).login("alice")
    digest = life.images["app2"].digest
    page = web.get(f"/repositories/life/app/images/{digest}/delete")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "life-user" in text and ">2</span>" in text
    digest = life.images["app1"].digest
    web = life.app.test_client()  # the API with Basic credentials, no session cookie
    refused = web.delete(f"/api/v1/repositories/life/app/images/{digest}", auth=("olivia", "olivia-pw"))
    assert refused.status_code == 403
    done = web.delete(f"/api/v1/repositories/life/app/images/{digest}", auth=("alice", "alice-pw"))
    assert done.status_code == 200, done.get_data(as_text=True)
    assert done.get_json() == {"deleted": f"life/app@{digest}", "tags": ["1"]}
    audit = life.app.extensions["berth"].audit.recent(5)
    assert any(e.action == "image" and e.outcome == "deleted" and digest in e.detail for e in audit)


class Traffic(threading.Thread):
    """Pulls life/app:2 (digests verified) and starts a push, every 100 ms; records when and how each went."""

    def __init__(self, life: Life):
        super().__init__(daemon=True)
        self.life, self.stop = life, threading.Event()
        self.attempts: list[tuple[float, float, bool, int | None]] = []

    def run(self) -> None:
        url = self.life.settings.registry_url
        while not self.stop.is_set():
            began = time.time()
            with self.life.session() as s:
                try:
                    pulled = pull(s, url, "life/app", "2") == self.life.images["app2"].digest
                except (requests.RequestException, AssertionError):
                    pulled = False
                try:
                    pushed: int | None = s.post(f"{url}/v2/life/probe/blobs/uploads/", timeout=5).status_code
                except requests.RequestException:
                    pushed = None
            self.attempts.append((began, time.time(), pulled, pushed))
            self.stop.wait(0.1)


def test_gc_frees_exactly_the_deleted_images_own_blobs(life: Life) -> None:
    before = blob_usage(life.settings.nfs_path)
    traffic = Traffic(life)
    traffic.start()
    try:
        job = life.run("gc", {"dry_run": False, "delete_untagged": False})
    finally:
        traffic.stop.set()
        traffic.join()
    assert job.status == "succeeded", job_logs(job)
    after = blob_usage(life.settings.nfs_path)
    own = {d: s for d, s in life.images["app1"].blobs.items() if d not in life.images["app2"].blobs}
    assert before.blob_bytes - after.blob_bytes == sum(own.values()) == job.result["bytes_freed"]
    assert before.blobs - after.blobs == len(own) == job.result["blobs_before"] - job.result["blobs_after"]
    step = next(s for s in job.steps if s.name == "Run garbage-collect")
    during = [
        a for a in traffic.attempts if a[0] >= step.started_at.timestamp() and a[1] <= step.finished_at.timestamp()
    ]
    print(f"[figures] {len(during)} pull+push attempts during garbage-collect ({step.finished_at - step.started_at})")
    assert during and all(pulled for _, _, pulled, _ in during), during
    assert {pushed for *_, pushed in during} == {405}, during
    for repository, tag in (("life/app", "2"), ("life/other", "latest")):
        life.skopeo_copy(repository, tag)
    with life.session() as s:
        assert s.post(f"{life.settings.registry_url}/v2/life/probe/blobs/uploads/", timeout=5).status_code == 202


def test_gc_killed_halfway_puts_the_registry_back(life: Life) -> None:
    original = maintenance.config_reference(find_service(life.client, SERVICE)).name
    killed: list[str] = []

    def kill() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for service in life.client.api.services():
                if service["Spec"]["Name"].startswith(f"{SERVICE}-gc-"):
                    life.client.api.remove_service(service["ID"])
                    killed.append(service["Spec"]["Name"])
            time.sleep(0.05)

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    job = life.run("gc", {"dry_run": False, "delete_untagged": False})
    killer.join(5)
    assert killed and job.status == "failed", job_logs(job)
    assert "removed before it finished" in job.error
    assert maintenance.config_reference(find_service(life.client, SERVICE)).name == original
    assert "read-write" in job_logs(job)
    with life.session() as s:
        assert s.post(f"{life.settings.registry_url}/v2/life/probe/blobs/uploads/", timeout=5).status_code == 202


def test_retention_deletes_what_the_dry_run_listed_and_never_a_running_image(life: Life) -> None:
    dry = life.run("retention", {"dry_run": True})
    assert dry.status == "succeeded", job_logs(dry)
    planned = {(d["repository"], d["digest"]) for d in dry.result["plan"]["delete"]}
    kept = {d["digest"]: d["reason"] for d in dry.result["plan"]["keep"]}
    assert planned == {("life/other", life.images["other"].digest)}
    assert kept[life.images["app2"].digest] == "a service on the Swarm runs it"
    web = life.app.test_client()
    AuthActions(web).login("alice")
    page = web.get(f"/retention?job={dry.id}").get_data(as_text=True)
    assert "life/other@" in page and "a service on the Swarm runs it" in page
    applied = life.run("retention", {"dry_run": False, "plan_job": dry.id})
    assert applied.status == "succeeded", job_logs(applied)
    assert {(d["repository"], d["digest"]) for d in applied.result["deleted"]} == planned
    with life.session() as s:
        assert pull(s, life.settings.registry_url, "life/app", "2") == life.images["app2"].digest
        gone = s.get(f"{life.settings.registry_url}/v2/life/other/manifests/latest", timeout=10)
        assert gone.status_code == 404


def test_pages_in_chromium(life: Life) -> None:
    """The storage page and a retention dry run, in Chromium (the README's screenshots with BERTH_SCREENSHOTS=docs)."""
    import os
    import tempfile

    from werkzeug.serving import make_server

    chromium = Path("/usr/bin/chromium")
    if not chromium.is_file():
        need("Chromium is not installed")
    folder = Path("docs/screenshots") if os.environ.get("BERTH_SCREENSHOTS") == "docs" else Path(tempfile.mkdtemp())
    with life.session() as s:
        push(s, life.settings.registry_url, "life/other", "2", [layer("other-2", 80_000)], "2024-04-01T00:00:00Z")
    dry = life.run("retention", {"dry_run": True})
    life.app.extensions["berth"].storage.compute_now()
    server = make_server("127.0.0.1", free_port(), life.app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    failures: list[BaseException] = []

    def drive() -> None:
        # A thread of its own: the browser journeys' session keeps Playwright's sync API (and
        # its event loop) open on the main thread, and a second one may not start there.
        try:
            _storage_screenshots(chromium, base, folder, dry.id)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test's thread
            failures.append(exc)

    try:
        worker = threading.Thread(target=drive)
        worker.start()
        worker.join(180)
        assert not worker.is_alive(), "Chromium did not finish within 180 s"
        if failures:
            raise failures[0]
    finally:
        server.shutdown()


def _storage_screenshots(chromium: Path, base: str, folder: Path, dry_run_job: int) -> None:
    """Log in as alice, look at /storage and the retention dry run, and photograph both."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", "alice-pw")
        page.click("button[type=submit]")
        page.goto(f"{base}/storage")
        assert page.locator("#storage-table").is_visible() and page.locator("svg.chart").count() >= 1
        page.screenshot(path=str(folder / "storage.png"), full_page=True)
        page.goto(f"{base}/retention?job={dry_run_job}")
        assert page.locator("#plan-keep").is_visible()
        page.screenshot(path=str(folder / "retention.png"), full_page=True)
        browser.close()
