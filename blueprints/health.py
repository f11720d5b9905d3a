"""Registry health for ops: NFS mount, Swarm service, registry API, certificates."""

from __future__ import annotations

from flask import Blueprint, render_template

from berth.roles import Role
from blueprints.access import requires

bp = Blueprint("health", __name__)


@bp.route("/health")
@requires(Role.OPS)
def health():
    """The four health panels."""
    return render_template("coming.html", title="Health", area="health")
