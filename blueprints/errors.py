"""One place that turns every error into a page, an htmx alert or ``{"error": ...}``.

No traceback ever reaches a client: unexpected exceptions are logged with theirs and
answered with a plain 500.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, make_response, render_template, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from berth.errors import (
    BadRequest,
    BadUpstreamResponse,
    BerthError,
    Conflict,
    DirectoryUnavailable,
    InvalidCredentials,
    LoginThrottled,
    NotFound,
    NotPermitted,
    Unauthorized,
    UpstreamUnavailable,
)
from blueprints.rendering import is_htmx, wants_json

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Login required",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    429: "Too many attempts",
    500: "Something went wrong",
    502: "Upstream error",
    503: "Service unavailable",
    504: "Upstream timed out",
}


def status_for(error: BerthError) -> int:
    """The HTTP status that tells a client what kind of failure ``error`` is."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, BadRequest):
        return error.status
    if isinstance(error, Conflict):
        return 409
    if isinstance(error, LoginThrottled):
        return 429
    if isinstance(error, NotPermitted):
        return 403
    if isinstance(error, InvalidCredentials):
        return 401
    if isinstance(error, DirectoryUnavailable):
        return 503
    if isinstance(error, UpstreamUnavailable):
        return 504 if error.timeout else 502
    if isinstance(error, (BadUpstreamResponse, Unauthorized)):
        return 502
    return 500


def render_error(
    status: int,
    message: str,
    extra_headers: dict | None = None,
    *,
    links: list[tuple[str, str]] | None = None,
    title: str | None = None,
) -> Response:
    """Answer ``status`` with ``message`` in the form the client asked for; ``links`` lead onward."""
    title = title or TITLES.get(status, "Error")
    links = links or []
    if wants_json():
        response = jsonify(error=message)
    elif is_htmx():
        page = render_template("partials/alert.html", level="critical", title=title, message=message, links=links)
        response = make_response(page)
    else:
        page = render_template("error.html", status=status, title=title, message=message, links=links)
        response = make_response(page)
    response.status_code = status
    response.headers.update(extra_headers or {})
    return response


def _http_error(error: HTTPException):
    if isinstance(error, CSRFError):
        return render_error(400, "The form expired or did not come from this Berth page. Reload and try again.")
    headers = {}
    if error.code == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Berth", charset="UTF-8"'
        message = "Log in with your directory account (HTTP Basic)."
    else:
        message = (error.description or "") if error.code != 500 else "Something went wrong."
    if isinstance(error, MethodNotAllowed):  # 405, the one that knows the allowed methods
        headers["Allow"] = ", ".join(error.valid_methods or [])
    if error.code == 404 and "The requested URL was not found" in (error.description or ""):
        message = "There is nothing at this address."
    return render_error(error.code or 500, message, headers)


def _berth_error(error: BerthError):
    status = status_for(error)
    if status >= 500:
        log.warning("%s: %s", type(error).__name__, error)
    headers = {}
    if isinstance(error, LoginThrottled):
        headers["Retry-After"] = str(error.retry_after)
    if isinstance(error, InvalidCredentials):
        headers["WWW-Authenticate"] = 'Basic realm="Berth", charset="UTF-8"'
    if isinstance(error, UpstreamUnavailable) and not isinstance(error, DirectoryUnavailable) and not wants_json():
        return _registry_down(status, error, headers)
    return render_error(status, error.message, headers)


def _registry_down(status: int, error: UpstreamUnavailable, headers: dict) -> Response:
    """The registry does not answer and nothing is saved for this page: say so plainly, and where to look."""
    from flask_login import current_user

    from berth.roles import Role

    message = (
        "Berth cannot reach the registry right now and has no saved copy of this page. "
        f"Pulls and pushes fail too until it answers again. ({error.message})"
    )
    ops = getattr(current_user, "is_authenticated", False) and current_user.can(Role.OPS)
    links = [("Registry health", url_for("health.health"))] if ops else []  # the overview link is always there
    return render_error(status, message, headers, links=links, title="Registry not answering")


def _unexpected_error(error: Exception):
    log.exception("unhandled error")
    return render_error(500, "Something went wrong. The error was logged; try again or tell your Berth admin.")


def init_app(app: Flask) -> None:
    """Route every error through render_error."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(BerthError, _berth_error)
    app.register_error_handler(Exception, _unexpected_error)
