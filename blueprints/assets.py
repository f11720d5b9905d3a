"""Static files cached by the browser for a year, under URLs that change with their content.

Without this, every page view revalidated the stylesheet, htmx, berth.js and the icon
(four conditional requests before the page could finish), which on a busy machine was
most of a warm page's time. ``url_for('static', ...)`` now adds ``v=<content hash>``, so a
new release is fetched at once and an unchanged file never again.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Flask

ONE_YEAR = 365 * 24 * 3600


def init_app(app: Flask) -> None:
    """Version static URLs by content and let browsers keep them."""
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = ONE_YEAR
    folder = Path(app.static_folder or "static")

    @lru_cache(maxsize=256)
    def version(filename: str) -> str:
        try:
            return hashlib.sha256((folder / filename).read_bytes()).hexdigest()[:12]
        except OSError:
            return "0"

    @app.url_defaults
    def _versioned(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            values["v"] = version(values["filename"])
