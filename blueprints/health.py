"""Registry health for ops: NFS mount, Swarm service, registry API, certificates.

Pages read the monitor's latest snapshot, so a hung component never delays them; each
panel refreshes itself with htmx.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from markupsafe import Markup

from berth.health import COMPONENTS
from berth.roles import Role
from blueprints import services
from blueprints.access import requires

bp = Blueprint("health", __name__)

TITLES = {"registry": "Registry", "nfs": "NFS mount", "swarm": "Swarm service", "certs": "Certificates"}


_DETAILS_HTML: dict[tuple[str, str], Markup] = {}


def details_html(name: str, report: dict) -> Markup:
    """A component's details rendered once per report (panels refresh far more often than probes run)."""
    key = (name, str(report.get("checked_at")))
    html = _DETAILS_HTML.get(key)
    if html is None:
        if len(_DETAILS_HTML) > 64:
            _DETAILS_HTML.clear()
        rendered = render_template("partials/health_details.html", report=report)  # autoescaped
        html = _DETAILS_HTML[key] = Markup(rendered)  # noqa: S704 - already escaped by Jinja
    return html


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
        "health.html", snapshot=current_snapshot(), components=COMPONENTS, titles=TITLES, details_html=details_html
    )


@bp.route("/health/panels/<component>")
@requires(Role.OPS)
def panel(component: str):
    """One panel, for htmx to swap in every few seconds."""
    if component not in COMPONENTS:
        abort(404)
    report = current_snapshot()[component]
    return render_template(
        "partials/health_panel.html", name=component, title=TITLES[component], report=report, details_html=details_html
    )


@bp.route("/health/summary")
@requires(Role.DEVELOPER)
def summary():
    """One line per component, for the overview page of every role."""
    return render_template(
        "partials/health_summary.html", snapshot=current_snapshot(), components=COMPONENTS, titles=TITLES
    )
