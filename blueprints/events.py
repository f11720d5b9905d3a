"""The registry's events: the receiver (machine-to-machine), the activity feed and its JSON.

``POST /api/v1/events`` is the registry's ``notifications`` endpoint: bearer secret,
no login, no session, no CSRF token (no browser can hold the secret), and a 5 MB cap
on its body of its own. ``GET /api/v1/events`` and ``/activity`` are everyone's.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request, url_for

from berth.events.parse import cursor_of, parse_cursor, parse_since
from berth.roles import Role
from blueprints import services
from blueprints.access import registry_only, requires
from blueprints.rendering import page_or_fragment
from blueprints.security import csrf

bp = Blueprint("events", __name__)

MAX_BODY = 5 * 1024 * 1024
DEFAULT_PAGE = 50
MAX_PAGE = 500


@bp.route("/api/v1/events", methods=["POST"])
@registry_only
def receive():
    """One notification envelope from the registry; stored once by event id, all or nothing."""
    request.max_content_length = MAX_BODY  # larger than the app's 1 MB: a relay may batch events
    result = services().events.receive(request.get_data(cache=False), request.content_type)
    return jsonify(received=result.received, stored=result.stored, ignored=result.ignored)


csrf.exempt(receive)


@bp.route("/api/v1/events")
@requires(Role.DEVELOPER)
def events():
    """Pushes and deletes, newest first: ``since``, ``repository``, ``actor`` filter; ``next`` pages."""
    size = min(max(1, request.args.get("n", DEFAULT_PAGE, type=int)), MAX_PAGE)
    entries, following = _page(size)
    following_url = following and url_for("events.events", n=size, **following)
    return jsonify(events=[entry.as_dict() for entry in entries], next=following_url)


@bp.route("/activity")
@requires(Role.DEVELOPER)
def activity():
    """The activity feed: filter form, and a list that htmx refreshes every few seconds."""
    entries, following = _page(DEFAULT_PAGE)
    return page_or_fragment(
        "activity.html",
        "partials/activity_list.html",
        entries=entries,
        following=following and url_for("events.activity", **following),
        repository=request.args.get("repository", "")[:255],
        actor=request.args.get("actor", "")[:256],
    )


def _page(size: int):
    """One page of the feed for the request's filters, and the query of the next page (or None)."""
    filters = {
        "since": request.args.get("since") or None,
        "repository": request.args.get("repository", "")[:255] or None,
        "actor": request.args.get("actor", "")[:256] or None,
    }
    entries = services().events.store.recent(
        size + 1,
        before=parse_cursor(request.args.get("before")),
        since=parse_since(filters["since"]),
        repository=filters["repository"],
        actor=filters["actor"],
    )
    if len(entries) <= size:
        return entries, None
    entries = entries[:size]
    following = {k: v for k, v in filters.items() if v} | {"before": cursor_of(entries[-1].at, entries[-1].seq)}
    return entries, following


@bp.route("/activity/pulls")
@requires(Role.DEVELOPER)
def pulls():
    """Last push and pulls in the last 7 and 30 days of a repository (or one tag): a fragment."""
    repository = request.args.get("repository", "")[:255]
    tag = request.args.get("tag", "")[:128] or None
    stats = services().events.summary(repository, tag)
    return render_template("partials/pull_stats.html", stats=stats, tag=tag)
