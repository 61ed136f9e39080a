"""The real browser of the page tests: Debian's chromium (installed by
scripts/prepare-machine.sh) driven by Playwright, which downloads no browser of its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Playwright, Request, Route, sync_playwright

from tests.servers import ADMIN_TOKEN

CHROMIUM = os.environ.get("DEPLOYBOT_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("DEPLOYBOT_TEST_ARTIFACTS", "test-artifacts"))
"""Where the test run keeps its screenshots."""

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = _chromium(playwright)
        yield browser
        browser.close()


def _chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)


class OfflinePage:
    """A page that may reach only the server under test: any other request is aborted and
    remembered, so a test can assert the page needed nothing from the internet."""

    def __init__(self, browser: Browser, base_url: str, token: str | None = ADMIN_TOKEN) -> None:
        self.origin = urlsplit(base_url).netloc
        self.context = browser.new_context(
            base_url=base_url, viewport={"width": 1400, "height": 900}
        )
        if token:  # signed in, as the top bar's form leaves it
            self.context.add_init_script(f"localStorage.setItem('deploybot.token', {token!r})")
        self.page: Page = self.context.new_page()
        self.elsewhere: list[str] = []
        self.console_errors: list[str] = []
        self.page.route("**/*", self._only_the_server)
        self.page.on(
            "console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None
        )

    def _only_the_server(self, route: Route, request: Request) -> None:
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob") or url.netloc == self.origin:
            route.continue_()
        else:
            self.elsewhere.append(request.url)
            route.abort()

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()
