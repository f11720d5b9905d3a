"""Berth deployed as users run it: the image built, ``docker stack deploy -c stack.yml`` on a Swarm.

One ``devstack up --swarm --with-berth-image`` per module (the base image comes from the
machine-wide cache after the first run), then the stack exactly as the README deploys it
(:mod:`devstack.stackdeploy`). The nginx front runs ``deploy/nginx.conf`` (its two ports
changed) in Debian's nginx, since no image can be pulled here; most tests talk to Berth's
loopback port as the front does, one goes through the front. Run under the machine-wide flock. Figures
(time to healthy, longest time answering with an error during an update) are printed;
run with ``-s`` to see them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.stackdeploy import SERVICE, BerthStack
from tests.helpers import DEMO, running_devstack

pytestmark = [pytest.mark.swarm]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Iterator[BerthStack]:
    with running_devstack(tmp_path_factory, "deploy", berth_image=True) as (_, env):
        stack = BerthStack(env, env["BERTH_IMAGE"])
        stack.prepare()
        began = time.monotonic()
        stack.deploy()
        stack.healthy_after = stack.wait_healthy()
        print(f"\ndocker stack deploy -> healthy Berth: {time.monotonic() - began:.1f}s")
        try:
            yield stack
        finally:
            stack.remove()


def login(stack: BerthStack, username: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    page = session.get(f"{stack.base_url}/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "no CSRF token on /login"
    data = {"username": username, "password": DEMO[username][0], "csrf_token": token.group(1)}
    answer = session.post(f"{stack.base_url}/login", data=data, timeout=10, allow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]
    return session


def status(stack: BerthStack, want=lambda parts: True, timeout: float = 60) -> dict:
    """``/api/v1/status`` as olivia once every part has been checked and ``want`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        parts = requests.get(f"{stack.base_url}/api/v1/status", auth=("olivia", "olivia-pw"), timeout=10).json()
        checked = all(parts[k]["state"] not in ("unknown", "stale") for k in ("registry", "nfs", "swarm", "certs"))
        if (checked and want(parts)) or time.monotonic() > deadline:
            return parts
        time.sleep(0.5)


def test_the_front_serves_berth_over_tls(deployed):
    """stack.yml's front: TLS verified with the devstack CA, X-Forwarded-Proto believed, a login, static caching."""
    ca = Path(deployed.env["DEVSTACK_STATE_DIR"]) / "ca" / "ca.crt"  # signed the front's certificate (tls/server.crt)
    print(f"\n[figures] the front answers over TLS {deployed.wait_front(ca):.1f}s after Berth")
    front = requests.Session()
    front.trust_env, front.verify = False, str(ca)
    page = front.get(f"{deployed.front_url}/login", timeout=10)
    assert page.status_code == 200, page.text[:300]
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")  # https, as the front told Berth
    direct = requests.get(f"{deployed.base_url}/login", timeout=10)
    assert "Strict-Transport-Security" not in direct.headers  # plain HTTP straight to Berth: no HSTS
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token, "no CSRF token on /login"
    data = {"username": "dave", "password": DEMO["dave"][0], "csrf_token": token.group(1)}
    browser = {"Origin": deployed.front_url, "Referer": f"{deployed.front_url}/login"}  # HTTPS: CSRF checks them
    answer = front.post(f"{deployed.front_url}/login", data=data, headers=browser, timeout=10, allow_redirects=False)
    assert answer.status_code == 303, answer.text[:300]
    assert front.get(f"{deployed.front_url}/repositories", timeout=10).status_code == 200
    css = front.get(f"{deployed.front_url}/static/css/berth.css", timeout=10)
    assert css.status_code == 200 and css.headers["Cache-Control"] == "public, max-age=86400"
    front.close()


def test_the_service_runs_locked_down(deployed):
    spec = json.loads(deployed.docker("service", "inspect", SERVICE))[0]["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert spec["User"].startswith("10001:")
    assert spec["ReadOnly"] is True
    assert spec["CapabilityDrop"] == ["ALL"]
    assert {m["Target"]: m["Type"] for m in spec["Mounts"]}["/tmp"] == "tmpfs"
    assert {s["File"]["Name"] for s in spec["Secrets"]} == {"berth_secret_key", "berth_ldap_bind_password"}
    assert "security_opt" in deployed.warnings  # Debian's docker 20.10 cannot pass no-new-privileges
    assert deployed.exec("id", "-u").strip() == "10001"
    denied = deployed.docker("exec", deployed.container(), "sh", "-c", "touch /opt/x 2>&1 || echo refused")
    assert "refused" in denied and "Read-only file system" in denied
    assert deployed.healthy_after < 60


def test_olivia_sees_the_four_panels_with_the_swarm_through_the_socket(deployed):
    session = login(deployed, "olivia")
    page = session.get(f"{deployed.base_url}/health", timeout=10).text
    for panel in ("registry", "nfs", "swarm", "certs"):
        assert f'id="panel-{panel}"' in page
    # The devstack registry lets anyone push (a critical finding, by design): check that it answers.
    answers = lambda p: (p["registry"].get("details") or {}).get("latency_ms") is not None  # noqa: E731
    parts = status(deployed, lambda p: p["swarm"]["ok"] and answers(p))
    swarm = parts["swarm"]["details"]
    assert swarm["docker_host"] == "unix:///var/run/docker.sock"
    assert swarm["service_name"] == "registry" and swarm["manager"] is True
    assert answers(parts) and parts["certs"]["ok"], parts
    mount = parts["nfs"]["details"]["mount"]
    assert "ro" in mount["options"], mount  # Berth sees the registry's storage read-only


def test_dave_browses_the_catalog(deployed):
    session = login(deployed, "dave")
    listing = session.get(f"{deployed.base_url}/repositories", timeout=10).text
    assert "centos" in listing and "team/app/api" in listing
    tags = requests.get(f"{deployed.base_url}/api/v1/repositories/centos/tags", auth=("dave", "dave-pw"), timeout=10)
    assert "latest" in {t["tag"] for t in tags.json()["tags"]}
    page = session.get(f"{deployed.base_url}/repositories/centos/tags/latest", timeout=10)
    assert page.status_code == 200 and "docker pull" in page.text


def test_backup_of_the_running_database(deployed):
    out = deployed.exec("flask", "--app", "app", "backup", "/tmp/berth-backup.db")
    assert "audit:" in out and "sessions:" in out
    assert re.search(r"audit: [1-9]\d* rows", out), out  # the logins above are in it


def run_job(deployed: BerthStack, kind: str) -> dict:
    answer = requests.post(
        f"{deployed.base_url}/api/v1/jobs", json={"kind": kind}, auth=("alice", "alice-pw"), timeout=10
    )
    assert answer.status_code == 202, answer.text
    return answer.json()


def job(deployed: BerthStack, job_id: int) -> dict:
    url = f"{deployed.base_url}/api/v1/jobs/{job_id}"
    return requests.get(url, auth=("alice", "alice-pw"), timeout=10).json()


def test_alice_rotates_the_registry_certificate(deployed):
    started = run_job(deployed, "rotate-certs")
    deadline = time.monotonic() + 120
    while (record := job(deployed, started["id"]))["status"] not in ("succeeded", "failed", "interrupted"):
        assert time.monotonic() < deadline, record
        time.sleep(1)
    assert record["status"] == "succeeded", json.dumps(record["steps"])[-800:]
    deployed.rotated_job = record["id"]


def watch_errors(url: str, stop: threading.Event, out: dict) -> None:
    """Poll ``url`` every 50 ms until ``stop``; record the longest run of failed answers."""
    longest = current = 0.0
    began_failing = None
    with requests.Session() as session:
        session.trust_env = False
        while not stop.is_set():
            try:
                ok = session.get(url, timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            now = time.monotonic()
            if ok:
                began_failing = None
            else:
                began_failing = began_failing or now
                current = now - began_failing
                longest = max(longest, current)
            time.sleep(0.05)
    out["longest"] = longest


def test_an_upgrade_keeps_sessions_jobs_and_audit(deployed):
    dave = login(deployed, "dave")
    cut = run_job(deployed, "rotate-certs")  # still running when the update stops Berth
    deployed.docker("tag", deployed.image, "berth:devstack-v2")
    stop, figures = threading.Event(), {}
    watcher = threading.Thread(target=watch_errors, args=(f"{deployed.base_url}/healthz", stop, figures))
    watcher.start()
    try:
        deployed.docker("service", "update", "--detach=false", "--image", "berth:devstack-v2", SERVICE, timeout=180)
        deployed.wait_healthy()
        time.sleep(1)
    finally:
        stop.set()
        watcher.join(10)
    print(f"\nservice update: longest time answering with an error {figures['longest']:.2f}s")
    assert figures["longest"] < 60
    assert "berth:devstack-v2" in deployed.docker("service", "inspect", "--format", "{{json .Spec}}", SERVICE)
    page = dave.get(f"{deployed.base_url}/", timeout=10, allow_redirects=False)
    assert page.status_code == 200 and "dave" in page.text  # the session survived
    assert job(deployed, deployed.rotated_job)["status"] == "succeeded"
    deadline = time.monotonic() + 60  # marked once its heartbeat is stale
    while (record := job(deployed, cut["id"]))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, record
        time.sleep(1)
    assert record["status"] == "interrupted", record
    assert record["finished_at"] and any(step["status"] == "interrupted" for step in record["steps"]), record
    audit = login(deployed, "alice").get(f"{deployed.base_url}/audit", timeout=10).text
    for who in ("olivia", "dave", "alice"):
        assert who in audit
