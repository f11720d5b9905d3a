"""Web hardening: CSRF on every form, cookie flags, security headers, proxy awareness."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from berth.auth.proxies import Network, client_address, forwarded_scheme

csrf = CSRFProtect()

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class BerthSessionInterface(SecureCookieSessionInterface):
    """Cookie sessions that are Secure whenever the request came over HTTPS, and never
    set for API calls (those authenticate with HTTP Basic on every request)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def save_session(self, app, session, response) -> None:
        if request.path.startswith("/api/") or request.path in ("/healthz", "/metrics", "/auth/token"):
            return
        super().save_session(app, session, response)


class TrustedProxies:
    """WSGI middleware: believe X-Forwarded-For/-Proto only from peers in the trusted networks."""

    def __init__(self, wsgi_app, trusted: tuple[Network, ...]):
        self.wsgi_app = wsgi_app
        self.trusted = trusted

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR") or ""
        environ["REMOTE_ADDR"] = client_address(peer, environ.get("HTTP_X_FORWARDED_FOR"), self.trusted)
        scheme = forwarded_scheme(peer, environ.get("HTTP_X_FORWARDED_PROTO"), self.trusted)
        if scheme:
            environ["wsgi.url_scheme"] = scheme
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    """Turn on CSRF, cookie flags and the headers sent with every response."""
    app.config.update(
        # __Host-: the browser refuses it unless Secure, Path=/ and no Domain, so no
        # sibling host or plain-HTTP page can plant or overwrite it.
        SESSION_COOKIE_NAME="__Host-berth_session" if app.config.get("SESSION_COOKIE_SECURE") else "berth_session",
        SESSION_COOKIE_PATH="/",
        SESSION_COOKIE_DOMAIN=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        WTF_CSRF_HEADERS=["X-CSRFToken", "X-CSRF-Token"],
    )
    app.session_interface = BerthSessionInterface()
    csrf.init_app(app)
    app.before_request(_protect_cookie_api_writes)
    app.after_request(_security_headers)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def same_origin() -> bool:
    """Whether the browser says this request came from Berth's own pages (Origin, else Sec-Fetch-Site)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        allowed = {_origin(request.host_url)}
        public_url = current_app.extensions["berth"].settings.public_url
        if public_url:
            allowed.add(_origin(public_url))
        return origin != "null" and _origin(origin) in allowed
    return request.headers.get("Sec-Fetch-Site") == "same-origin"


def _protect_cookie_api_writes() -> None:
    """An API write authenticated by the session cookie needs the CSRF header and a same-origin request.

    The API blueprint is exempt from form CSRF because HTTP Basic callers cannot be forged
    by another site; a cookie, though, rides along with any cross-site request.
    """
    if request.method in ("GET", "HEAD", "OPTIONS") or not request.path.startswith("/api/"):
        return
    if not current_user.is_authenticated or getattr(current_user, "session_id", None) is None:
        return  # anonymous (refused later) or HTTP Basic
    if not same_origin():
        raise CSRFError("The request did not come from a Berth page.")
    csrf.protect()


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if not request.path.startswith("/static/") and request.path != "/ca.crt":
        headers.setdefault("Cache-Control", "no-store")
    return response
