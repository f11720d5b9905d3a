"""Who is asking and what they may see: login sessions, HTTP Basic for the API, roles.

Access is deny-by-default: every view declares ``@requires(Role.X)`` or ``@public``,
and a view that declares nothing answers 403 to everyone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, jsonify, redirect, request, url_for
from flask_login import LoginManager, UserMixin, current_user

from berth.auth.directory import UserGone
from berth.auth.sessions import SessionRecord
from berth.errors import BerthError, DirectoryUnavailable
from berth.events.secret import bearer_matches
from berth.roles import Role
from blueprints import services

log = logging.getLogger(__name__)

PUBLIC = "public"
REGISTRY = "registry"  # machine-to-machine: the registry's notifications, with Berth's bearer secret
ACCESS = "berth_access"  # the attribute a view's access rule is kept in


class WebUser(UserMixin):
    """The logged-in user of this request, from a session or from API credentials."""

    def __init__(self, username: str, display_name: str, role: Role, session_id: str | None = None):
        self.username = username
        self.display_name = display_name
        self.role = role
        self.session_id = session_id

    def get_id(self) -> str | None:
        return self.session_id

    def can(self, role: Role) -> bool:
        """Whether this user holds ``role`` or a higher one."""
        return self.role >= role


def requires(role: Role) -> Callable:
    """Mark a view as needing at least ``role``; checked before the view runs."""

    def mark(view: Callable) -> Callable:
        setattr(view, ACCESS, role)  # a function attribute, which the type of Callable does not know
        return view

    return mark


def public(view: Callable) -> Callable:
    """Mark a view as open to anyone, logged in or not."""
    setattr(view, ACCESS, PUBLIC)
    return view


def registry_only(view: Callable) -> Callable:
    """Mark a view as the registry's: ``Authorization: Bearer <events secret>``, no login, no session."""
    setattr(view, ACCESS, REGISTRY)
    return view


def client_address() -> str:
    """The client's address (TrustedProxies, when configured, has already applied X-Forwarded-For)."""
    return request.remote_addr or "unknown"


def is_api_request() -> bool:
    """Whether this request is for the JSON API (or another machine-read endpoint)."""
    return request.path.startswith("/api/") or request.path == "/metrics"


def init_app(app: Flask) -> None:
    """Install Flask-Login and the role check that runs before every view."""
    manager = LoginManager(app)
    manager.session_protection = None  # sessions are server-side and revocable
    manager.user_loader(_load_session_user)
    manager.request_loader(_load_api_user)
    app.before_request(_enforce_access)


def _load_session_user(session_id: object) -> WebUser | None:
    if not isinstance(session_id, str):
        return None  # a cookie signed with our key but holding no session id we would issue
    if request.path.startswith("/api/") and request.authorization is not None:
        return None  # explicit API credentials win over an ambient cookie (then no CSRF applies)
    record = services().sessions.get(session_id)
    if record is None:
        return None
    record = _recheck(record)
    if record is None:
        return None
    return WebUser(record.username, record.display_name, record.role, record.id)


def _recheck(record: SessionRecord) -> SessionRecord | None:
    """Re-read the user's role from the directory when the last look is stale."""
    svc = services()
    if time.time() - record.checked_at < svc.settings.session_recheck:
        return record
    try:
        user = svc.directory.lookup(record.username)
    except UserGone:
        log.info("session of %s ended: user no longer in the directory", record.username)
        svc.sessions.end(record.id)
        svc.audit.record("session", "ended", record.username, record.address, "user left the directory")
        return None
    except DirectoryUnavailable:
        return record  # keep browsing while the directory is down; check again next time
    if user.role != record.role:
        svc.audit.record(
            "session", "role-changed", record.username, record.address, f"{record.role.label} -> {user.role.label}"
        )
    svc.sessions.refresh(record.id, user.display_name, user.role)
    return SessionRecord(
        record.id,
        record.username,
        record.dn,
        user.display_name,
        user.role,
        record.address,
        record.created_at,
        time.time(),
    )


def _load_api_user(req) -> WebUser | None:
    """HTTP Basic on /api/: the same directory login and throttling as the form."""
    auth = req.authorization
    if not (req.path.startswith("/api/") or req.path == "/metrics") or auth is None or auth.type != "basic":
        return None
    username, password = auth.username or "", auth.password or ""
    svc = services()
    try:
        user = svc.basic_auth_cache.get_or_login(
            username, password, lambda: svc.login.login(username, password, client_address(), channel="api")
        )
    except BerthError as exc:
        g.api_auth_error = exc
        return None
    return WebUser(user.username, user.display_name, user.role)


def _enforce_access():
    if request.endpoint in (None, "static"):
        return None  # no route (the 404 handler answers) or a static file
    view = current_app.view_functions.get(request.endpoint)
    required = getattr(view, ACCESS, None)
    if required == PUBLIC or (request.endpoint == "main.metrics" and services().settings.metrics_public):
        return None
    if required == REGISTRY:
        return _check_registry_bearer()
    if required is None:
        log.error("view %s declares no access rule; refusing", request.endpoint)
        abort(403)
    if not current_user.is_authenticated:
        return _ask_to_log_in()
    if not current_user.can(required):
        abort(403, description=_role_needed(required))
    return None


def _role_needed(required: Role) -> str:
    """Why a 403: the role the page needs, the user's, and the directory group that grants it."""
    settings = services().settings
    group = settings.ldap_admin_group if required >= Role.ADMIN else settings.ldap_ops_group
    text = f"This page needs the {required.label} role; you are {current_user.role.label}."
    if required > Role.DEVELOPER:
        text += f" Membership of the directory group {group} grants it: ask whoever manages that group."
    return text


def _check_registry_bearer():
    """None when the request carries the events secret, else a 401 naming the scheme."""
    if bearer_matches(request.headers.get("Authorization"), services().events_secret):
        return None
    log.warning("registry event refused from %s: missing or wrong bearer secret", client_address())
    response = jsonify(error="Send the events secret as Authorization: Bearer <secret>.")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="berth-events"'
    return response


def _ask_to_log_in():
    error = g.pop("api_auth_error", None)
    if error is not None:
        raise error
    if is_api_request():
        abort(401)
    if request.headers.get("HX-Request") == "true":
        # A redirect would be followed inside the XHR and the login form swapped into a panel:
        # answer 401 and let htmx send the whole tab to the login page, back to the page it was on.
        login_url = url_for("auth.login", next=_htmx_page_path())
        return "", 401, {"HX-Redirect": login_url, "Vary": "HX-Request"}
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _htmx_page_path() -> str:
    """The path (and query) of the page an htmx request came from, else of the request itself."""
    current = urlsplit(request.headers.get("HX-Current-URL", ""))
    if current.path.startswith("/") and current.netloc in ("", request.host):
        return current.path + (f"?{current.query}" if current.query else "")
    return request.full_path.rstrip("?")
