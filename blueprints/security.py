"""Web hardening: CSRF on every form, cookie flags, security headers, proxy awareness."""

from __future__ import annotations

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

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


def init_app(app: Flask) -> None:
    """Turn on CSRF, cookie flags and the headers sent with every response."""
    app.config.update(
        SESSION_COOKIE_NAME="berth_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        WTF_CSRF_HEADERS=["X-CSRFToken", "X-CSRF-Token"],
    )
    app.session_interface = BerthSessionInterface()
    csrf.init_app(app)
    app.after_request(_security_headers)


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
