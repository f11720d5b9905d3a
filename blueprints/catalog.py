"""The catalog browser: repositories, their tags and image details (everyone)."""

from __future__ import annotations

from flask import Blueprint, abort, request, url_for

from berth.catalog.listing import SORT_KEYS, filter_groups, paginate, sort_groups
from berth.catalog.service import group_by_digest, platforms_in_order
from berth.catalog.shapes import pull_lines
from berth.roles import Role
from blueprints import services
from blueprints.access import requires
from blueprints.rendering import page_or_fragment

bp = Blueprint("catalog", __name__)

REPOSITORIES_PER_PAGE = 50
IMAGES_PER_PAGE = 100


def _text_arg(name: str, limit: int = 200) -> str:
    return request.args.get(name, "", type=str)[:limit]


@bp.route("/repositories")
@requires(Role.DEVELOPER)
def repositories():
    """Every repository, filtered as you type, 50 a page, with tag counts."""
    catalog = services().catalog
    query = _text_arg("q")
    matches = catalog.search(query)
    page = paginate(matches, request.args.get("page", 1, type=int), REPOSITORIES_PER_PAGE)
    counts = catalog.tag_counts(page.items)
    return page_or_fragment(
        "repositories.html",
        "partials/repository_list.html",
        query=query,
        page=page,
        counts=counts,
        total=len(catalog.repositories()),
    )


@bp.route("/repositories/<path:name>")
@requires(Role.DEVELOPER)
def repository(name: str):
    """Every tag of one repository, grouped by image, sorted and filtered over all tags."""
    query = _text_arg("q")
    sort = request.args.get("sort", "name")
    sort = sort if sort in SORT_KEYS else "name"
    descending = request.args.get("order", "desc" if sort == "created" else "asc") == "desc"
    tags = services().catalog.tags(name)
    all_groups = group_by_digest(tags)
    groups = sort_groups(filter_groups(all_groups, query), sort, descending)
    page = paginate(groups, request.args.get("page", 1, type=int), IMAGES_PER_PAGE)
    # one url_for, not one per tag: tags and digests are URL-safe by the registry's own rules
    reference_prefix = url_for("catalog.tag", name=name, reference="x")[:-1]
    return page_or_fragment(
        "repository.html",
        "partials/tag_list.html",
        reference_prefix=reference_prefix,
        name=name,
        query=query,
        sort=sort,
        descending=descending,
        page=page,
        tag_count=len(tags),
        image_count=len(all_groups),
    )


@bp.route("/repositories/<path:name>/tags/<reference>")
@requires(Role.DEVELOPER)
def tag(name: str, reference: str):
    """One image: digest, platforms (a tab each), layers, config, history, pull lines."""
    digest, image = services().catalog.image(name, reference)
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
