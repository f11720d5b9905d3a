"""Admin jobs: registry setup and certificate rotation."""

from __future__ import annotations

from flask import Blueprint, render_template

from berth.roles import Role
from blueprints.access import requires

bp = Blueprint("jobs", __name__)


@bp.route("/jobs")
@requires(Role.ADMIN)
def jobs():
    """Every job, newest first, with the buttons that start new ones."""
    return render_template("coming.html", title="Jobs", area="jobs")


@bp.route("/jobs/<int:job_id>")
@requires(Role.ADMIN)
def job(job_id: int):
    """One job's steps and log."""
    return render_template("coming.html", title=f"Job {job_id}", area="jobs")
