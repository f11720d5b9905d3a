"""What a developer, an ops engineer and an admin do in Berth, in real Chromium.

Each journey logs in through the form and checks every page it visits (see conftest:
console, requests, statuses, axe, keyboard). htmx interactions must not reload the page:
a ``window.__marker`` set before them must still be there after. The journeys also write
the README's screenshots to docs/screenshots/.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.stack, pytest.mark.swarm]

NO_RELOAD = "window.__marker"


def set_marker(page) -> None:
    page.evaluate("window.__marker = 1")


def assert_no_reload(page) -> None:
    assert page.evaluate(NO_RELOAD) == 1, "the page reloaded"


def test_developer_browses_the_catalog(open_journey) -> None:
    journey = open_journey()
    page = journey.page
    journey.visit("/login")
    journey.check_page()
    journey.screenshot("login")

    journey.log_in("dave")
    assert "Jobs" not in journey.nav_links() and "Health" not in journey.nav_links()
    journey.check_page()

    # Search as you type: the list changes, the page does not reload, the URL follows.
    journey.visit("/repositories")
    journey.check_page()
    journey.screenshot("repositories")
    set_marker(page)
    page.get_by_role("searchbox", name="Search repositories").press_sequentially("tea", delay=60)
    listing = page.locator("#repository-list")
    expect(listing.get_by_role("link", name="team/app/api")).to_be_visible()
    expect(listing.get_by_role("link", name="node", exact=True)).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/repositories\?q=tea$"))
    assert_no_reload(page)
    journey.check_page()

    # Tags sorted by date: newest image first.
    journey.visit("/repositories")
    page.get_by_role("link", name="node", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("node")
    set_marker(page)
    expect(page.locator("#tag-list th[aria-sort]")).to_have_text(re.compile("Pushed"))  # newest pushed by default
    page.get_by_label("Sort").select_option(label="by date built")
    expect(page.locator("#tag-list th[aria-sort]")).to_have_attribute("aria-sort", "descending")
    rows = page.locator("#tag-list tbody tr")
    expect(rows.first.locator("a.tag")).to_have_text(["22", "lts"])
    tag_rows = [row.locator("a.tag").all_inner_texts() for row in rows.all()]
    assert tag_rows[:3] == [["22", "lts"], ["20"], ["18"]], tag_rows
    expect(page.get_by_label("Order")).to_have_value("desc")
    expect(page.get_by_label("Order").locator("option:checked")).to_have_text("newest first")
    expect(page).to_have_url(re.compile(r"sort=created"))
    assert_no_reload(page)
    journey.check_page()
    journey.screenshot("repository")

    # A multi-platform tag: platform tabs swap the panel in place.
    page.locator("#tag-list").get_by_role("link", name="22", exact=True).click()
    expect(page).to_have_url(journey.url("/repositories/node/tags/22"))
    page.wait_for_load_state("networkidle")
    journey.check_page()
    journey.screenshot("tag", full_page=True)
    set_marker(page)
    panel = page.locator("#platform-panel")
    first_tab = page.get_by_role("tab").first
    expect(first_tab).to_have_attribute("aria-selected", "true")
    before = panel.inner_text()
    arm = page.get_by_role("tab", name="linux/arm64/v8")
    arm.click()
    expect(panel).to_have_attribute("aria-label", "linux/arm64/v8")
    assert panel.inner_text() != before
    expect(arm).to_have_attribute("aria-selected", "true")
    expect(first_tab).to_have_attribute("aria-selected", "false")
    assert_no_reload(page)
    journey.check_page()

    # The pull line lands in the clipboard exactly.
    wanted = f"docker pull {journey.server.registry_host}/node:22"
    expect(page.locator("#pull-tag")).to_have_text(wanted)
    copy = page.get_by_role("button", name="Copy the pull command by tag")
    copy.click()
    expect(copy).to_have_attribute("data-copied", wanted)
    assert page.evaluate("navigator.clipboard.readText()") == wanted
    journey.assert_clean()

    # No jobs for a developer: no link, and 403 at the address, naming the group that grants it.
    journey.visit("/jobs", status=403)
    expect(page.locator(".status-code")).to_have_text("403")
    expect(page.locator(".error-page")).to_contain_text("cn=registry-admins")
    assert "Jobs" not in journey.nav_links()
    journey.check_page()

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)
    journey.check_page()


def test_error_and_empty_result_pages_lead_onward(open_journey) -> None:
    journey = open_journey()
    page = journey.page
    journey.log_in("dave")

    # A missing tag links the repository's tag list.
    journey.visit("/repositories/node/tags/no-such-tag", status=404)
    expect(page.locator(".error-page")).to_contain_text("has no tag 'no-such-tag'")
    journey.check_page()
    page.get_by_role("link", name="All tags of node").click()
    expect(page).to_have_url(journey.url("/repositories/node"))

    # A page past the end says so and links the first and last pages.
    journey.visit("/repositories/node?page=99", status=404)
    expect(page.locator(".error-page")).to_contain_text("There is no page 99")
    expect(page.get_by_role("link", name=re.compile(r"Last page \(1\)"))).to_be_visible()
    journey.check_page()
    page.get_by_role("link", name="First page").click()
    expect(page.locator("#tag-list tbody tr").first).to_be_visible()

    # "No match" only after a search, with a correct plural; the tag filter matches anywhere.
    journey.visit("/repositories")
    expect(page.get_by_text("No match")).to_have_count(0)
    journey.visit("/repositories?q=zzz-nothing")
    expect(page.locator(".count")).to_contain_text("0 matches")
    expect(page.get_by_text("No match")).to_be_visible()
    journey.check_page()
    journey.visit("/repositories/node?q=ts")
    expect(page.locator("#tag-list a.tag", has_text="lts")).to_be_visible()
    expect(page.locator(".count")).to_contain_text(re.compile(r"(^|\s)(1 match|[02-9]\d* matches) for"))
    journey.assert_clean()


def _assert_fits(journey, width: int = 390) -> None:
    """No sideways scroll, and every nav item and tag-table cell inside the screen."""
    page = journey.page
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{page.url} is {scroll}px wide on a {width}px screen"
    outside = page.evaluate(
        """(width) => [...document.querySelectorAll('.mainnav a, .whoami button, #tag-list td, .pull')]
             .filter((el) => { const r = el.getBoundingClientRect();
                               return r.width > 0 && (r.left < 0 || r.right > width + 0.5); })
             .map((el) => el.textContent.trim().slice(0, 30))""",
        width,
    )
    assert not outside, f"cut off on {page.url}: {outside}"


def test_catalog_fits_a_phone(open_journey) -> None:
    journey = open_journey(390, 844)
    page = journey.page
    journey.log_in("alice")  # the longest navigation
    expected = [
        "Overview",
        "Repositories",
        "Activity",
        "Health",
        "Storage",
        "Jobs",
        "Audit",
        "Retention",
        "Access",
        "Tokens",
        "Trust",
    ]
    assert journey.nav_links() == expected
    for path, shot in (
        ("/", "overview-narrow"),
        ("/repositories", "repositories-narrow"),
        ("/repositories/node", "repository-narrow"),
        ("/repositories/node/tags/22", "tag-narrow"),
        ("/health", "health-narrow"),
    ):
        journey.visit(path)
        _assert_fits(journey)
        for link in page.get_by_role("navigation", name="Main").get_by_role("link").all():
            expect(link).to_be_in_viewport()
        journey.screenshot(shot)
    journey.visit("/repositories/node")
    journey.check_page()
    # Tag rows are cards: a labelled line per field, numbers and dates on one line.
    first = page.locator("#tag-list tbody tr").first
    expect(first.locator("td[data-label=Size]")).to_be_visible()
    height = first.locator("td[data-label=Pushed]").evaluate("(el) => el.getBoundingClientRect().height")
    assert height < 40, f"the pushed date wraps ({height}px)"


def _registry_service(server):
    import docker

    client = docker.DockerClient(base_url=server.env["DOCKER_HOST"])
    return client, client.services.get(server.env["BERTH_SWARM_SERVICE"])


def _wait_registry_answers(server, timeout: float = 60.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            url = server.env["BERTH_REGISTRY_URL"] + "/v2/"
            if requests.get(url, verify=server.env["BERTH_REGISTRY_CA"], timeout=2).status_code in (200, 401):
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail("the registry did not come back")


def test_ops_watches_health_and_sees_an_outage(open_journey) -> None:
    journey = open_journey()
    page = journey.page
    journey.log_in("olivia")
    assert "Health" in journey.nav_links() and "Jobs" not in journey.nav_links()

    journey.visit("/health")
    journey.check_page()
    journey.screenshot("health", full_page=True)

    # The panels refresh themselves: new elements, new text, same page.
    set_marker(page)
    panels = page.locator(".health-panel")
    expect(panels).to_have_count(4)
    page.evaluate("document.querySelectorAll('.health-panel').forEach((el) => { el.__old = true; })")
    before = page.locator(".panels").inner_text()
    page.wait_for_function(
        """(before) => {
             const panels = [...document.querySelectorAll('.health-panel')];
             return panels.length === 4 && panels.every((el) => !el.__old)
               && document.querySelector('.panels').innerText !== before;
           }""",
        arg=before,
        timeout=25_000,
    )
    expect(page.locator(".health-panel .age").first).to_have_text(re.compile(r"checked \d+ s ago"))
    assert_no_reload(page)

    # A finding explains what to do; the advice stays open through the next refresh.
    details = page.locator(".finding details").first
    details.locator("summary", has_text="What to do").click()
    expect(details).to_have_attribute("open", "")
    expect(details.locator("p").first).to_be_visible()
    owner = details.locator("xpath=ancestor::section[contains(@class, 'health-panel')]").get_attribute("id")
    page.evaluate("(id) => { document.getElementById(id).__old = true; }", owner)
    page.wait_for_function("(id) => !document.getElementById(id).__old", arg=owner, timeout=15_000)
    expect(page.locator(f"#{owner} .finding details").first).to_have_attribute("open", "")

    # A developer looks at some images first: Berth keeps them.
    developer = open_journey()
    developer.log_in("dave")
    developer.visit("/repositories/node")
    developer.visit("/repositories/node/tags/22")

    # Stop the registry: its panel turns red within one refresh; restore it: it answers again.
    # (The panel stays red then: the devstack registry lets anyone push, a critical finding.)
    client, service = _registry_service(journey.server)
    registry_panel = page.locator("#panel-registry")
    try:
        expect(registry_panel).to_contain_text("GET /v2/ answered in")
        expect(registry_panel).to_contain_text("accepts pushes from anyone")
        service.scale(0)
        expect(registry_panel).to_contain_text("The registry API does not answer", timeout=16_000)
        expect(registry_panel).to_have_class(re.compile(r"\bstatus-critical\b"))
        expect(registry_panel.locator(".badge").first).to_have_text("failing")
        # The commonest outage gets the right advice, and no second alarm from the certificates.
        name = journey.server.env.get("BERTH_SWARM_SERVICE", "registry")
        expect(page.locator("#panel-swarm")).to_contain_text(f"docker service scale {name}=1", timeout=16_000)
        expect(page.locator("#panel-swarm")).not_to_contain_text("run the setup job")
        expect(page.locator("#panel-certs")).not_to_have_class(re.compile(r"status-(warning|critical)"))
        assert_no_reload(page)
        _browse_while_the_registry_is_down(developer)
    finally:
        service.reload()
        service.scale(1)
        _wait_registry_answers(journey.server)
        client.close()
    expect(registry_panel).to_contain_text("GET /v2/ answered in", timeout=30_000)
    assert_no_reload(page)
    journey.assert_clean()

    # Ops runs no jobs.
    for path in ("/", "/health"):
        journey.visit(path)
        expect(page.get_by_role("button", name="Rotate certificate")).to_have_count(0)
        expect(page.get_by_role("link", name=re.compile("Run setup|Rotate the certificate"))).to_have_count(0)
    journey.visit("/jobs", status=403)
    journey.check_page()


def _browse_while_the_registry_is_down(journey) -> None:
    """Saved pages under a banner; what was never saved explained in plain words."""
    page = journey.page
    journey.visit("/repositories?refresh=1")  # a reload that fails: Berth now knows the registry is down
    banner = page.locator(".banner")
    expect(banner).to_contain_text(re.compile(r"Registry not answering since \d\d:\d\d UTC; pulls will fail"))
    expect(page.locator("#repository-list tbody tr").first).to_be_visible()
    journey.check_page()
    journey.visit("/repositories/node")
    expect(banner).to_be_visible()
    expect(page.locator("#tag-list tbody tr").first).to_be_visible()
    journey.visit("/repositories/node/tags/22")
    expect(page.locator("#pull-tag")).to_contain_text("node:22")
    journey.screenshot("registry-down")
    for status in (502, 504):
        journey.watcher.allow(status, "/repositories/never-seen")
    response = page.goto(journey.url("/repositories/never-seen"))
    assert response is not None and response.status in (502, 504), response and response.status
    expect(page.get_by_role("heading", level=1)).to_have_text("Registry not answering")
    expect(page.locator(".error-page")).to_contain_text("Pulls and pushes fail too")
    expect(page.locator(".error-page").get_by_role("link", name="Back to the overview")).to_be_visible()
    journey.assert_clean()


def test_an_expired_session_sends_the_tab_to_login(open_journey) -> None:
    journey = open_journey()
    page = journey.page
    journey.log_in("olivia")
    journey.visit("/health")
    for name in ("registry", "nfs", "swarm", "certs"):
        journey.watcher.allow(401, f"/health/panels/{name}")
    # The same session ends elsewhere (logged out in another window).
    other = open_journey()
    other.page.context.add_cookies(page.context.cookies())
    other.visit("/")
    other.page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login\?next=(/|%2F)health$"), timeout=25_000)
    expect(page.locator(".health-panel")).to_have_count(0)
    expect(page.locator("input[name=password]")).to_have_count(1)  # one login form, not one per panel
    journey.check_page()
    page.get_by_label("Username").fill("olivia")
    page.get_by_label("Password").fill("olivia-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(journey.url("/health"))
    journey.assert_clean()


def test_an_empty_registry_says_how_to_push(browser, server, tmp_path_factory) -> None:
    from devstack import auth as registries
    from tests.browser.conftest import Journey, Watcher, _serve

    url = registries.start_plain_registry(server.state_dir, "empty-registry")
    storage = registries.data_dir(server.state_dir, "empty-registry")
    env = server.env | {"BERTH_REGISTRY_URL": url, "BERTH_NFS_PATH": str(storage)}
    serving = _serve(tmp_path_factory, server.state_dir, env)
    context = None
    try:
        empty = next(serving)
        context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=empty.base_url)
        page = context.new_page()
        watcher = Watcher()
        watcher.attach(page)
        journey = Journey(page, watcher, empty)
        journey.log_in("dave")
        journey.visit("/repositories")
        expect(page.get_by_role("heading", name="No images yet")).to_be_visible()
        expect(page.get_by_text("No match")).to_have_count(0)
        expect(page.locator(".count")).to_contain_text("0 repositories")
        host = urlsplit(url).netloc
        expect(page.locator(".empty-state")).to_contain_text(f"docker login {host}")
        expect(page.locator(".empty-state")).to_contain_text(f"docker push {host}/dave/IMAGE:1.0")
        journey.check_page()
        journey.screenshot("repositories-empty")
    finally:
        if context is not None:
            context.close()
        serving.close()
        registries.stop(server.state_dir, "empty-registry")


def test_admin_sees_jobs_and_downloads_the_ca(open_journey, tmp_path) -> None:
    journey = open_journey()
    page = journey.page
    journey.log_in("alice")
    expect(page.locator("#health-summary li")).to_have_count(4)
    journey.check_page()
    journey.screenshot("overview")

    journey.visit("/jobs")
    expect(page.get_by_role("link", name="Run setup…")).to_be_visible()
    expect(page.get_by_role("button", name="Rotate certificate")).to_be_visible()
    journey.check_page()
    journey.screenshot("jobs")

    journey.visit("/trust")
    journey.check_page()
    journey.screenshot("trust", full_page=True)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download ca.crt").click()
    saved = tmp_path / "ca.crt"
    download_info.value.save_as(saved)
    pem = saved.read_bytes()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    downloaded = x509.load_pem_x509_certificate(pem)
    ca = x509.load_pem_x509_certificate((Path(journey.server.env["BERTH_CA_DIR"]) / "ca.crt").read_bytes())
    assert downloaded == ca
    fingerprint = ":".join(f"{b:02X}" for b in downloaded.fingerprint(hashes.SHA256()))
    expect(page.locator(".facts")).to_contain_text(fingerprint)
    journey.assert_clean()


def _served_fingerprint(server) -> str:
    """SHA-256 of the certificate the registry serves now, as the health page writes it."""
    address = urlsplit(server.env["BERTH_REGISTRY_URL"])
    pem = ssl.get_server_certificate((address.hostname, address.port))
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def test_admin_rotates_the_certificate(open_journey) -> None:
    journey = open_journey()
    page = journey.page
    server = journey.server
    old = _served_fingerprint(server)
    journey.log_in("alice")
    journey.visit("/jobs")

    # Saying no to the confirmation starts nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Rotate certificate").click()
    expect(page).to_have_url(journey.url("/jobs"))

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate certificate").click()
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    set_marker(page)
    state = page.locator("#job-state")
    expect(state).to_have_text(re.compile("succeeded|failed"), timeout=120_000)
    steps = page.locator(".steps .step")
    assert steps.count() > 0
    assert state.inner_text() == "succeeded", page.locator("#job-status").inner_text()
    assert "failed" not in steps.locator(".badge").all_inner_texts()
    assert_no_reload(page)
    journey.check_page()

    new = _served_fingerprint(server)
    assert new != old
    journey.visit("/health")
    certs = page.locator("#panel-certs")
    expect(certs).to_contain_text(new, timeout=25_000)
    expect(certs).not_to_contain_text(old)
    journey.assert_clean()
