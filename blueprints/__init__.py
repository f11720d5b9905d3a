"""Thin Flask views over ``berth/``: one blueprint per area, plus shared web plumbing."""

from __future__ import annotations

from flask import Flask, current_app

from berth.services import Services


def services() -> Services:
    """The Berth services of the running app (built once in create_app)."""
    return current_app.extensions["berth"]


def register_blueprints(app: Flask) -> None:
    """Attach every area's blueprint."""
    from blueprints import api, auth, catalog, events, health, jobs, main, registry_access, storage, token, trust

    for module in (auth, main, catalog, health, jobs, trust, api, token, registry_access, events, storage):
        app.register_blueprint(module.bp)
