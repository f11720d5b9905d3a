"""Admin jobs: registry setup and certificate rotation, with a live view of their steps."""

from __future__ import annotations

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from berth.errors import Conflict
from berth.jobs.kinds import JobKind
from berth.roles import Role
from blueprints import services
from blueprints.access import client_address, requires

bp = Blueprint("jobs", __name__)

STOP_POLLING = 286  # htmx stops polling when a response has this status


@bp.route("/jobs")
@requires(Role.ADMIN)
def jobs():
    """Every job, newest first, with the buttons that start new ones."""
    svc = services()
    return render_template(
        "jobs.html",
        jobs=svc.jobs.recent(50),
        active={kind: svc.jobs.active(kind) for kind in JobKind},
        grace_hours=svc.settings.ca_grace_hours,
    )


@bp.route("/jobs/setup/plan")
@requires(Role.ADMIN)
def setup_plan():
    """What the setup job would keep, create or change, before the admin confirms it."""
    from berth.jobs.setup import plan

    return render_template("setup_plan.html", plan=plan(services().settings))


@bp.route("/jobs", methods=["POST"])
@requires(Role.ADMIN)
def create():
    """Start a job from the jobs page; a second one of a kind gets 409 and a link to the first."""
    kind = JobKind.parse(request.form.get("kind", ""))
    options = kind.options(request.form.get("confirm") == "yes")
    try:
        job = services().runner.submit(kind, current_user.username, client_address(), options)
    except Conflict as exc:
        active = services().jobs.active(kind)
        page = render_template("jobs_conflict.html", message=exc.message, active=active)
        return page, 409
    return redirect(url_for("jobs.job", job_id=job.id), code=303)


@bp.route("/jobs/<int:job_id>")
@requires(Role.ADMIN)
def job(job_id: int):
    """One job's steps and their live log."""
    return render_template("job.html", job=services().jobs.get(job_id))


@bp.route("/jobs/<int:job_id>/status")
@requires(Role.ADMIN)
def status(job_id: int):
    """The steps fragment; polling stops (286) once the job has ended."""
    record = services().jobs.get(job_id)
    if request.headers.get("HX-Request") != "true":
        abort(404)
    response = make_response(render_template("partials/job_status.html", job=record))
    if record.finished:
        response.status_code = STOP_POLLING
    return response
