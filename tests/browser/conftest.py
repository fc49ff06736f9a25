"""Headless Chromium (Debian's ``chromium`` package) driven by Playwright for Python.

Playwright's own browser downloads are never used: the browser is the system one, launched with
``executable_path`` and a fresh profile per session. Screenshots go to
``test-output/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str:
    for candidate in (os.environ.get("MINEWATCH_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("chromium not found: install Debian's 'chromium' package (make test does it)")


@pytest.fixture(scope="session")
def screenshots(test_output: Path) -> Path:
    d = test_output / "screenshots"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="package")
def playwright_sync() -> Iterator[object]:
    """Playwright's sync API, package-scoped: it keeps an event loop running in the main thread
    while it is open, which would stop later tests from using asyncio.run()."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def launch(p: Any, profile: Path, extra_args: list[str] | None = None, **kw: Any) -> Any:
    """Chromium with a fresh user-data-dir (a persistent context is how Playwright takes one)."""
    return p.chromium.launch_persistent_context(
        str(profile), executable_path=chromium_path(), headless=True, args=[*CHROMIUM_ARGS, *(extra_args or [])],
        viewport={"width": 1600, "height": 1000}, device_scale_factor=1, **kw)


@pytest.fixture(scope="package")
def browser_context(playwright_sync: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Chromium for the browser tests, in the machine's time zone."""
    ctx = launch(playwright_sync, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(scope="package")
def new_york_context(playwright_sync: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second Chromium whose process runs in New York's time zone (TZ=America/New_York, UTC-5
    in winter, UTC-4 in summer): what it shows must still be mine time."""
    env = {**os.environ, "TZ": "America/New_York"}
    ctx = launch(playwright_sync, tmp_path_factory.mktemp("chromium-ny"), env=env)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(scope="package")
def us_context(playwright_sync: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Chromium in US English (``--lang=en-US``; its date picker would show 12/05/2026) in
    Chicago's time zone: days and times it shows must still be ISO and mine time."""
    env = {**os.environ, "TZ": "America/Chicago", "LANG": "en_US.UTF-8", "LANGUAGE": "en_US"}
    ctx = launch(playwright_sync, tmp_path_factory.mktemp("chromium-us"), extra_args=["--lang=en-US"], env=env,
                 locale="en-US", timezone_id="America/Chicago")
    try:
        yield ctx
    finally:
        ctx.close()


def _watched_page(ctx: Any) -> Iterator[Any]:
    pg = ctx.new_page()
    errors: list[str] = []
    pg.expected_errors = []
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    pg.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    pg.on("response", lambda r: errors.append(f"HTTP {r.status} {r.request.method} {r.url}") if r.status >= 400 else None)
    yield pg
    pg.close()
    unexpected = [e for e in errors if not any(x in e for x in pg.expected_errors)]
    assert not unexpected, "\n".join(unexpected)


@pytest.fixture
def page(browser_context: object) -> Iterator[object]:
    """A new tab; script errors on the page fail the test. A test that provokes an error on
    purpose (a refused key) lists a substring of it in ``page.expected_errors``. Ask for the
    fixtures serving the page before this one, so the page closes before its server stops."""
    yield from _watched_page(browser_context)


@pytest.fixture
def us_page(us_context: object) -> Iterator[object]:
    """A tab of the US-English Chromium, errors checked as for ``page``."""
    yield from _watched_page(us_context)


@pytest.fixture
def ny_page(new_york_context: object) -> Iterator[object]:
    """A tab of the Chromium running in New York's time zone, errors checked as for ``page``."""
    yield from _watched_page(new_york_context)


# The API served on a free port in front of the session's broker and InfluxDB, and a publisher
# that plays the robots and the ingestor: the API's own test fixtures.
from tests.api.conftest import KEYS, Api, Publisher, publisher, settings, start_api, wait_for  # noqa: E402, F401 - fixtures for this folder's tests, after its own
from tests.browser.mine import Mine  # noqa: E402 - beside the fixtures it drives


@pytest.fixture
def mine(publisher: Publisher) -> Iterator[Mine]:  # noqa: F811 - uses the fixture imported above
    """Robots in every scenario and an ingestor watching them all (retained status and watch
    statuses: the API gets them when it subscribes)."""
    m = Mine(publisher)
    m.status_all()
    yield m
    m.close()


@pytest.fixture
def dash(start_api, mine: Mine) -> Iterator[Api]:  # noqa: F811 - uses the fixture imported above
    """The API, once it has a frame of every scenario and every scenario watched."""
    api = start_api()
    mine.frames_all()
    with api.client("operator") as c:
        wait_for(lambda: all(s["readings"] and s["watch"]["watched"] for s in c.get("/scenarios").json()["data"]),
                 what="readings and watch statuses everywhere")
    yield api


def open_board(page, api: Api, key: str = KEYS["operator"]) -> None:
    page.goto(f"{api.url}/?api_key={key}")
    page.wait_for_selector("body[data-ready=true]", timeout=10000)
    page.wait_for_selector("#conn[data-state=live]", timeout=5000)
