"""The catalog browser: repositories, their tags and image details (everyone)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, make_response, render_template, request, url_for

from berth.catalog.listing import SORT_KEYS, paginate
from berth.catalog.progress import Progress
from berth.catalog.service import platforms_in_order
from berth.catalog.shapes import pull_lines
from berth.catalog.streaming import tag_page
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
    """Every repository, filtered as you type, 50 a page; the first page before the catalog walk ends."""
    return page_or_fragment("repositories.html", "partials/repository_list.html", **_repository_list())


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
    return page_or_fragment("repository.html", "partials/tag_list.html", **_tag_list(name))


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
    query = _text_arg("q")
    number = max(1, request.args.get("page", 1, type=int))
    listing = services().streaming.repositories(query, number * REPOSITORIES_PER_PAGE)
    page = paginate(listing.names, number, REPOSITORIES_PER_PAGE)
    context = {"query": query, "page": page, "total": listing.total, "loading": listing.progress is not None}
    context["counts"] = services().catalog.cached_tag_counts(page.items)
    if listing.progress is not None:
        context |= _catalog_progress(listing.progress)
    return context


def _catalog_progress(progress: Progress) -> dict:
    url = url_for("catalog.repositories_progress", q=_text_arg("q") or None, page=request.args.get("page"))
    text = f"Reading the catalog: {progress.done:,} names so far; the total and search over every name follow."
    return {"progress": progress, "progress_url": url, "progress_text": text}


def _tag_list(name: str) -> dict:
    query = _text_arg("q")
    sort = request.args.get("sort", "name")
    sort = sort if sort in SORT_KEYS else "name"
    descending = request.args.get("order", "desc" if sort == "created" else "asc") == "desc"
    number = request.args.get("page", 1, type=int)
    by_name_descending = descending and sort == "name"
    listing = services().streaming.repository(name, query, by_name_descending, number, IMAGES_PER_PAGE)
    page, image_count = tag_page(listing, query, sort, descending, number, IMAGES_PER_PAGE)
    context = {
        # one url_for, not one per tag: tags and digests are URL-safe by the registry's own rules
        "reference_prefix": url_for("catalog.tag", name=name, reference="x")[:-1],
        "name": name,
        "query": query,
        "sort": sort,
        "descending": descending,
        "page": page,
        "tag_count": listing.tag_count,
        "image_count": image_count,
        "shown_tags": len(listing.tags),
        "loading": listing.progress is not None,
    }
    if listing.progress is not None:
        context |= _tags_progress(name, listing.progress)
    return context


def _tags_progress(name: str, progress: Progress) -> dict:
    args: dict[str, str] = {key: request.args[key] for key in ("q", "sort", "order", "page") if request.args.get(key)}
    url = url_for("catalog.repository_progress", name=name, **args)  # type: ignore[arg-type]
    text = f"Reading {progress.remaining or 0:,} more tags for sorting by date, filtering by digest and totals"
    return {"progress": progress, "progress_url": url, "progress_text": text}


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
