"""The JSON API under /api/v1: HTTP Basic against the directory, the same roles as the pages."""

from __future__ import annotations

from bisect import bisect_right
from operator import attrgetter

from flask import Blueprint, jsonify, request, url_for
from flask_login import current_user

from berth.catalog.shapes import image_detail, tag_summary
from berth.errors import BerthError, Conflict
from berth.jobs.kinds import JobKind
from berth.roles import Role
from blueprints import services
from blueprints.access import client_address, requires
from blueprints.security import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # API writes require a JSON body, which a cross-site form cannot send

DEFAULT_PAGE = 100
MAX_PAGE = 10_000


@bp.route("/me")
@requires(Role.DEVELOPER)
def me():
    """Who the credentials belong to and their role."""
    return jsonify(username=current_user.username, display_name=current_user.display_name, role=current_user.role.label)


@bp.route("/repositories")
@requires(Role.DEVELOPER)
def repositories():
    """Repository names containing ``q``, ``n`` a page, after ``last``; ``next`` is the following page."""
    query = request.args.get("q", "")[:200]
    size = min(max(1, request.args.get("n", DEFAULT_PAGE, type=int)), MAX_PAGE)
    last = request.args.get("last", "")
    names = services().catalog.search(query)
    if last:
        names = names[bisect_right(names, last) :]
    page = names[:size]
    following = None
    if len(names) > size:
        following = url_for("api.repositories", q=query or None, n=size, last=page[-1])
    return jsonify(repositories=page, next=following)


@bp.route("/repositories/<path:name>/tags")
@requires(Role.DEVELOPER)
def tags(name: str):
    """Every tag with digest, media type, size, created and platforms."""
    infos = services().catalog.tags(name)
    if request.args.get("sort") == "created":  # newest first, undated last
        dated = sorted((i for i in infos if i.created), key=attrgetter("created"), reverse=True)
        infos = dated + [i for i in infos if not i.created]
    return jsonify(name=name, tags=[tag_summary(info) for info in infos])


@bp.route("/repositories/<path:name>/tags/<reference>")
@requires(Role.DEVELOPER)
def tag(name: str, reference: str):
    """One image in full: layers, config, history, every platform, pull lines."""
    digest, image = services().catalog.image(name, reference)
    return jsonify(image_detail(services().settings.registry_host, name, reference, digest, image))


@bp.route("/status")
@requires(Role.OPS)
def status():
    """``{"registry": {...}, "nfs": {...}, "swarm": {...}, "certs": {...}}``, each with ok, error, findings."""
    status = services().health.current()
    nodes = services().health.nodes(stale_after=3 * services().settings.node_check_interval)
    return jsonify(status | {"nodes": nodes} if nodes is not None else status)


@bp.route("/jobs", methods=["POST"])
@requires(Role.ADMIN)
def create_job():
    """``{"kind": KIND}`` (a JobKind) -> 202 ``{"id", "kind", "status"}``; 409 with the running job's id."""
    if not request.is_json:
        return jsonify(error="Send a JSON body with Content-Type: application/json."), 415
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the parser's stack; silent= only covers ValueError
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("kind"), str):
        return jsonify(error='The body must be a JSON object like {"kind": "rotate-certs"}.'), 400
    kind = JobKind.parse(body["kind"])
    flags = {k: v for k, v in body.items() if k != "kind"}
    unknown = set(flags) - kind.accepted_options
    if unknown or not all(isinstance(v, bool) for v in flags.values()):
        problem = ", ".join(sorted(unknown)) or "options must be true or false"
        return jsonify(error=f"Unexpected fields for {kind}: {problem}."), 400
    try:
        job = services().runner.submit(kind, current_user.username, client_address(), kind.options(**flags))
    except Conflict as exc:
        active = services().jobs.active(kind)
        return jsonify(error=exc.message, id=active.id if active else None), 409
    response = jsonify(id=job.id, kind=job.kind, status=job.status)
    response.status_code = 202
    response.headers["Location"] = url_for("api.job", job_id=job.id)
    return response


@bp.route("/storage")
@requires(Role.OPS)
def storage():
    """Capacity, bytes referenced by all tags, and each repository's tags, images, unique and shared bytes."""
    svc = services()
    return jsonify(svc.storage.current(max_age=svc.settings.cache_ttl).as_dict())


@bp.route("/repositories/<path:name>/images/<digest>", methods=["DELETE"])
@requires(Role.ADMIN)
def delete_image(name: str, digest: str):
    """Delete an image by digest (every tag on it goes too); ``{"deleted", "tags"}``. Audited."""
    from berth.storage.deletion import delete_image as delete
    from berth.storage.deletion import plan_delete

    svc = services()
    plan = plan_delete(svc.catalog, svc.settings, name, digest)
    client = svc.deleting_registry()
    try:
        delete(client, svc.catalog, plan, name)
    except BerthError as exc:
        svc.audit.record("image", "failed", current_user.username, client_address(), f"{name}@{digest}: {exc.message}")
        raise
    finally:
        client.close()
    svc.audit.record("image", "deleted", current_user.username, client_address(), f"{name}@{digest} {plan.tags}")
    return jsonify(deleted=f"{name}@{digest}", tags=list(plan.tags))


@bp.route("/jobs/<int:job_id>")
@requires(Role.ADMIN)
def job(job_id: int):
    """A job with its steps and their logs."""
    return jsonify(services().jobs.get(job_id).as_dict())
