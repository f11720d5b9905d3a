"""Registry health for ops: NFS mount, Swarm service, registry API, certificates.

Pages read the monitor's latest snapshot, so a hung component never delays them; each
panel refreshes itself with htmx.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from berth.health.monitor import COMPONENTS
from berth.roles import Role
from blueprints import services
from blueprints.access import requires
from blueprints.formatting import detail_rows

bp = Blueprint("health", __name__)

TITLES = {"registry": "Registry", "nfs": "NFS mount", "swarm": "Swarm service", "certs": "Certificates"}


_DETAIL_ROWS: dict[tuple[str, str], list[tuple[str, str]]] = {}


def detail_rows_of(name: str, report: dict) -> list[tuple[str, str]]:
    """A component's details as rows, worked out once per report (panels refresh far more often than probes)."""
    key = (name, str(report.get("checked_at")))
    rows = _DETAIL_ROWS.get(key)
    if rows is None:
        if len(_DETAIL_ROWS) > 64:
            _DETAIL_ROWS.clear()
        rows = _DETAIL_ROWS[key] = detail_rows(report.get("details") or {})
    return rows


def current_snapshot() -> dict:
    """The latest health reports (probed inline first when the monitor runs without a thread)."""
    monitor = services().health
    if services().settings.background:
        monitor.start()
        return monitor.snapshot()
    return monitor.fresh_snapshot()


@bp.route("/health")
@requires(Role.OPS)
def health():
    """The four health panels."""
    return render_template(
        "health.html", snapshot=current_snapshot(), components=COMPONENTS, titles=TITLES, detail_rows=detail_rows_of
    )


@bp.route("/health/panels/<component>")
@requires(Role.OPS)
def panel(component: str):
    """One panel, for htmx to swap in every few seconds."""
    if component not in COMPONENTS:
        abort(404)
    report = current_snapshot()[component]
    return render_template(
        "partials/health_panel.html", name=component, title=TITLES[component], report=report, detail_rows=detail_rows_of
    )


@bp.route("/health/summary")
@requires(Role.DEVELOPER)
def summary():
    """One line per component, for the overview page of every role."""
    return render_template(
        "partials/health_summary.html", snapshot=current_snapshot(), components=COMPONENTS, titles=TITLES
    )
