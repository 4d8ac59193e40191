"""Browser tests: Playwright for Python driving Debian's chromium (`make browser` installs it;
Playwright's own browser download is never used). One browser per test module; each test gets a
fresh context (no shared storage, service workers or cookies) and page, sized like a phone and
set to Indonesian and Jakarta time.

The services under test run on an asyncio loop in a background thread (`service_loop`):
Playwright's sync API drives the browser from the test's thread, and `service_loop.run(coro)`
does what the test needs on the services' side (start a host, seed data, read the database).

Screenshots of main screens: `screenshot(page, "desk/enrol.png")` writes under the directory
named by BROWSER_SCREENSHOTS (e.g. `docs`, what `make desk-screenshots` sets), else under the
test's tmp_path, so a normal run never touches the working tree.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Root needs --no-sandbox (CI containers run as root).
BASE_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]
PHONE = {"width": 412, "height": 915}
T = TypeVar("T")


# Module-scoped, not session-scoped: while Playwright's sync API is started, the test thread
# counts as running an event loop, so asyncio.run() (the session's server fixtures) and the
# async tests of other modules must happen before it starts or after it stops. Session
# fixtures are set up before module ones, and the browser is closed with its module.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def launch(playwright: Playwright) -> Iterator[Callable[..., Browser]]:
    """Start another chromium with extra command-line flags (a fake camera, say); closed with
    the module."""
    started: list[Browser] = []

    def start(*args: str) -> Browser:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*BASE_ARGS, *args])
        started.append(browser)
        return browser

    yield start
    for browser in started:
        browser.close()


@pytest.fixture(scope="module")
def browser(launch: Callable[..., Browser]) -> Browser:
    return launch()


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    """A context like a desk's phone: Indonesian, Jakarta time, a phone-sized screen."""
    context = browser.new_context(
        **{"viewport": PHONE, "locale": "id-ID", "timezone_id": "Asia/Jakarta", **options}
    )
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = new_context(browser)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


class LoopThread:
    """An asyncio loop in a thread of its own, for the services the browser talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def service_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[[Page, str], Path]:
    root = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path)

    def take(page: Page, name: str) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
