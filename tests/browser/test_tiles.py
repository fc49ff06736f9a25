"""Board tiles: a place the detectors are not watching never shows a green OK, and a reading past
a limit is marked with or without an alert. Real API, mosquitto and influxd; the ingestor's
retained watch statuses played by ``tests/browser/mine.py``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.api.conftest import Api, wait_for
from tests.browser.conftest import open_board
from tests.browser.mine import Mine

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# Every value each tile's data-severity takes, from before the page's own scripts run.
RECORD_SEVERITIES = """
window.__sev = {};
new MutationObserver(() => {
  for (const t of document.querySelectorAll('#board [data-scenario-id]')) {
    const h = (window.__sev[t.dataset.scenarioId] ??= []);
    if (t.dataset.severity && h[h.length - 1] !== t.dataset.severity) h.push(t.dataset.severity);
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-severity'] });
"""


def tile(page, sid: str):
    return page.locator(f'#board [data-scenario-id="{sid}"]')


def watch_of(api: Api) -> dict[str, dict]:
    with api.client("operator") as c:
        return {s["id"]: s["watch"] for s in c.get("/scenarios").json()["data"]}


def test_a_place_nobody_watches_never_shows_ok(dash: Api, mine: Mine, page, screenshots: Path) -> None:
    mine.forget("hf03")  # no watch status at all (no ingest process has it)
    mine.set_watch("pr01", "not_detected")  # its frames arrive but the detectors failed on them
    mine.set_watch("ss02", "detectors_off")  # an ingest process running without detectors
    (ev,) = mine.signal("hf03", "ch4_t1", "alarm", 1.12, 1.0)  # an alert standing where nobody watches
    wait_for(lambda: (w := watch_of(dash))["hf03"]["state"] == "no_ingest" and w["pr01"]["state"] == "not_detected"
             and w["ss02"]["state"] == "detectors_off", what="the API to hear of it")
    page.add_init_script(RECORD_SEVERITIES)
    open_board(page, dash)
    for sid in ("hf03", "pr01", "ss02"):
        mine.frame(sid)  # readings keep coming: fresh data does not make a place watched
    page.wait_for_timeout(500)

    pr01 = tile(page, "pr01")
    assert pr01.get_attribute("data-severity") == "unwatched" and pr01.get_attribute("data-watched") == "false"
    assert "NOT WATCHED" in pr01.locator(".badge").inner_text()
    assert pr01.locator(".watch-band").text_content() == "not checked"
    assert "not checked" in pr01.get_attribute("aria-label") and "not checked" in pr01.get_attribute("title")
    assert tile(page, "ss02").locator(".watch-band").text_content() == "detectors off"
    # an alert where nobody watches: the alert's severity and, beside it, that nobody watches
    hf03 = tile(page, "hf03")
    assert hf03.get_attribute("data-severity") == "alarm" and hf03.get_attribute("data-watched") == "false"
    assert "ALARM" in hf03.locator(".badge").inner_text()
    assert hf03.locator(".watch-band").text_content().endswith("NOT WATCHED · ingest down")
    assert "not watched (ingest down" in hf03.get_attribute("aria-label")
    # a colour of its own: not the green of OK, not the grey of "no data", no alarm colour
    colour = pr01.evaluate("e => getComputedStyle(e).borderLeftColor")
    assert colour == "rgb(126, 87, 194)"
    assert colour != tile(page, "mf01").evaluate("e => getComputedStyle(e).borderLeftColor")
    assert "repeating-linear-gradient" in pr01.evaluate("e => getComputedStyle(e).backgroundImage")  # hatched

    # the ingest process of bc01 falls silent: its last status ages, and after three of its
    # periods the tile is no longer OK
    assert tile(page, "bc01").get_attribute("data-severity") == "ok"
    mine.fall_silent("bc01")
    t0 = time.monotonic()
    page.wait_for_selector('#board [data-scenario-id="bc01"][data-watched="false"]', timeout=15000)
    took = time.monotonic() - t0
    assert 3 * mine.watch_every_s - mine.watch_every_s - 0.5 <= took <= 3 * mine.watch_every_s + 6, took
    bc01 = tile(page, "bc01")
    assert bc01.get_attribute("data-severity") == "unwatched"
    assert bc01.locator(".watch-band").text_content() == "ingest down"
    mine.frame("bc01")
    page.wait_for_timeout(1500)
    assert page.inner_text('[data-count="unwatched"]').endswith("4 not watched")
    page.screenshot(path=str(screenshots / "board-not-watched.png"), full_page=False)
    history = page.evaluate("() => window.__sev")
    for sid in ("pr01", "ss02"):
        assert history[sid] == ["unwatched"], (sid, history[sid])
    assert history["hf03"] == ["alarm"], history["hf03"]
    assert history["bc01"][-2:] == ["ok", "unwatched"], history["bc01"]
    # its ingest process speaks again: watched, and OK
    mine.set_watch("bc01", "watched")
    page.wait_for_selector('#board [data-scenario-id="bc01"][data-severity="ok"]', timeout=5000)
    assert bc01.get_attribute("data-watched") == "true" and bc01.locator(".watch-band").count() == 0


def test_a_reading_past_its_limit_is_marked_without_an_alert(dash: Api, mine: Mine, page, screenshots: Path) -> None:
    mine.frame("hf02", ch4_t1=1.2)  # past the alarm level (1.0 %), and no detector has said anything
    with dash.client("operator") as c:
        wait_for(lambda: next(s for s in c.get("/scenarios").json()["data"] if s["id"] == "hf02")["readings"]
                 ["ch4_t1"]["beyond"] == "alarm", what="the API to see it")
    open_board(page, dash)
    hf02 = tile(page, "hf02")
    cell = hf02.locator('[data-channel="ch4_t1"]')
    assert cell.get_attribute("data-beyond") == "alarm"
    assert cell.locator(".past").text_content().strip() == "▲ ALARM"
    assert cell.get_attribute("title") == "at or past its alarm level (no alert)"
    assert hf02.get_attribute("data-severity") == "ok" and hf02.get_attribute("data-beyond") == "alarm"
    badge = hf02.locator(".badge").inner_text()
    assert "PAST LIMIT" in badge and "OK" not in badge
    assert "CH₄ T1 1.20 % past the alarm level, no alert" in hf02.get_attribute("aria-label")
    assert page.locator('#incident-list [data-scenario-id="hf02"]').count() == 0

    # live readings are judged on the page against the scenario's limits as they come
    mf02 = tile(page, "mf02")
    assert mf02.get_attribute("data-beyond") is None and "OK" in mf02.locator(".badge").inner_text()
    mine.frame("mf02", o2=19.8)  # below the alarm level of 20 % (a limit from below)
    page.wait_for_selector('#board [data-scenario-id="mf02"] [data-channel="o2"][data-beyond="alarm"]', timeout=1500)
    mine.frame("mf02", o2=19.4)  # below 19.5 %: the critical level
    page.wait_for_selector('#board [data-scenario-id="mf02"] [data-channel="o2"][data-beyond="critical"]', timeout=1500)
    assert mf02.get_attribute("data-beyond") == "critical"
    page.screenshot(path=str(screenshots / "board-past-limit.png"), full_page=False)
    mine.frame("mf02", o2=20.7)
    page.wait_for_selector('#board [data-scenario-id="mf02"]:not([data-beyond])', timeout=1500)
    assert mf02.locator("[data-beyond]").count() == 0 and "OK" in mf02.locator(".badge").inner_text()
    # air velocity counts by its size: reversed flow of a normal strength is past nothing, a
    # reversed gale is
    mine.frame("mf02", ws=-1.8)
    page.wait_for_timeout(800)
    assert mf02.get_attribute("data-beyond") is None
    mine.frame("mf02", ws=-4.3)
    page.wait_for_selector('#board [data-scenario-id="mf02"] [data-channel="ws"][data-beyond="alarm"]', timeout=1500)
    # shown with the decimals the API serves for its quantity (air velocity: 0.01 m/s), whatever its size
    mine.frame("mf02", ws=-12.34)
    page.wait_for_function("() => document.querySelector('#board [data-scenario-id=\"mf02\"] [data-channel=\"ws\"] dd')"
                           "?.textContent.startsWith('-12.34')", timeout=1500)
    assert mf02.locator('[data-channel="ws"] dd').inner_text() == "-12.34 m/s"
