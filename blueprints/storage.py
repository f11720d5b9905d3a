"""Reclaiming space: storage accounting (ops), deleting an image and retention (admins), the read-only banner."""

from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from berth.errors import BerthError, Conflict
from berth.jobs.kinds import JobKind
from berth.roles import Role
from berth.storage.chart import growth, top_bars
from berth.storage.deletion import delete_image, plan_delete
from berth.storage.rules import Rule, load_policy
from blueprints import services
from blueprints.access import client_address, requires
from blueprints.rendering import is_htmx, page_or_fragment

bp = Blueprint("storage", __name__)

STOP_POLLING = 286
REFRESH_AFTER_SECONDS = 300
SORTS = {"name": "name", "tags": "tags", "images": "images", "unique": "unique_bytes", "shared": "shared_bytes",
         "total": "total_bytes"}  # fmt: skip


@bp.app_context_processor
def readonly_banner() -> dict:
    """``registry_readonly``: a GC job runs, or the registry's config says read-only (every page shows it)."""
    if not current_user.is_authenticated:
        return {"registry_readonly": False}
    svc = services()
    try:
        running = svc.jobs.active(JobKind.GC) is not None
        details = (svc.health.snapshot().get("registry") or {}).get("details") or {}
    except Exception:  # noqa: BLE001 - a banner must never break a page
        return {"registry_readonly": False}
    return {"registry_readonly": running or bool(details.get("readonly"))}


@bp.route("/storage")
@requires(Role.OPS)
def storage():
    """Where the NFS space goes: capacity, referenced bytes, repositories by bytes, growth."""
    svc = services()
    report = svc.storage.latest()
    age = report and (report.computed_at.now(report.computed_at.tzinfo) - report.computed_at).total_seconds()
    if (report is None or (age or 0) > REFRESH_AFTER_SECONDS) and svc.storage.progress() is None:
        svc.storage.refresh_in_background()
    sort = request.args.get("sort", "total")
    sort = sort if sort in SORTS else "total"
    descending = request.args.get("order", "asc" if sort == "name" else "desc") == "desc"
    rows = sorted(report.repositories, key=lambda r: getattr(r, SORTS[sort]), reverse=descending) if report else []
    response = page_or_fragment(
        "storage.html", "partials/storage_body.html", report=report, rows=rows, sort=sort, descending=descending,
        progress=svc.storage.progress(), bars=top_bars(report.repositories) if report else None,
        growth=growth(svc.storage.samples()),
    )  # fmt: skip
    if is_htmx() and svc.storage.progress() is None and report is not None:
        response.status_code = STOP_POLLING
    return response


@bp.route("/storage", methods=["POST"])
@requires(Role.OPS)
def refresh():
    """Start a new computation in the background."""
    services().storage.refresh_in_background()
    return redirect(url_for("storage.storage"), code=303)


@bp.route("/repositories/<path:name>/images/<digest>/delete")
@requires(Role.ADMIN)
def confirm_delete(name: str, digest: str):
    """What deleting this image takes away: its tags, its size, the services that run it."""
    svc = services()
    return render_template("delete_image.html", plan=plan_delete(svc.catalog, svc.settings, name, digest))


@bp.route("/repositories/<path:name>/images/<digest>/delete", methods=["POST"])
@requires(Role.ADMIN)
def delete(name: str, digest: str):
    """Delete the image once the admin typed the repository name; audited."""
    svc = services()
    plan = plan_delete(svc.catalog, svc.settings, name, digest)
    client = svc.deleting_registry()
    try:
        delete_image(client, svc.catalog, plan, request.form.get("confirm_name", ""))
    except BerthError as exc:
        if not isinstance(exc, Conflict) or "Type the repository" not in exc.message:
            svc.audit.record("image", "failed", current_user.username, client_address(), f"{name}@{digest}")
        return render_template("delete_image.html", plan=plan, error=exc.message), 409
    finally:
        client.close()
    svc.audit.record("image", "deleted", current_user.username, client_address(), f"{name}@{digest} {plan.tags}")
    return render_template("delete_image.html", plan=plan, deleted=True)


@bp.route("/retention")
@requires(Role.ADMIN)
def retention():
    """The rules, the recent retention runs, and the plan of the one chosen (``?job=``)."""
    svc = services()
    rules: tuple[Rule, ...] = ()
    problem = None
    if svc.settings.retention_rules is not None:
        try:
            rules = load_policy(svc.settings.retention_rules)
        except BerthError as exc:
            problem = exc.message
    jobs = [j for j in svc.jobs.recent(100) if j.kind == JobKind.RETENTION][:10]
    job_id = request.args.get("job", type=int)
    chosen = svc.jobs.get(job_id) if job_id else None
    if chosen is not None and chosen.kind != JobKind.RETENTION:
        chosen = None
    response = make_response(
        render_template("retention.html", rules=rules, problem=problem, jobs=jobs, job=chosen,
                        schedule=svc.settings.retention_schedule, active=svc.jobs.active(JobKind.RETENTION))
    )  # fmt: skip
    return response


@bp.route("/retention", methods=["POST"])
@requires(Role.ADMIN)
def run_retention():
    """A dry run, or applying exactly the plan of a finished dry run (``plan_job``)."""
    kind = JobKind.RETENTION
    options = kind.options(dry_run=request.form.get("action") != "apply")
    if request.form.get("action") == "apply":
        options["plan_job"] = request.form.get("plan_job", type=int)
    try:
        job = services().runner.submit(kind, current_user.username, client_address(), options)
    except Conflict as exc:
        active = services().jobs.active(kind)
        return render_template("jobs_conflict.html", message=exc.message, active=active), 409
    return redirect(url_for("storage.retention", job=job.id), code=303)
