"""The catalog browser: repositories, their tags and image details (everyone)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, redirect, request, url_for

from berth.catalog.listing import SORT_KEYS, default_sort, filter_groups, group_pushed, paginate, sort_groups
from berth.catalog.pushed import pushed_times
from berth.catalog.service import group_by_digest, platforms_in_order
from berth.catalog.shapes import pull_lines
from berth.errors import NotFound
from berth.registry.references import check_reference
from berth.roles import Role
from blueprints import services
from blueprints.access import requires
from blueprints.errors import render_error
from blueprints.rendering import page_or_fragment

bp = Blueprint("catalog", __name__)

REPOSITORIES_PER_PAGE = 50
IMAGES_PER_PAGE = 100


@bp.app_context_processor
def _registry_outage() -> dict:
    """``registry_down_since``: when the registry stopped answering (for the banner), else None."""
    if not (request.endpoint or "").startswith("catalog."):
        return {"registry_down_since": None}
    since = services().catalog.down_since
    return {"registry_down_since": datetime.fromtimestamp(since, UTC) if since else None}


def _text_arg(name: str, limit: int = 200) -> str:
    return request.args.get(name, "", type=str)[:limit]


def _beyond_last_page(page, endpoint: str, **args):
    """404 for ``?page=`` past the end, linking the first and the last page."""
    last = url_for(endpoint, page=page.pages, **args)
    links = [("First page", url_for(endpoint, **args)), (f"Last page ({page.pages})", last)]
    return render_error(404, f"There is no page {page.number}: the list has {page.pages}.", links=links)


@bp.route("/repositories")
@requires(Role.DEVELOPER)
def repositories():
    """Every repository, filtered as you type, 50 a page, with tag counts; ``?refresh=1`` reloads the list."""
    catalog = services().catalog
    query = _text_arg("q")
    if request.args.get("refresh") == "1":
        catalog.repositories(refresh=True)
        return redirect(url_for("catalog.repositories", q=query or None), code=303)
    names = catalog.repositories()  # read once: the count and the page come from the same list
    page = paginate(catalog.search(query, names), request.args.get("page", 1, type=int), REPOSITORIES_PER_PAGE)
    if page.beyond:
        return _beyond_last_page(page, "catalog.repositories", q=query or None)
    return page_or_fragment(
        "repositories.html",
        "partials/repository_list.html",
        query=query,
        page=page,
        counts=catalog.tag_counts(page.items),
        total=len(names),
        age=catalog.catalog_age(),
    )


@bp.route("/repositories/<path:name>")
@requires(Role.DEVELOPER)
def repository(name: str):
    """Every tag of one repository, grouped by image, sorted and filtered over all tags."""
    query = _text_arg("q")
    tags = services().catalog.tags(name)
    all_groups = group_by_digest(tags)
    settings = services().settings
    pushed = group_pushed(all_groups, pushed_times(settings.nfs_path, name, settings.nfs_deadline))
    sort = request.args.get("sort", default_sort(pushed))
    sort = sort if sort in SORT_KEYS else default_sort(pushed)
    descending = request.args.get("order", "asc" if sort == "name" else "desc") == "desc"
    groups = sort_groups(filter_groups(all_groups, query), sort, descending, pushed)
    page = paginate(groups, request.args.get("page", 1, type=int), IMAGES_PER_PAGE)
    if page.beyond:
        return _beyond_last_page(page, "catalog.repository", name=name, q=query or None, sort=sort)
    return page_or_fragment(
        "repository.html",
        "partials/tag_list.html",
        # one url_for, not one per tag: tags and digests are URL-safe by the registry's own rules
        reference_prefix=url_for("catalog.tag", name=name, reference="x")[:-1],
        name=name,
        query=query,
        sort=sort,
        descending=descending,
        page=page,
        pushed=pushed,
        tag_count=len(tags),
        image_count=len(all_groups),
    )


@bp.route("/repositories/<path:name>/tags/<reference>")
@requires(Role.DEVELOPER)
def tag(name: str, reference: str):
    """One image: digest, platforms (a tab each), layers, config, history, pull lines."""
    try:
        digest, image = services().catalog.image(name, reference)
    except NotFound as exc:
        return _missing_image(name, reference, exc)
    platforms = platforms_in_order(image)
    wanted = request.args.get("platform") or (platforms[0].platform if platforms else "")
    selected = next((p for p in platforms if p.platform == wanted), None)
    if platforms and selected is None:
        abort(404, description=f"This image has no platform {wanted!r}.")
    return page_or_fragment(
        "tag.html",
        "partials/platform_panel.html",
        name=name,
        reference=reference,
        digest=digest,
        image=image,
        platforms=platforms,
        selected=selected,
        pull=pull_lines(services().settings.registry_host, name, reference, digest),
    )


def _missing_image(name: str, reference: str, error: NotFound):
    """404 that links onward: the repository's tags when it exists, else the repository list."""
    try:
        check_reference(reference)  # an invalid reference was refused without asking the registry: keep it so
        services().catalog.tag_names(name)
    except NotFound:
        return render_error(404, error.message, links=[("All repositories", url_for("catalog.repositories"))])
    links = [(f"All tags of {name}", url_for("catalog.repository", name=name))]
    return render_error(404, error.message, links=links)
