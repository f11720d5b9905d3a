"""A repository larger than a page, cold, in real Chromium: first page, progress line, then everything.

The repository (600 tags over 4 images, pushed through the registry API) is more than one
page, so its first view shows page 1 by name with a progress line that polls; when the
shared read completes, htmx swaps in the complete list, date-sorted, without a reload.
No console error and no CSP violation may occur while it streams (the watcher sees both).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from devstack import seed
from tests.browser.conftest import Server, _serve
from tests.helpers import running_devstack

pytestmark = [pytest.mark.browser, pytest.mark.stack]

REPO = "stream/many"
DATES = ["2023-01-05T10:00:00Z", "2024-06-01T10:00:00Z", "2022-03-01T10:00:00Z", "2025-02-01T10:00:00Z"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Berth under gunicorn on a plain devstack (no Swarm needed), with REPO pushed."""
    with running_devstack(tmp_path_factory, "stream-browser") as (state_dir, stack_env):
        session = seed.registry_session(stack_env["BERTH_REGISTRY_CA"])
        for number, created in enumerate(DATES):
            layer = seed.make_layer({"n": str(number).encode()}, created)
            image = seed.build_image(seed.ImageSpec(created=created, layers=[layer]))
            tags = [f"v{number}.{minor}" for minor in range(150)]
            seed.push_image(session, stack_env["BERTH_REGISTRY_URL"], REPO, image, tags)
        yield from _serve(tmp_path_factory, state_dir, stack_env)


def test_first_page_streams_then_the_date_sort_arrives_without_reload(open_journey) -> None:
    journey = open_journey()
    page = journey.page
    journey.log_in("dave")
    response = page.goto(journey.url(f"/repositories/{REPO}?sort=created&order=desc"))
    assert response is not None and response.status == 200
    progress = page.locator(".progress-line")
    count = page.locator("#tag-list .count")
    # Cold: page 1 by name (100 of 600 tags), a live progress line, the date order promised.
    first = response.text()
    assert 'class="progress-line' in first and "sorting by date once every tag is read" in first
    expect(count).to_contain_text("600 tags")
    page.evaluate("window.__marker = 1")
    # The shared read completes; the complete list replaces the page in place, date-sorted.
    expect(progress).to_have_count(0, timeout=60_000)
    expect(count).to_contain_text("600 tags · 4 images")
    expect(page.locator("#tag-list th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    built = page.locator("#tag-list tbody td[data-label=Built] time")  # the build date, not the push date
    dates = built.evaluate_all("(ts) => ts.map((t) => t.getAttribute('datetime'))")
    assert [d[:10] for d in dates] == ["2025-02-01", "2024-06-01", "2023-01-05", "2022-03-01"]
    assert page.evaluate("window.__marker") == 1, "the page reloaded"
    journey.check_page()


def test_progress_line_appears_while_reading(open_journey) -> None:
    """A repository read for the first time shows the progress line on its first view."""
    journey = open_journey()
    page = journey.page
    journey.log_in("alice")
    session = seed.registry_session(journey.server.env["BERTH_REGISTRY_CA"])
    layer = seed.make_layer({"n": b"late"}, DATES[0])
    image = seed.build_image(seed.ImageSpec(created=DATES[0], layers=[layer]))
    tags = [f"t{minor}" for minor in range(400)]
    seed.push_image(session, journey.server.env["BERTH_REGISTRY_URL"], "stream/late", image, tags)
    response = page.goto(journey.url("/repositories/stream/late"))
    assert response is not None
    first = response.text()
    assert 'class="progress-line' in first and "showing tags 1–100 by name" in first
    expect(page.locator(".progress-line")).to_have_count(0, timeout=60_000)
    expect(page.locator("#tag-list .count")).to_contain_text("400 tags · 1 image")
    journey.assert_clean()
