"""Login and logout with the directory account."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from berth.errors import DirectoryUnavailable, InvalidCredentials, LoginThrottled
from berth.roles import Role
from blueprints import services
from blueprints.access import WebUser, client_address, public, requires
from blueprints.errors import status_for

bp = Blueprint("auth", __name__)


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the overview."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("main.overview")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in target):
        return url_for("main.overview")
    return target


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    """Show the login form; on POST, check the credentials and start a session."""
    next_url = request.values.get("next", "")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(next_url))
    if request.method == "GET":
        return render_template("login.html", next=next_url, username="")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    try:
        user = services().login.login(username, password, client_address())
    except (InvalidCredentials, LoginThrottled, DirectoryUnavailable) as exc:
        page = render_template("login.html", next=next_url, username=username, error=exc.message)
        return page, status_for(exc)
    if current_user.is_authenticated and current_user.session_id:
        services().sessions.end(current_user.session_id)  # logging in again ends the session before
    session.clear()  # a fresh session id: nothing from before the login carries over
    record = services().sessions.create(user.username, user.dn, user.display_name, user.role, client_address())
    login_user(WebUser(record.username, record.display_name, record.role, record.id))
    session.permanent = True
    return redirect(safe_next(next_url), code=303)


@bp.route("/logout", methods=["POST"])
@requires(Role.DEVELOPER)
def logout():
    """End the session everywhere: the cookie no longer logs anyone in."""
    svc = services()
    if current_user.session_id:
        svc.sessions.end(current_user.session_id)
    svc.audit.record("logout", "success", current_user.username, client_address())
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"), code=303)
