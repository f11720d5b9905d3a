"""The catalog browser: repositories, their tags and image details (everyone)."""

from __future__ import annotations

from flask import Blueprint, render_template

from berth.roles import Role
from blueprints.access import requires

bp = Blueprint("catalog", __name__)


@bp.route("/repositories")
@requires(Role.DEVELOPER)
def repositories():
    """Every repository in the registry."""
    return render_template("coming.html", title="Repositories", area="catalog")


@bp.route("/repositories/<path:name>")
@requires(Role.DEVELOPER)
def repository(name: str):
    """One repository's tags."""
    return render_template("coming.html", title=name, area="catalog")


@bp.route("/repositories/<path:name>/tags/<reference>")
@requires(Role.DEVELOPER)
def tag(name: str, reference: str):
    """One image: digest, platforms, layers, config."""
    return render_template("coming.html", title=f"{name}:{reference}", area="catalog")
