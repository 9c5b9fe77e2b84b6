"""Browser fixtures: headless Chromium (Debian's ``chromium`` package, driven by Playwright)
against the session's real server, with every console error, page error, CSP violation and
request of a page recorded so tests can assert there were none (or none elsewhere)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)
from playwright.sync_api import Request as PwRequest

from tests.conftest import Database, ServerProcess, mint_key

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).parent / "screenshots"
WIDE: ViewportSize = {"width": 1280, "height": 900}
NARROW: ViewportSize = {"width": 390, "height": 844}

# Runs share this 2-core machine with the rest of the suite: wait as long as for actions.
expect.set_options(timeout=30_000)

# Collects the page's CSP violations (init scripts run outside the page's policy).
CSP_WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver for this module's tests."""
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless; the browser tests fail (not skip) without it."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
    yield browser
    browser.close()


@pytest.fixture
def key(database: Database) -> str:
    """A key of a fresh project, minted on another thread: Playwright's sync API keeps an
    event loop running on this one, where ``asyncio.run`` refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(mint_key, database.url, f"web-{uuid.uuid4().hex[:12]}").result()


@dataclass
class Watched:
    """A page and what it reported."""

    page: Page
    origin: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and CSP violations seen so far."""
        csp: list[str] = []
        if not self.page.is_closed():
            csp = [f"CSP: {v}" for v in self.page.evaluate("window.__csp || []")]
        return self.errors + csp

    def assert_clean(self) -> None:
        """No console error, page error or CSP violation, and no request to another origin."""
        assert self.problems() == []
        # blob: URLs of this origin are the page's own downloads and images.
        mine = (self.origin + "/", f"blob:{self.origin}/")
        foreign = [url for url in self.requests if not url.startswith(mine)]
        assert foreign == [], foreign

    def screenshot(self, name: str) -> Path:
        """Save the page as ``screenshots/<name>.png``, after checking that nothing sticks
        out sideways (the page must fit a 390 px phone without horizontal scrolling)."""
        width = self.page.evaluate("document.documentElement.scrollWidth")
        viewport = self.page.viewport_size
        assert viewport is not None
        assert width <= viewport["width"], (name, width)
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path


def watch(browser: Browser, origin: str, viewport: ViewportSize = WIDE) -> Watched:
    """A new page (own context: own sessionStorage and localStorage) under watch."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.add_init_script(CSP_WATCH)
    watched = Watched(page, origin)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.errors.append(f"console: {message.text}")

    def on_request(request: PwRequest) -> None:
        watched.requests.append(request.url)

    def on_error(error: Any) -> None:
        watched.errors.append(f"pageerror: {error}")

    page.on("console", on_console)
    page.on("pageerror", on_error)
    page.on("request", on_request)
    return watched


@pytest.fixture
def web(browser: Browser, server: ServerProcess) -> Iterator[Watched]:
    """A watched page at 1280 px on the session's server."""
    watched = watch(browser, server.base_url)
    yield watched
    watched.page.context.close()
