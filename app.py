"""Berth's application factory: wiring only.

``create_app(settings=None)`` builds the app (tests pass their own Settings);
``gunicorn app:app`` and ``flask --app app`` get an app built from the environment.
"""

from __future__ import annotations

import logging
import sys

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from htmx_flask import Htmx

from berth.config import Settings
from berth.errors import SettingError
from berth.roles import Role
from berth.services import build_services


def create_app(settings: Settings | None = None) -> Flask:
    """Build Berth for ``settings`` (read from the environment when None)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    configure(app, settings)
    register_extensions(app, settings)
    register_blueprints(app)
    register_template_globals(app, settings)
    register_errorhandlers(app)
    register_commands(app)
    return app


def configure(app: Flask, settings: Settings) -> None:
    """Flask settings that follow from Berth's."""
    app.config.update(
        SECRET_KEY=settings.secret_key,
        DEBUG=settings.debug,
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=settings.session_lifetime,
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    if isinstance(app.json, DefaultJSONProvider):  # Flask's own provider, the only one Berth uses
        app.json.sort_keys = False
    if settings.trusted_proxies:
        from blueprints.security import TrustedProxies

        # Wrapping wsgi_app is how Flask documents adding WSGI middleware; mypy sees a method.
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def register_extensions(app: Flask, settings: Settings) -> None:
    """Berth's services, htmx, sessions, CSRF and headers."""
    from blueprints import access, assets, compression, security

    app.extensions["berth"] = build_services(settings)
    compression.init_app(app)  # first registered, so it runs after every other after_request hook
    assets.init_app(app)
    Htmx(app)
    security.init_app(app)
    access.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Every area's views."""
    from blueprints import register_blueprints as register

    register(app)


def register_template_globals(app: Flask, settings: Settings) -> None:
    """Names and filters every template may use."""
    from blueprints import formatting

    formatting.init_app(app)
    app.jinja_env.globals.update(roles=Role, registry_url=settings.registry_url, registry_host=settings.registry_host)


def register_errorhandlers(app: Flask) -> None:
    """One handler for every error, answering HTML, htmx or JSON."""
    from blueprints import errors

    errors.init_app(app)


def register_commands(app: Flask) -> None:
    """``flask --app app ...`` commands."""
    from blueprints import commands

    commands.init_app(app)


def __getattr__(name: str) -> Flask:
    """Build ``app`` on first use, so importing this module for create_app needs no environment."""
    if name != "app":
        raise AttributeError(name)
    try:
        application = create_app()
    except SettingError as exc:
        print(f"berth: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    globals()["app"] = application
    return application
