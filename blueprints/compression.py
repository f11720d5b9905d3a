"""gzip for text responses when Berth is served directly (the nginx front in deploy/ gzips too).

A 3,000-tag repository page is about 130 KB of HTML for 100 rows; gzip makes it a tenth
of that, which is what a browser on a slow link waits for. Standard library only: a
dozen lines do not need a dependency (flask-compress would add brotli and zstandard
bindings for no gain here). Streamed and file responses (``direct_passthrough``, e.g.
static files, which the browser caches) are left alone, as is anything under
``MIN_SIZE`` bytes, where the header costs more than it saves.
"""

from __future__ import annotations

import gzip

from flask import Flask, Response, request

MIN_SIZE = 1024
LEVEL = 5  # near level 9's size at a third of its CPU
TYPES = ("text/", "application/json", "application/javascript", "image/svg+xml")


def init_app(app: Flask) -> None:
    """Compress eligible responses after every other after_request hook has run."""
    app.after_request(compress)


def compress(response: Response) -> Response:
    """The response gzipped when the client accepts it and it is text worth compressing."""
    response.vary.add("Accept-Encoding")
    if (
        response.direct_passthrough
        or response.is_streamed
        or response.status_code < 200
        or response.status_code in (204, 304)
        or "Content-Encoding" in response.headers
        or not (response.mimetype or "").startswith(TYPES)
        or not request.accept_encodings["gzip"]
    ):
        return response
    data = response.get_data()
    if len(data) < MIN_SIZE:
        return response
    response.set_data(gzip.compress(data, compresslevel=LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    return response
