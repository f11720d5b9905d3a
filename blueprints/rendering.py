"""Choosing what to answer: a full page, an htmx fragment, or JSON."""

from __future__ import annotations

from flask import Response, make_response, render_template, request


def is_htmx() -> bool:
    """Whether htmx (not a full page load or history restore) made this request."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-History-Restore-Request") != "true"


def page_or_fragment(page_template: str, fragment_template: str, /, **context) -> Response:
    """The whole page for a browser, only the fragment for htmx; caches keep them apart."""
    template = fragment_template if is_htmx() else page_template
    response = make_response(render_template(template, **context))
    response.headers.add("Vary", "HX-Request")
    return response


def wants_json() -> bool:
    """Whether the client wants JSON rather than HTML."""
    if request.path.startswith("/api/") or request.path in ("/healthz", "/metrics"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
