"""The catalog browser: repositories, their tags and image details (everyone)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, abort, make_response, redirect, render_template, request, url_for

from berth.catalog.listing import SORT_KEYS, default_sort, filter_groups, group_pushed, paginate, sort_groups
from berth.catalog.progress import Progress
from berth.catalog.pushed import pushed_times
from berth.catalog.service import group_by_digest, platforms_in_order
from berth.catalog.shapes import pull_lines
from berth.catalog.streaming import tag_page
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
    """Every repository, filtered as you type, 50 a page; the first page before the catalog walk ends.

    ``?refresh=1`` reloads the list now (one load for everyone).
    """
    if request.args.get("refresh") == "1":
        services().catalog.repositories(refresh=True)
        return redirect(url_for("catalog.repositories", q=_text_arg("q") or None), code=303)
    context = _repository_list()
    if context["page"].beyond and not context["loading"]:
        return _beyond_last_page(context["page"], "catalog.repositories", q=context["query"] or None)
    return page_or_fragment("repositories.html", "partials/repository_list.html", **context)


@bp.route("/repositories/-/progress")
@requires(Role.DEVELOPER)
def repositories_progress():
    """The catalog walk's progress line; when done (286: stop polling), the complete list in its place."""
    progress = services().streaming.catalog_progress()
    if progress is not None:
        return render_template("partials/progress_line.html", **_catalog_progress(progress))
    return _completed("partials/repository_list.html", "#repository-list", _repository_list())


@bp.route("/repositories/<path:name>/-/tag-count")
@requires(Role.DEVELOPER)
def tag_count(name: str):
    """One repository's tag count (a deferred cell of the catalog page)."""
    return render_template("partials/tag_count.html", count=services().catalog.tag_counts([name])[name])


@bp.route("/repositories/<path:name>")
@requires(Role.DEVELOPER)
def repository(name: str):
    """Every tag of one repository, grouped by image; the first page before every tag is read."""
    context = _tag_list(name)
    if context["page"].beyond and not context["loading"]:
        page, query, sort = context["page"], context["query"], context["sort"]
        return _beyond_last_page(page, "catalog.repository", name=name, q=query or None, sort=sort)
    return page_or_fragment("repository.html", "partials/tag_list.html", **context)


@bp.route("/repositories/<path:name>/-/progress")
@requires(Role.DEVELOPER)
def repository_progress(name: str):
    """The shared tag read's progress line; when done (286: stop polling), the complete list in its place."""
    progress = services().streaming.tags_progress(name)
    if progress is not None:
        return render_template("partials/progress_line.html", **_tags_progress(name, progress))
    return _completed("partials/tag_list.html", "#tag-list", _tag_list(name))


def _completed(template: str, target: str, context: dict) -> Response:
    response = make_response(render_template(template, **context), 286)
    response.headers["HX-Retarget"] = target
    response.headers["HX-Reswap"] = "innerHTML"
    return response


def _repository_list() -> dict:
    catalog = services().catalog
    query = _text_arg("q")
    number = max(1, request.args.get("page", 1, type=int))
    listing = services().streaming.repositories(query, number * REPOSITORIES_PER_PAGE)
    page = paginate(listing.names, number, REPOSITORIES_PER_PAGE)
    context = {"query": query, "page": page, "total": listing.total, "loading": listing.progress is not None}
    context |= {"counts": catalog.cached_tag_counts(page.items), "age": catalog.catalog_age()}
    if listing.progress is not None:
        context |= _catalog_progress(listing.progress)
    return context


def _catalog_progress(progress: Progress) -> dict:
    url = url_for("catalog.repositories_progress", q=_text_arg("q") or None, page=request.args.get("page"))
    text = f"Reading the catalog: {progress.done:,} names so far; the total and search over every name follow."
    return {"progress": progress, "progress_url": url, "progress_text": text}


def _tag_list(name: str) -> dict:
    """The tag page's context: while tags are still read, the first page by name; then everything."""
    query = _text_arg("q")
    number = request.args.get("page", 1, type=int)
    requested = request.args.get("sort", "name")
    descending = request.args.get("order", "asc" if requested == "name" else "desc") == "desc"
    listing = services().streaming.repository(name, query, descending and requested == "name", number, IMAGES_PER_PAGE)
    context = {
        # one url_for, not one per tag: tags and digests are URL-safe by the registry's own rules
        "reference_prefix": url_for("catalog.tag", name=name, reference="x")[:-1],
        "name": name,
        "query": query,
        "tag_count": listing.tag_count,
        "shown_tags": len(listing.tags),
        "loading": listing.progress is not None,
        "pushed": {},
    }
    if listing.progress is not None:
        sort = requested if requested in SORT_KEYS else "name"
        page, image_count = tag_page(listing, query, sort, descending, number, IMAGES_PER_PAGE)
        context |= {"sort": sort, "descending": descending, "page": page, "image_count": image_count}
        return context | _tags_progress(name, listing.progress)
    return context | _complete_tag_list(name, query, number)


def _complete_tag_list(name: str, query: str, number: int) -> dict:
    """Every tag read: grouped by image, newest pushed first when push dates are known."""
    all_groups = group_by_digest(services().catalog.tags(name))
    settings = services().settings
    pushed = group_pushed(all_groups, pushed_times(settings.nfs_path, name, settings.nfs_deadline))
    sort = request.args.get("sort", default_sort(pushed))
    sort = sort if sort in SORT_KEYS else default_sort(pushed)
    descending = request.args.get("order", "asc" if sort == "name" else "desc") == "desc"
    groups = sort_groups(filter_groups(all_groups, query), sort, descending, pushed)
    page = paginate(groups, number, IMAGES_PER_PAGE)
    return {"sort": sort, "descending": descending, "page": page, "pushed": pushed, "image_count": len(all_groups)}


def _tags_progress(name: str, progress: Progress) -> dict:
    args: dict[str, str] = {key: request.args[key] for key in ("q", "sort", "order", "page") if request.args.get(key)}
    url = url_for("catalog.repository_progress", name=name, **args)  # type: ignore[arg-type]
    text = f"Reading {progress.remaining or 0:,} more tags for sorting by date, filtering by digest and totals"
    return {"progress": progress, "progress_url": url, "progress_text": text}


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
