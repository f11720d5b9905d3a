"""The overview page, the audit log page and the unauthenticated liveness check."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, jsonify, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST

from berth.audit import AuditFilter, grouped
from berth.roles import Role
from blueprints import services
from blueprints.access import public, requires

bp = Blueprint("main", __name__)

AUDIT_PAGE = 100
ACTIONS = ("login", "logout", "session", "job", "access-token", "registry-token")


@bp.route("/")
@requires(Role.DEVELOPER)
def overview():
    """Where everyone lands: what Berth watches and where to go next."""
    return render_template("overview.html")


@bp.route("/audit")
@requires(Role.ADMIN)
def audit():
    """Logins, logouts and jobs, newest first."""
    before = request.args.get("before", type=int)
    try:
        day = date.fromisoformat(request.args.get("day", "")) if request.args.get("day") else None
    except ValueError:
        day = None
    filters = AuditFilter(request.args.get("user", "")[:256], request.args.get("action", "")[:64], day)
    entries = services().audit.recent(AUDIT_PAGE + 1, before, filters=filters)
    more = len(entries) > AUDIT_PAGE
    entries = entries[:AUDIT_PAGE]
    return render_template(
        "audit.html", rows=grouped(entries), filters=filters, older=entries[-1].id if more else None, actions=ACTIONS
    )


@bp.route("/metrics")
@requires(Role.OPS)
def metrics():
    """Prometheus text: registry request timings and health gauges (ops, or open with BERTH_METRICS_PUBLIC)."""
    from berth.health.metrics import HealthCollector, exposition

    return Response(exposition(HealthCollector(services().health.current)), mimetype=CONTENT_TYPE_LATEST)


@bp.route("/healthz")
@public
def healthz():
    """Liveness for Docker's HEALTHCHECK and load balancers: the process answers."""
    return jsonify(status="ok")
