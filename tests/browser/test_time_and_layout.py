"""Time, units and layout as people read them: 24-hour mine time on every chart axis (also in a
browser running in another time zone), units on every y axis, the report's peak marked and
printed with its alert strip kept under the line, the replay zoomed to where the readings are,
and the board on a 1920 × 1080 control-room screen without scrolling."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from api.report_cli import report
from minewatch.catalogue import SCENARIOS
from tests.api.conftest import KEYS, Api
from tests.browser.conftest import open_board
from tests.browser.mine import Mine
from tests.browser.seed import ALERT_ID, PEAK, SHIFT, SHIFT_ID, seed

# a time-axis label as uPlot draws it from our format table: "HH:MM", ":SS", optionally with the
# date on a second line when it changes
TICK = re.compile(r"^(?:([01]\d|2[0-3]):[0-5]\d|:[0-5]\d)(?:\n(?:\d{4}-)?\d{2}-\d{2}(?: ([01]\d|2[0-3]):[0-5]\d)?)?$")


def axis_labels(page, selector: str) -> list[str]:
    ticks = page.get_attribute(selector, "data-x-ticks")
    assert ticks, f"no time axis drawn on {selector}"
    return ticks.split("|")


def assert_24_hour(labels: list[str]) -> None:
    assert labels
    for label in labels:
        assert not re.search(r"am|pm", label, re.I), label
        assert TICK.match(label), f"not a 24-hour mine-time label: {label!r}"


def test_board_fits_a_control_room_screen_and_a_laptop(dash: Api, page, screenshots: Path) -> None:
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_board(page, dash)
    tiles = page.locator("#board [data-scenario-id]")
    assert tiles.count() == 31
    page.wait_for_timeout(300)  # fonts and the layout settle
    size = page.evaluate("() => ({h: document.documentElement.scrollHeight, vh: innerHeight, "
                         "w: document.documentElement.scrollWidth, vw: innerWidth})")
    assert size["h"] <= size["vh"], size
    assert size["w"] <= size["vw"], size
    boxes = tiles.evaluate_all("els => els.map(e => { const r = e.getBoundingClientRect(); "
                               "return [e.dataset.scenarioId, r.left, r.top, r.right, r.bottom]; })")
    for sid, left, top, right, bottom in boxes:
        assert 0 <= left and right <= 1920 and 0 <= top and bottom <= 1080, (sid, left, top, right, bottom)
    # every tile keeps its key readings, each value whole with its unit (nothing cut off)
    assert page.locator("#board [data-scenario-id] .reading").count() >= 31 * 3
    cut = page.locator("#board .reading dd").evaluate_all(
        "els => els.filter(e => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > "
        "e.closest('.tile').getBoundingClientRect().right).map("
        "e => e.closest('[data-scenario-id]').dataset.scenarioId + ' ' + e.textContent)")
    assert not cut, cut
    # the incident worklist beside the tiles, not under them
    board = page.locator("#board").bounding_box()
    incidents = page.locator("#incident-list").bounding_box() or page.locator("#incidents-title").bounding_box()
    assert incidents["x"] >= board["x"] + board["width"] and incidents["y"] < 200
    page.screenshot(path=str(screenshots / "board-1920x1080.png"))
    # a laptop: it may scroll, but the tiles stay readable and nothing runs off to the side
    page.set_viewport_size({"width": 1366, "height": 768})
    page.wait_for_timeout(300)
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    widths = tiles.evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
    assert min(widths) >= 200
    assert page.locator('#board [data-scenario-id="mf01"] [data-channel="ch4_t1"] dd').inner_text() == "0.35 %"
    page.screenshot(path=str(screenshots / "board-1366x768.png"))


# scenarios the played ingestor stops watching, each in one of the ways the board tells apart
NOT_WATCHED = {"mf02": "no_ingest", "hf01": "no_data", "ra02": "detectors_off", "bc01": "not_detected",
               "lf02": "no_data", "gd01": "detectors_off"}


def tile_boxes(page) -> list[tuple[str, float, float, float, float]]:
    return page.locator("#board [data-scenario-id]").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); "
        "return [e.dataset.scenarioId, r.left, r.top + scrollY, r.right, r.bottom + scrollY]; })")


def overlaps(boxes: list[tuple[str, float, float, float, float]]) -> list[tuple[str, str]]:
    return [(a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5 and a[2] < b[4] - 0.5 and b[2] < a[4] - 0.5]


def spilled(page) -> list[str]:
    """Tiles whose content runs past their edges (taller or wider than the tile shows)."""
    return page.locator("#board [data-scenario-id]").evaluate_all(
        "els => els.filter(e => e.scrollHeight > e.clientHeight + 1 || e.scrollWidth > e.clientWidth + 1)"
        ".map(e => e.dataset.scenarioId)")


def test_board_of_alarms_fits_a_control_room_screen_and_a_laptop(dash: Api, mine: Mine, page,
                                                                 screenshots: Path) -> None:
    ids = mine.alarm_everywhere(NOT_WATCHED)
    present = [sid for sid in NOT_WATCHED if sid in SCENARIOS]
    assert len(present) == 6, present
    page.set_viewport_size({"width": 1920, "height": 1080})
    open_board(page, dash)
    tiles = page.locator("#board [data-scenario-id]")
    assert tiles.count() == 31
    page.wait_for_function("n => [...document.querySelectorAll('#board [data-scenario-id]')]"
                           ".filter(e => e.dataset.watched === 'false').length >= n", arg=len(present), timeout=15000)
    page.wait_for_function("() => [...document.querySelectorAll('#board [data-scenario-id]')]"
                           ".every(e => ['warning', 'alarm', 'critical'].includes(e.dataset.severity))", timeout=15000)
    acked = [sid for i, sid in enumerate(SCENARIOS) if i % 3 == 1]
    page.wait_for_function("ids => ids.every(id => document.querySelector("
                           "`#board [data-scenario-id='${id}'][data-state=acknowledged]`))", arg=acked, timeout=15000)
    page.wait_for_timeout(300)  # fonts and the layout settle
    size = page.evaluate("() => ({h: document.scrollingElement.scrollHeight, vh: innerHeight, "
                         "w: document.scrollingElement.scrollWidth, vw: innerWidth})")
    page.screenshot(path=str(screenshots / "board-alarms-1920x1080.png"))
    assert size["h"] <= size["vh"] and size["w"] <= size["vw"], size
    boxes = tile_boxes(page)
    for sid, left, top, right, bottom in boxes:
        assert 0 <= left and right <= 1920 and 0 <= top and bottom <= 1080, (sid, left, top, right, bottom)
    assert not overlaps(boxes)
    assert not spilled(page)
    assert len(ids) == 31
    # a laptop: it scrolls, and still nothing overlaps, spills or runs off to the side
    page.set_viewport_size({"width": 1366, "height": 768})
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots / "board-alarms-1366x768.png"), full_page=True)
    assert page.evaluate("() => document.scrollingElement.scrollWidth <= innerWidth")
    boxes = tile_boxes(page)
    assert not overlaps(boxes)
    assert not spilled(page)
    assert all(0 <= left and right <= 1366 for _, left, _, right, _ in boxes)
    assert min(right - left for _, left, _, right, _ in boxes) >= 200


def test_scenario_charts_24_hour_axes_with_units(dash: Api, ny_page, screenshots: Path) -> None:
    page = ny_page
    assert page.evaluate("() => new Date(Date.UTC(2026, 0, 15, 12)).getTimezoneOffset()") == 300  # really New York
    open_board(page, dash)
    page.click('#board [data-scenario-id="mf01"]')
    page.wait_for_selector("#scn-charts .chart canvas", timeout=5000)
    page.click('#view-scenario [data-range="3600"]')
    page.wait_for_timeout(500)
    for c in SCENARIOS["mf01"].channels:
        plot = f'#scn-charts [data-channel="{c.name}"] .plot'
        assert_24_hour(axis_labels(page, plot))
        assert page.get_attribute(plot, "data-y-label") == c.unit, c.name
    # the clock and the axis are mine time (UTC+8), not New York's
    tz = page.inner_text("#tz")
    assert tz == "mine time UTC+8"
    hh = page.inner_text("#clock")[:2]
    mine_hour = int(page.evaluate("() => new Date(Date.now() + 8 * 3600e3).getUTCHours()"))
    assert int(hh) in (mine_hour, (mine_hour + 1) % 24)
    hours = {int(lb[:2]) for lb in axis_labels(page, '#scn-charts [data-channel="ch4_t1"] .plot') if lb[:2].isdigit()}
    assert hours <= {mine_hour, (mine_hour - 1) % 24, (mine_hour + 1) % 24}, (hours, mine_hour)
    page.locator('#scn-charts [data-channel="ch4_t1"]').screenshot(path=str(screenshots / "chart-24h-units.png"))


def test_report_peak_marked_and_printed_in_mine_time(influx_db, tmp_path: Path, ny_page, screenshots: Path) -> None:
    seed(influx_db)
    out = tmp_path / "report.html"
    res = CliRunner().invoke(report, ["--shift", SHIFT_ID, "--out", str(out), "--influx-url", influx_db.url,
                                      "--influx-db", influx_db.db])
    assert res.exit_code == 0, res.output
    page = ny_page
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-ready=true]", timeout=10000)
    chart = page.locator('[data-scenario-id="mf01"] .chart[data-channel="ch4_t1"]')
    plot = chart.locator("div.uplot").locator("xpath=..")
    # the maximum printed beside the chart, in mine time: the peak is at about 02:06 of the night shift
    peak_text = chart.locator(".peak").inner_text()
    m = re.fullmatch(r"max (\d+\.\d\d) % at (\d\d):(\d\d)", peak_text)
    assert m, peak_text
    assert float(m.group(1)) == PEAK and m.group(2) == "02" and 0 <= int(m.group(3)) <= 12
    # the marker of the alert about that peak is a strip under every reading, not over the line
    assert plot.get_attribute("data-marks") == "1"
    peak_y, lowest_y, strip = (float(plot.get_attribute(a)) for a in ("data-peak-y", "data-lowest-y", "data-mark-top"))
    assert abs(float(plot.get_attribute("data-peak")) - PEAK) < 0.01
    assert 0 < peak_y < lowest_y < strip, (peak_y, lowest_y, strip)
    # axes: 24-hour mine time (00:00-08:00 though the browser is in New York) and the unit
    labels = axis_labels(page, '[data-scenario-id="mf01"] .chart[data-channel="ch4_t1"] > div:last-child')
    assert_24_hour(labels)
    hours = {int(lb[:2]) for lb in labels if lb[:2].isdigit()}
    assert hours and hours <= set(range(0, 9)), labels
    for box in page.locator("#scenarios .chart").all():
        unit = box.locator("> div:last-child").get_attribute("data-y-unit")
        assert box.locator("> div:last-child").get_attribute("data-y-label") == unit
    assert "%" in plot.get_attribute("data-y-label")
    assert page.locator(f'#timeline [data-alert-id="{ALERT_ID}"]').count() == 1
    chart.screenshot(path=str(screenshots / "report-peak.png"))


def test_replay_zooms_to_the_readings_and_says_why_a_rerun_is_off(influx_db, start_api: Callable[..., Api], page,
                                                                   screenshots: Path) -> None:
    seed(influx_db)
    api = start_api()
    # a window of 8 hours whose first hour only holds readings (the shift's last hour)
    end = SHIFT.end_ns / 1e9
    t0, t1 = end - 3600, end + 7 * 3600
    page.goto(f"{api.url}/?api_key={KEYS['engineer']}#/replay?scenario=mf01&start={t0}&end={t1}")
    page.wait_for_selector("#view-replay[data-loaded=true]", timeout=15000)
    view = page.locator("#view-replay")
    assert view.get_attribute("data-zoomed") == "true"
    v0, v1 = float(view.get_attribute("data-view-start")), float(view.get_attribute("data-view-end"))
    assert t0 <= v0 < t0 + 120 and end - 60 < v1 <= end + 300, (v0 - t0, v1 - end)
    assert page.input_value("#rp-start").endswith(" 07:00:00") and page.input_value("#rp-end").endswith(" 15:00:00")
    labels = axis_labels(page, '#rp-charts [data-channel="ch4_t1"] .plot')
    assert_24_hour(labels)
    hours = {int(lb[:2]) for lb in labels if lb[:2].isdigit()}
    assert hours <= {7, 8}, labels  # the hour of readings, not 07:00-15:00
    assert "where the readings are" in page.inner_text("#rp-zoom")
    # the play head at the end of the zoomed span: the whole hour drawn across the charts
    page.eval_on_selector("#rp-seek", "el => { el.value = 1000; el.dispatchEvent(new Event('input')); }")
    assert float(view.get_attribute("data-playhead")) == v1
    page.screenshot(path=str(screenshots / "replay-zoomed.png"), full_page=True)
    # an operator's key: the re-run is off, and the page says why in words
    page.goto(f"{api.url}/?api_key={KEYS['operator']}#/replay")
    page.wait_for_selector("body[data-ready=true]", timeout=10000)
    page.wait_for_selector("#rp-rerun-why:not([hidden])", timeout=5000)
    assert page.locator("#rp-rerun").is_disabled()
    why = page.inner_text("#rp-rerun-why")
    assert "engineer key" in why and "operator" in why


def test_replay_day_is_iso_in_a_us_english_browser(start_api: Callable[..., Api], us_page,
                                                    screenshots: Path) -> None:
    page = us_page
    api = start_api()
    page.goto(f"{api.url}/?api_key={KEYS['engineer']}#/replay")
    page.wait_for_selector("body[data-ready=true]", timeout=10000)
    # the browser is US English: a date picker or toLocaleDateString would give month/day/year
    assert page.evaluate("navigator.language") == "en-US"
    assert page.evaluate("new Date(2026, 11, 5).toLocaleDateString()") == "12/5/2026"
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "America/Chicago"
    day = page.locator("#rp-day")
    page.wait_for_selector("#rp-shift[data-day]", state="attached", timeout=5000)
    shown = day.input_value()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", shown), shown
    assert page.get_attribute("#rp-shift", "data-day") == shown
    # a US-style date is refused with a message that says what to type; nothing is loaded for it
    day.fill("12/05/2026")
    day.dispatch_event("change")
    error = page.locator("#rp-day-error")
    error.wait_for(state="visible", timeout=3000)
    assert "YYYY-MM-DD" in error.inner_text() and "12/05/2026" in error.inner_text()
    assert page.evaluate("document.getElementById('rp-day').validity.valid") is False
    assert page.get_attribute("#rp-shift", "data-day") == shown
    day.fill("2026-02-30")
    day.dispatch_event("change")
    assert "not a day" in error.inner_text()
    # an ISO day is taken: its shifts are listed, named by that day
    day.fill("2026-11-28")
    day.dispatch_event("change")
    page.wait_for_selector('#rp-shift[data-day="2026-11-28"]', state="attached", timeout=5000)
    assert error.is_hidden() and page.evaluate("document.getElementById('rp-day').validity.valid") is True
    options = page.eval_on_selector_all("#rp-shift option[value]", "os => os.map(o => o.value).filter(Boolean)")
    assert options and all(o.startswith("2026-11-28:") for o in options), options
    # the window fields show the chosen shift in 24-hour mine time, in the same ISO form
    start = page.input_value("#rp-start")
    assert re.fullmatch(r"2026-11-2[78] ([01]\d|2[0-3]):[0-5]\d:[0-5]\d", start), start
    assert re.fullmatch(r"24-hour mine time, UTC[+−]\d+", page.inner_text("#rp-when-note"))
    # keyboard: arrow down steps back a day, across a month's end too
    day.fill("2026-12-01")
    day.dispatch_event("change")
    page.wait_for_selector('#rp-shift[data-day="2026-12-01"]', state="attached", timeout=5000)
    day.press("ArrowDown")
    page.wait_for_selector('#rp-shift[data-day="2026-11-30"]', state="attached", timeout=5000)
    assert day.input_value() == "2026-11-30"
    page.click("#rp-day-next")
    page.wait_for_selector('#rp-shift[data-day="2026-12-01"]', state="attached", timeout=5000)
    page.locator("#replay-form").screenshot(path=str(screenshots / "replay-day-en-us.png"))
