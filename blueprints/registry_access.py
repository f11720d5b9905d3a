"""What you may pull and push (``/access``) and your access tokens for CI (``/tokens``)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user

from berth.auth.access_tokens import ACTIONS
from berth.auth.explain import anonymous_words, explain
from berth.errors import Conflict
from berth.roles import Role
from blueprints import services
from blueprints.access import client_address, requires

bp = Blueprint("registry_access", __name__)

EXPIRY_CHOICES = (7, 30, 90, 365)


@bp.route("/access")
@requires(Role.DEVELOPER)
def access():
    """The access rules that apply to you, in plain words."""
    svc = services()
    who = svc.token_server.principal_for(current_user.username)
    return render_template(
        "access.html",
        lines=explain(svc.access_rules, who),
        anonymous=anonymous_words(svc.access_rules),
        custom=svc.settings.access_rules is not None,
    )


def _render_tokens(created=None, secret=None, error=None, status=200):
    everyone = current_user.can(Role.ADMIN)
    tokens = services().access_tokens.list(None if everyone else current_user.username)
    page = render_template(
        "tokens.html",
        tokens=tokens,
        everyone=everyone,
        actions=ACTIONS if everyone else ("pull", "push"),
        expiry_choices=EXPIRY_CHOICES,
        created=created,
        secret=secret,
        error=error,
    )
    return page, status


@bp.route("/tokens")
@requires(Role.DEVELOPER)
def tokens():
    """Your access tokens (admins: everyone's), and a form for a new one."""
    return _render_tokens()


@bp.route("/tokens", methods=["POST"])
@requires(Role.DEVELOPER)
def create_token():
    """Make a token; its secret is shown in this answer only."""
    form = request.form
    allowed = set(ACTIONS if current_user.can(Role.ADMIN) else ("pull", "push"))
    actions = set(form.getlist("actions")) & allowed
    days = form.get("days", type=int) or 0
    try:
        created, secret = services().access_tokens.create(
            current_user.username, form.get("name", ""), actions, days, client_address()
        )
    except Conflict as exc:
        return _render_tokens(error=exc.message, status=400)
    return _render_tokens(created=created, secret=secret)


@bp.route("/tokens/<token_id>/revoke", methods=["POST"])
@requires(Role.DEVELOPER)
def revoke_token(token_id: str):
    """Revoke one of your tokens (admins: anyone's); it stops working at once."""
    services().access_tokens.revoke(
        token_id, current_user.username, client_address(), any_owner=current_user.can(Role.ADMIN)
    )
    return redirect(url_for("registry_access.tokens"), code=303)
