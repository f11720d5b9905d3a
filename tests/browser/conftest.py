"""Fixtures for the browser journeys: real Chromium against Berth served by gunicorn.

One ``devstack up --swarm`` and one gunicorn (started as the README deploys it) serve the
whole browser session. Every page a journey visits is checked the same way: no console
error (Chromium logs CSP violations there), no failed request, no unexpected status >= 400,
no axe-core violation rated serious or critical, and every link, button and field reachable
with the Tab key. Locally a missing Chromium or Docker engine skips; under CI=true it fails.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devstack.berth import BerthServer, BerthStartError
from tests.helpers import need, running_devstack

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
AXE_SOURCE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
# The README's screenshots are rewritten only on request (make screenshots), so a test
# run never dirties the work tree; otherwise they go to a throw-away directory.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("BERTH_SCREENSHOTS") == "docs"
    else Path(tempfile.gettempdir()) / "berth-screenshots"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class Server:
    """Berth under gunicorn on the Swarm devstack."""

    base_url: str
    env: dict[str, str]
    state_dir: Path

    @property
    def registry_host(self) -> str:
        """host:port of the registry, as the pull lines name it."""
        return urlsplit(self.env["BERTH_REGISTRY_URL"]).netloc


@pytest.fixture(scope="module")  # down before the integration tests start their own Swarm engines
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Berth as deployed (gunicorn + gunicorn.conf.py) on a fresh Swarm devstack."""
    with running_devstack(tmp_path_factory, "browser-stack", swarm=True) as (state_dir, stack_env):
        yield from _serve(tmp_path_factory, state_dir, stack_env)


def _serve(tmp_path_factory: pytest.TempPathFactory, state_dir: Path, stack_env: dict[str, str]) -> Iterator[Server]:
    """gunicorn as the README starts it, on the given stack, until the generator is closed."""
    work = tmp_path_factory.mktemp("browser-berth")
    (work / "metrics").mkdir()
    settings = stack_env | {"BERTH_HEALTH_INTERVAL": "2", "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics")}
    berth = BerthServer(settings, work / "data", work / "gunicorn.log", clean_env=True)
    try:
        berth.start()
    except BerthStartError as exc:
        berth.stop()
        pytest.fail(f"{exc}\n{berth.log_tail()}")
    try:
        yield Server(berth.base_url, stack_env, state_dir)
    finally:
        berth.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, through Playwright."""
    if not CHROMIUM.exists():
        need(f"{CHROMIUM} is missing (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:
        playwright.stop()
        need(f"Chromium did not start: {exc}")
    yield chromium
    chromium.close()
    playwright.stop()


@dataclass
class Watcher:
    """Collects what goes wrong on a page: console errors, failed requests, bad statuses."""

    problems: list[str] = field(default_factory=list)
    allowed: set[tuple[int, str]] = field(default_factory=set)

    def attach(self, page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught error: {error}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def allow(self, status: int, path: str) -> None:
        """A status >= 400 the journey expects (e.g. 403 for a role that is too low)."""
        self.allowed.add((status, path))

    def _console(self, message) -> None:
        if message.type != "error":
            return
        if message.text.startswith("Failed to load resource: the server responded with a status of"):
            return  # the response listener judges statuses; this is Chromium's echo of one
        self.problems.append(f"console error: {message.text} at {message.location.get('url')}")

    def _failed(self, request) -> None:
        # ERR_ABORTED is the browser's own doing: a navigation that cancels a pending
        # favicon, hx-sync replacing an older search request, a download.
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def _response(self, response) -> None:
        if response.status >= 400 and (response.status, urlsplit(response.url).path) not in self.allowed:
            self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def take(self) -> list[str]:
        """The problems seen so far, forgetting them."""
        seen, self.problems = self.problems, []
        return seen


# Elements that should take keyboard focus, and a key for each that survives an htmx swap.
FOCUSABLE_JS = """
() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]';
  const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden'
    && !el.closest('details:not([open]) > :not(summary)');
  const all = [...document.querySelectorAll(selector)].filter(
    (el) => !el.disabled && el.getAttribute('tabindex') !== '-1' && shown(el));
  const counts = {};
  const keyed = all.map((el) => {
    const scope = el.parentElement && el.parentElement.closest('[id]');
    const base = [el.tagName, el.id, el.getAttribute('href'), el.getAttribute('name'),
                  (el.textContent || '').trim().slice(0, 40), scope ? scope.id : ''].join('|');
    counts[base] = (counts[base] || 0) + 1;
    return [el, base + '#' + counts[base]];
  });
  return keyed;
}
"""


class Journey:
    """One user's tab: the page, its watcher, and the checks every page gets."""

    def __init__(self, page, watcher: Watcher, server: Server) -> None:
        self.page = page
        self.watcher = watcher
        self.server = server

    def url(self, path: str) -> str:
        return self.server.base_url + path

    def visit(self, path: str, status: int = 200):
        """Open ``path`` and wait until htmx and the network are quiet."""
        if status >= 400:
            self.watcher.allow(status, urlsplit(path).path)
        response = self.page.goto(self.url(path))
        assert response is not None and response.status == status, f"{path}: {response and response.status}"
        self.page.wait_for_load_state("networkidle")
        return response

    def log_in(self, username: str) -> None:
        """Log in through the form, as a person would."""
        from playwright.sync_api import expect

        self.visit("/login")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(f"{username}-pw")
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page).to_have_url(self.url("/"))
        self.page.wait_for_load_state("networkidle")

    def nav_links(self) -> list[str]:
        return self.page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()

    def check_page(self) -> None:
        """No problem so far, axe finds nothing serious, and Tab reaches every control."""
        self.assert_clean()
        self.assert_accessible()
        self.assert_keyboard_reachable()
        self.assert_clean()

    def assert_clean(self) -> None:
        problems = self.watcher.take()
        assert not problems, f"on {self.page.url}:\n" + "\n".join(problems)

    def assert_accessible(self) -> None:
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            # Through the devtools protocol, which the page's CSP does not govern.
            self.page.evaluate(AXE_SOURCE.read_text())
        violations = self.page.evaluate(
            """async () => {
                 const result = await axe.run(document, {resultTypes: ['violations']});
                 return result.violations.filter((v) => ['serious', 'critical'].includes(v.impact)).map(
                   (v) => `${v.impact} ${v.id}: ${v.help} -> `
                     + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', '));
               }"""
        )
        assert not violations, f"axe on {self.page.url}:\n" + "\n".join(violations)

    def assert_keyboard_reachable(self) -> None:
        page = self.page
        wanted = set(page.evaluate(f"() => ({FOCUSABLE_JS})().map(([, key]) => key)"))
        page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
        page.mouse.click(1, 1)  # start the Tab order at the top of the document
        reached: set[str] = set()
        for _ in range(2 * len(wanted) + 10):
            page.keyboard.press("Tab")
            key = page.evaluate(
                f"() => {{ const hit = ({FOCUSABLE_JS})().find(([el]) => el === document.activeElement);"
                " return hit ? hit[1] : null; }"
            )
            if key:
                reached.add(key)
            if wanted <= reached:
                break
        missing = sorted(wanted - reached)
        assert not missing, f"not reachable with Tab on {page.url}: {missing}"

    def screenshot(self, name: str, full_page: bool = False) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # No focus ring or hover left over from the keyboard check.
        self.page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
        self.page.mouse.move(0, self.page.viewport_size["height"] - 1)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page, animations="disabled")


@pytest.fixture
def open_journey(browser, server: Server) -> Iterator:
    """Opens a fresh browser context (own cookies) per journey; closes them all after the test."""
    contexts = []

    def open_(width: int = 1280, height: int = 800) -> Journey:
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=server.base_url)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        watcher = Watcher()
        watcher.attach(page)
        return Journey(page, watcher, server)

    yield open_
    for context in contexts:
        context.close()
