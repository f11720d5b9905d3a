"""The job engine through the web and the API: recording, one at a time, roles, CSRF, interruption.

The steps here are small real functions (the setup and rotation steps are tested
against the Docker engine in test_jobs_swarm.py); the directory is the real slapd.
"""

from __future__ import annotations

import re
import time

import pytest

from berth.errors import JobFailed
from berth.jobs.runner import JobDefinition, Step
from tests.helpers import make_app

pytestmark = pytest.mark.stack

ALICE = ("alice", "alice-pw")


def kinds(record: list):
    def ok(ctx):
        ctx.log("did the thing")
        ctx.result["answer"] = 42

    def boom(ctx):
        raise JobFailed("the registry refused the new certificate")

    def restore(ctx, exc):
        record.append(("restored", str(exc)))
        ctx.log("restored the old state")

    return {
        "setup": JobDefinition("setup", lambda options: [Step("first", ok), Step("second", ok)]),
        "rotate-certs": JobDefinition(
            "rotate-certs", lambda o: [Step("issue", ok), Step("swap", boom), Step("clean", ok)], on_failure=restore
        ),
    }


@pytest.fixture
def restored():
    return []


@pytest.fixture
def app(settings, restored):
    application = make_app(settings)
    application.extensions["berth"].runner._kinds = kinds(restored)
    return application


def run_queued(app):
    runner = app.extensions["berth"].runner
    while runner.run_next():
        pass


def test_job_is_recorded_before_it_runs_then_succeeds(app, client, auth):
    auth.login("alice")
    token = auth.csrf_token("/jobs")
    response = client.post("/jobs", data={"kind": "setup", "csrf_token": token})
    assert response.status_code == 303
    job_id = int(response.headers["Location"].rsplit("/", 1)[1])
    queued = client.get(f"/api/v1/jobs/{job_id}", auth=ALICE).get_json()
    assert queued["status"] == "queued" and queued["requested_by"] == "alice"
    assert [s["status"] for s in queued["steps"]] == ["pending", "pending"]
    run_queued(app)
    done = client.get(f"/api/v1/jobs/{job_id}", auth=ALICE).get_json()
    assert done["status"] == "succeeded" and done["started_at"] and done["finished_at"]
    assert "did the thing" in done["steps"][0]["log"]
    fragment = client.get(f"/jobs/{job_id}/status", headers={"HX-Request": "true"})
    assert fragment.status_code == 286  # htmx stops polling
    audit = client.get("/audit").get_data(as_text=True)
    assert f"setup #{job_id}" in audit and "succeeded" in audit


def test_running_page_polls_until_done(app, client, auth):
    auth.login("alice")
    job = client.post("/api/v1/jobs", json={"kind": "setup"}, auth=ALICE).get_json()
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert f'hx-get="/jobs/{job["id"]}/status"' in page and 'hx-trigger="every 1s"' in page
    assert client.get(f"/jobs/{job['id']}/status", headers={"HX-Request": "true"}).status_code == 200


def test_second_job_of_a_kind_gets_409_with_the_running_id(client):
    first = client.post("/api/v1/jobs", json={"kind": "rotate-certs"}, auth=ALICE)
    assert first.status_code == 202 and first.get_json()["status"] == "queued"
    second = client.post("/api/v1/jobs", json={"kind": "rotate-certs"}, auth=ALICE)
    assert second.status_code == 409 and second.get_json()["id"] == first.get_json()["id"]
    other_kind = client.post("/api/v1/jobs", json={"kind": "setup"}, auth=ALICE)
    assert other_kind.status_code == 202


def test_409_page_links_the_running_job(client, auth):
    auth.login("alice")
    client.post("/api/v1/jobs", json={"kind": "setup"}, auth=ALICE)
    response = client.post("/jobs", data={"kind": "setup", "csrf_token": auth.csrf_token("/jobs")})
    assert response.status_code == 409 and "Watch job" in response.get_data(as_text=True)


def test_failed_step_restores_and_skips_the_rest(app, client, restored):
    job = client.post("/api/v1/jobs", json={"kind": "rotate-certs"}, auth=ALICE).get_json()
    run_queued(app)
    done = client.get(f"/api/v1/jobs/{job['id']}", auth=ALICE).get_json()
    assert done["status"] == "failed" and done["error"] == "the registry refused the new certificate"
    assert [s["status"] for s in done["steps"]] == ["succeeded", "failed", "skipped"]
    assert restored == [("restored", "the registry refused the new certificate")]
    assert "restored the old state" in done["steps"][1]["log"]
    again = client.post("/api/v1/jobs", json={"kind": "rotate-certs"}, auth=ALICE)
    assert again.status_code == 202  # a finished job no longer blocks its kind


@pytest.mark.parametrize("username", ["dave", "olivia"])
def test_only_admins_run_jobs(client, auth, username):
    password = f"{username}-pw"
    assert client.post("/api/v1/jobs", json={"kind": "setup"}, auth=(username, password)).status_code == 403
    auth.login(username)
    assert client.get("/jobs").status_code == 403
    response = client.post("/jobs", data={"kind": "setup", "csrf_token": auth.csrf_token("/")})
    assert response.status_code == 403


def test_web_post_without_csrf_is_refused(client, auth):
    auth.login("alice")
    assert client.post("/jobs", data={"kind": "setup"}).status_code == 400
    assert client.get("/api/v1/jobs/1", auth=ALICE).status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": "kind=setup", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"data": "[1, 2]", "content_type": "application/json"}, 400),
        ({"data": "{not json", "content_type": "application/json"}, 400),
        ({"json": {"kind": 7}}, 400),
        ({"json": {"kind": "setup", "extra": 1}}, 400),
        ({"json": {"kind": "setup", "confirm": "yes"}}, 400),
        ({"json": {"kind": "format-disk"}}, 404),
    ],
)
def test_job_post_with_wrong_shape_changes_nothing(client, kwargs, status):
    response = client.post("/api/v1/jobs", auth=ALICE, **kwargs)
    assert response.status_code == status and "error" in response.get_json()
    assert client.post("/api/v1/jobs", json={"kind": "setup"}, auth=ALICE).get_json()["id"] == 1


def test_job_left_running_is_interrupted_at_next_start(settings, restored):
    first = make_app(settings)
    first.extensions["berth"].runner._kinds = kinds(restored)
    svc = first.extensions["berth"]
    job = svc.jobs.create(svc.runner.kind("setup"), "alice", "127.0.0.1")
    claimed = svc.jobs.claim("worker-that-dies", job.id)
    svc.jobs.step_started(claimed.id, 0)
    time.sleep(1.1)
    second = make_app(settings.replace(job_stale_seconds=1))  # Berth starts again
    record = second.extensions["berth"].jobs.get(job.id)
    assert record.status == "interrupted" and record.error == "Berth stopped during step 'first'."
    assert [s.status for s in record.steps] == ["interrupted", "skipped"]


def test_jobs_page_lists_jobs_with_buttons(app, client, auth):
    client.post("/api/v1/jobs", json={"kind": "setup"}, auth=ALICE)
    run_queued(app)
    auth.login("alice")
    page = client.get("/jobs").get_data(as_text=True)
    assert "Run setup" in page and "Rotate certificate" in page and 'data-confirm="' in page
    assert re.search(r"<td>setup</td>\s*<td>alice</td>", page)


def test_queued_job_survives_a_worker_restart(settings, restored):
    first = make_app(settings)
    first.extensions["berth"].runner._kinds = kinds(restored)
    job_id = first.test_client().post("/api/v1/jobs", json={"kind": "setup"}, auth=ALICE).get_json()["id"]
    del first  # the worker that queued it is gone before running it
    second = make_app(settings)
    second.extensions["berth"].runner._kinds = kinds(restored)
    run_queued(second)
    assert second.extensions["berth"].jobs.get(job_id).status == "succeeded"
