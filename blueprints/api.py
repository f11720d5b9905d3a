"""The JSON API under /api/v1: HTTP Basic against the directory, the same roles as the pages."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask_login import current_user

from berth.roles import Role
from blueprints.access import requires
from blueprints.security import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # API writes require a JSON body, which a cross-site form cannot send


@bp.route("/me")
@requires(Role.DEVELOPER)
def me():
    """Who the credentials belong to and their role."""
    return jsonify(username=current_user.username, display_name=current_user.display_name, role=current_user.role.label)
