"""Registry health for ops: NFS mount, Swarm service, registry API, certificates.

Pages read the monitor's latest snapshot, so a hung component never delays them; each
panel refreshes itself with htmx.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from berth.catalog.cache import Memo
from berth.health.monitor import COMPONENTS
from berth.roles import Role
from blueprints import services
from blueprints.access import requires
from blueprints.formatting import detail_rows, filesize

bp = Blueprint("health", __name__)
# Detail rows are worked out once per report and kept per app: panels refresh far more often than probes.
bp.record_once(lambda state: state.app.extensions.setdefault("health_detail_rows", Memo(64)))

TITLES = {"registry": "Registry", "nfs": "NFS mount", "swarm": "Swarm service", "certs": "Certificates"}
# A report's state as a colour class and a badge: never checked and too old are grey, not green.
STATE_CLASS = {"healthy": "ok", "warning": "warning", "critical": "critical", "unknown": "unknown", "stale": "unknown"}
STATE_LABEL = {
    "healthy": "healthy",
    "warning": "warning",
    "critical": "failing",
    "unknown": "checking",
    "stale": "stale",
}
bp.app_context_processor(lambda: {"state_class": STATE_CLASS, "state_label": STATE_LABEL})


def detail_rows_of(name: str, report: dict) -> list[tuple[str, str]]:
    """A component's details as rows, worked out once per report."""
    memo: Memo = current_app.extensions["health_detail_rows"]
    key = f"{name}@{report.get('checked_at')}"
    rows = memo.get(key)
    if rows is None:
        details = {k: v for k, v in (report.get("details") or {}).items() if not (name == "swarm" and k == "tasks")}
        rows = detail_rows(details)
        memo.put(key, rows)
    return rows


def headline(name: str, report: dict) -> str:
    """The one line about a part that says most: tasks running, the earliest expiry, free space."""
    details = report.get("details") or {}
    service = details.get("service") or {}
    server = details.get("server") or {}
    capacity = details.get("capacity") or {}
    if report.get("unchecked"):
        return f"cannot check: {report['unchecked']}"
    if name == "swarm" and service.get("replicas_desired") is not None:
        return f"{service.get('replicas_running', 0)}/{service['replicas_desired']} tasks"
    if name == "certs" and server.get("not_after"):
        return f"server certificate valid until {server['not_after'][:10]} ({int(server.get('days_left', 0))} days)"
    if name == "nfs" and capacity.get("total_bytes") and report.get("state") == "healthy":
        return f"{filesize(capacity.get('free_bytes'))} free of {filesize(capacity['total_bytes'])}"
    findings = report.get("findings") or []
    order = {"critical": 0, "warning": 1, "ok": 2, "info": 3}
    worst = min(findings, key=lambda f: order.get(f.get("level"), 4), default=None)
    return worst["message"] if worst else ""


@bp.route("/health")
@requires(Role.OPS)
def health():
    """The four health panels."""
    return render_template(
        "health.html",
        snapshot=services().health.current(),
        components=COMPONENTS,
        titles=TITLES,
        detail_rows=detail_rows_of,
        nodes=services().health.nodes(stale_after=3 * services().settings.node_check_interval),
    )


@bp.route("/health/panels/<component>")
@requires(Role.OPS)
def panel(component: str):
    """One panel, for htmx to swap in every few seconds."""
    if component not in COMPONENTS:
        abort(404)
    report = services().health.current()[component]
    return render_template(
        "partials/health_panel.html", name=component, title=TITLES[component], report=report, detail_rows=detail_rows_of
    )


@bp.route("/health/summary")
@requires(Role.DEVELOPER)
def summary():
    """One line per component, for the overview page of every role."""
    return render_template(
        "partials/health_summary.html",
        snapshot=services().health.current(),
        components=COMPONENTS,
        titles=TITLES,
        headline=headline,
    )
