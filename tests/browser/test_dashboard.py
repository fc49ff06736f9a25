"""The control-room page in headless Chromium, served by the real API in front of real mosquitto
and influxd. Robots and the ingestor are played by publishing on the broker exactly what they
publish (telemetry frames, retained status and watch statuses, alert and incident events with
their retained active states, acknowledged steps): see ``tests/browser/mine.py``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from minewatch.catalogue import SCENARIOS
from minewatch.wire import Frame, encode_frame
from tests.api.conftest import KEYS, Api, wait_for
from tests.browser.conftest import open_board
from tests.browser.mine import Mine

pytestmark = [pytest.mark.browser, pytest.mark.integration]

GROUP_ORDER = ["faces", "headings", "fans", "belts", "pumps", "substations", "returns", "other"]


def row(page, incident_id: str | None):
    return page.locator(f'#incident-list [data-incident-id="{incident_id}"]')


def test_board_shows_31_tiles_grouped_and_keeps_the_key(dash: Api, page, screenshots: Path) -> None:
    open_board(page, dash)
    tiles = page.locator("#board [data-scenario-id]")
    assert tiles.count() == 31
    assert sorted(tiles.evaluate_all("els => els.map(e => e.dataset.scenarioId)")) == sorted(SCENARIOS)
    groups = page.locator("#board section.group").evaluate_all("els => els.map(e => e.dataset.group)")
    assert groups == GROUP_ORDER
    for group in GROUP_ORDER:
        ids = page.locator(f'#board section[data-group="{group}"] [data-scenario-id]').evaluate_all(
            "els => els.map(e => e.dataset.scenarioId)")
        assert ids == sorted(s.id for s in SCENARIOS.values() if s.kind.group == group)
    # all quiet: green, with text, and the key readings shown with units
    assert tiles.evaluate_all("els => els.map(e => e.dataset.severity)") == ["ok"] * 31
    mf01 = page.locator('#board [data-scenario-id="mf01"]')
    assert "OK" in mf01.locator(".badge").inner_text()
    assert mf01.locator('[data-channel="ch4_t1"] dd').inner_text() == "0.35 %"
    # robots panel
    assert page.locator("#robots tbody tr[data-robot-id]").count() == 31
    assert page.locator('#robots tr[data-robot-id="r01"]').inner_text().split("\t")[1] == "online"
    # the key left the address bar and stays for the session: a reload needs no key
    assert "api_key" not in page.url
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=10000)
    assert not page.locator("#key-dialog").evaluate("d => d.open")
    assert page.locator("#board [data-scenario-id]").count() == 31
    page.screenshot(path=str(screenshots / "board.png"), full_page=True)


def test_methane_alert_turns_the_tile_red_within_two_seconds_and_is_acknowledged(
        dash: Api, mine: Mine, page, screenshots: Path) -> None:
    open_board(page, dash)
    assert page.locator("#incident-list [data-incident-id]").count() == 0
    assert page.inner_text('[data-count="none"]').endswith("none")
    mine.frame("mf01", ch4_t1=1.62)
    t0 = time.monotonic()
    (ev,) = mine.signal("mf01", "ch4_t1", "critical", 1.62, 1.5)
    page.wait_for_selector('#board [data-scenario-id="mf01"][data-severity="critical"]', timeout=2000)
    first = row(page, ev.incident_id)
    first.wait_for(timeout=2000)
    latency = time.monotonic() - t0
    assert latency < 2.0
    assert first.get_attribute("data-state") == "raised" and first.get_attribute("data-needs-ack") == "true"
    text = first.inner_text()
    assert "CRITICAL" in text and "1.62 % (limit 1.5 %)" in text and "1 alert" in text
    assert "Methane at mf01, 15101 fully-mechanised longwall" in text
    tile = page.locator('#board [data-scenario-id="mf01"]')
    assert "CRITICAL" in tile.inner_text()
    assert page.inner_text('[data-count="critical"]').endswith("1 CRITICAL")
    page.wait_for_function("() => document.title.startsWith('(1) CRITICAL')", timeout=6000)
    # a newer alarm elsewhere waits below the older critical: severity before age
    (later,) = mine.signal("ra01", "ch4", "alarm", 0.8, 0.75)
    row(page, later.incident_id).wait_for(timeout=2000)
    order = page.locator("#incident-list [data-incident-id]").evaluate_all("els => els.map(e => e.dataset.incidentId)")
    assert order == [ev.incident_id, later.incident_id]
    assert page.get_attribute('#board [data-scenario-id="ra01"]', "data-severity") == "alarm"
    page.screenshot(path=str(screenshots / "board-alert.png"), full_page=True)

    first.locator("button.ack").click()
    assert page.text_content("#ack-title") == "Acknowledge incident"
    page.fill("#ack-operator", "Wang Li")
    page.fill("#ack-note", "power cut confirmed")
    page.screenshot(path=str(screenshots / "ack-dialog.png"))
    page.click("#ack-submit")
    page.wait_for_selector(f'#incident-list [data-incident-id="{ev.incident_id}"][data-state="acknowledged"]',
                           timeout=5000)
    assert first.get_attribute("data-needs-ack") == "false"
    assert "acknowledged by Wang Li" in first.inner_text()
    assert first.locator("button.ack").count() == 0
    # acknowledged, it goes below what still waits for an operator
    order = page.locator("#incident-list [data-incident-id]").evaluate_all("els => els.map(e => e.dataset.incidentId)")
    assert order == [later.incident_id, ev.incident_id]
    # the tile stays red (the methane is still high) and says it was acknowledged
    assert page.get_attribute('#board [data-scenario-id="mf01"]', "data-severity") == "critical"
    assert page.get_attribute('#board [data-scenario-id="mf01"]', "data-state") == "acknowledged"
    # another sensor of the same place at the same level joins the incident without asking again
    mine.signal("mf01", "ch4_t0", "critical", 1.55, 1.5)
    first.locator('[data-alert-id]').nth(1).wait_for(state="attached", timeout=2000)
    assert first.get_attribute("data-needs-ack") == "false" and "2 alerts" in first.inner_text()
    assert page.locator("#incident-list [data-incident-id]").count() == 2
    # cleared: the tile goes back to green and the row leaves the list of open incidents
    mine.clear("mf01", "ch4_t1")
    mine.clear("mf01", "ch4_t0")
    page.wait_for_selector('#board [data-scenario-id="mf01"][data-severity="ok"]', timeout=2000)
    first.wait_for(state="detached", timeout=2000)
    page.check("#show-cleared")
    page.wait_for_selector(f'#incident-list [data-incident-id="{ev.incident_id}"][data-state="cleared"]', timeout=5000)


def test_scenario_view_has_live_charts_with_limits(dash: Api, mine: Mine, page, screenshots: Path) -> None:
    open_board(page, dash)
    page.click('#board [data-scenario-id="mf01"]')
    page.wait_for_selector("#view-scenario:not([hidden]) #scn-charts .chart canvas", timeout=5000)
    assert page.url.endswith("#/scenario/mf01")
    charts = page.locator("#scn-charts .chart")
    assert charts.count() == len(SCENARIOS["mf01"].channels)
    assert "CMSR Art.498" in page.inner_text("#scn-limits")
    page.wait_for_selector("#conn[data-state=live]", timeout=5000)
    for v in (0.41, 0.52, 0.63):
        mine.frame("mf01", ch4_t1=v)
        time.sleep(0.15)
    value = page.locator('#scn-charts [data-value="ch4_t1"]')
    page.wait_for_function("() => document.querySelector('[data-value=\"ch4_t1\"]').textContent === '0.63 %'",
                           timeout=3000)
    assert value.inner_text() == "0.63 %"
    page.screenshot(path=str(screenshots / "scenario.png"), full_page=True)
    # one robot's sensors alone: frames of another robot in mf01 do not move the charts
    page.select_option("#scn-robot", "r01")
    mine.frame("mf01", ch4_t1=0.71)
    page.wait_for_function("() => document.querySelector('[data-value=\"ch4_t1\"]').textContent === '0.71 %'",
                           timeout=3000)
    mine.pub.publish(mine.pub.topics.telemetry("mf01", "p09"), encode_frame(Frame(
        robot_id="p09", scenario_id="mf01", seq=1, ts=time.time_ns(), readings={"ch4_t1": 0.2})), qos=0)
    page.wait_for_timeout(700)
    assert page.inner_text('#scn-charts [data-value="ch4_t1"]') == "0.71 %"
    mine.frame("mf01", ch4_t1=0.72)
    page.wait_for_function("() => document.querySelector('[data-value=\"ch4_t1\"]').textContent === '0.72 %'",
                           timeout=3000)


def test_acknowledge_is_offered_only_to_keys_that_may(dash: Api, mine: Mine, page) -> None:
    """An integrator's key reads the same incidents but gets no Acknowledge button (the API would
    refuse it with 403): the row says it waits for acknowledgement instead. Signing in again with
    an operator's key brings the button, and the replay view's re-run, which needs an engineer key,
    is disabled for it."""
    (ev,) = mine.signal("mf01", "ch4_t1", "critical", 1.62, 1.5)
    open_board(page, dash, KEYS["integrator"])
    r = row(page, ev.incident_id)
    r.wait_for(timeout=5000)
    assert r.get_attribute("data-needs-ack") == "true" and r.locator("button.ack").count() == 0
    assert "TO ACKNOWLEDGE" in r.inner_text()
    page.click("#signout")
    page.wait_for_selector("#key-dialog[open]", timeout=5000)
    page.fill("#key-input", KEYS["operator"])
    page.click("#key-dialog button[type=submit]")
    r.locator("button.ack").wait_for(timeout=5000)
    # an operator may not start replay jobs: the re-run button says so instead of failing later
    page.goto(f"{dash.url}/#/replay")
    page.wait_for_selector('#rp-rerun-box[data-denied="true"]', state="attached", timeout=5000)
    assert page.locator("#rp-rerun").is_disabled()
    assert "engineer" in page.get_attribute("#rp-rerun", "title")


def test_page_asks_for_a_key_and_refuses_a_wrong_one(dash: Api, page) -> None:
    page.expected_errors = ["401"]
    page.goto(f"{dash.url}/")
    page.wait_for_selector("#key-dialog[open]", timeout=5000)
    # the dialog says where a key comes from
    where = page.inner_text("#key-dialog")
    assert "MINEWATCH_API_KEYS" in where and "make up" in where
    page.fill("#key-input", "not-a-key")
    page.click("#key-dialog button[type=submit]")
    page.wait_for_selector("#key-error:text('not accepted')", timeout=5000)
    page.fill("#key-input", KEYS["integrator"])
    page.click("#key-dialog button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", timeout=10000)
    assert page.locator("#board [data-scenario-id]").count() == 31
    # the stream takes the key from the cookie the page set
    page.wait_for_selector("#conn[data-state=live]", timeout=5000)


def test_replay_view_plays_a_recorded_shift(influx_db, start_api: Callable[..., Api], page,
                                            screenshots: Path) -> None:
    from tests.browser.seed import ALERT_ID, EXCURSION, SHIFT, SHIFT_ID, seed

    seed(influx_db)
    api = start_api()
    page.goto(f"{api.url}/?api_key={KEYS['engineer']}#/replay")
    page.wait_for_selector("body[data-ready=true]", timeout=10000)
    # the replay view opens on a recent day; the recorded shift is ten days back: pick its day
    page.wait_for_selector('#rp-shift option[value$=":night"]', state="attached", timeout=5000)
    assert page.input_value("#rp-day") != SHIFT.day.isoformat()
    page.fill("#rp-day", SHIFT.day.isoformat())
    page.dispatch_event("#rp-day", "change")
    page.wait_for_selector(f'#rp-shift option[value="{SHIFT_ID}"]', state="attached", timeout=5000)
    # no ingestor, no robot: no place is watched, and every tile says so
    tiles = page.locator("#board [data-scenario-id]")
    assert tiles.evaluate_all("els => els.map(e => e.dataset.severity)") == ["unwatched"] * 31
    assert tiles.evaluate_all("els => els.map(e => e.dataset.watched)") == ["false"] * 31
    assert page.inner_text('[data-count="unwatched"]').endswith("31 not watched")
    page.select_option("#rp-shift", SHIFT_ID)
    # the window in 24-hour mine time: the night shift runs 00:00-08:00
    assert page.input_value("#rp-start") == f"{SHIFT.day.isoformat()} 00:00:00"
    assert page.input_value("#rp-end") == f"{SHIFT.day.isoformat()} 08:00:00"
    page.select_option("#rp-scenario", "mf01")
    page.select_option("#rp-speed", "1800")
    page.click("#rp-load")
    view = page.locator("#view-replay")
    page.wait_for_selector("#view-replay[data-loaded=true]", timeout=10000)
    assert int(view.get_attribute("data-points")) > 0
    assert view.get_attribute("data-alerts") == "1"
    assert page.locator("#rp-charts .chart canvas").count() == 10
    assert page.get_attribute("#rp-report", "href") == f"/report?shift={SHIFT_ID.replace(':', '%3A')}"
    # at the start nothing has happened yet
    assert page.locator("#rp-alerts [data-alert-id]").count() == 0
    # seek to a minute before the excursion and play at 1800x: the alert appears on the timeline
    start, end = float(view.get_attribute("data-playhead")), SHIFT.end_ns / 1e9
    frac = (EXCURSION[0] / 1e9 - 60 - start) / (end - start)
    page.eval_on_selector("#rp-seek", "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                          str(round(frac * 1000)))
    page.click("#rp-play")
    assert view.get_attribute("data-playing") == "true"
    page.wait_for_selector(f'#rp-alerts [data-alert-id="{ALERT_ID}"]', timeout=5000)
    page.wait_for_selector(f'#rp-timeline [data-alert-id="{ALERT_ID}"]', timeout=5000)
    page.wait_for_selector(f'#rp-alerts [data-alert-id="{ALERT_ID}"][data-state="cleared"]', timeout=10000)
    page.click("#rp-play")  # pause
    assert view.get_attribute("data-playing") == "false"
    at = float(view.get_attribute("data-playhead"))
    page.wait_for_timeout(400)
    assert float(view.get_attribute("data-playhead")) == at
    assert EXCURSION[1] / 1e9 <= at < end
    page.screenshot(path=str(screenshots / "replay.png"), full_page=True)
    # re-run the detectors with the power-cut level above the peak: the excursion is an alarm only
    page.click("#rp-rerun-box summary")
    page.fill("#rp-overrides", "mf01.ch4_t1.critical=2.0")
    page.click("#rp-rerun")
    page.wait_for_selector("#view-replay[data-rerun]", timeout=30000)
    assert int(view.get_attribute("data-rerun")) >= 1
    severities = page.locator("#rp-rerun-timeline [data-alert-id]").evaluate_all(
        "els => els.map(e => [...e.classList].find(c => c.startsWith('sev-')))")
    assert severities and "sev-critical" not in severities and "sev-alarm" in severities
    assert page.locator('#rp-diff [data-diff="same"]').count() == 1
    page.screenshot(path=str(screenshots / "replay-rerun.png"), full_page=True)
    # the replay view's report link serves the shift report (the page's cookie carries the key)
    with page.expect_popup() as popup:
        page.click("#rp-report")
    report = popup.value
    report.wait_for_selector("body[data-ready=true]", timeout=15000)
    assert int(report.get_attribute("body", "data-charts")) == 15
    assert report.locator(f'#timeline [data-alert-id="{ALERT_ID}"]').count() == 1
    report.close()
    with api.client("integrator") as c:
        r = c.get("/report", params={"shift": "2026-11-27:lunch"})
        assert r.status_code == 404 and "lunch" in r.text  # no such shift
        assert c.get("/report", params={"shift": SHIFT_ID}, headers={"X-API-Key": "nope"}).status_code == 401


def test_page_recovers_when_the_api_restarts_and_shows_what_came_meanwhile(
        settings, mine: Mine, page, screenshots: Path) -> None:
    """The API goes away (a restart, a deploy): the page says the stream is down, keeps what it
    showed, reconnects by itself and gets the incidents raised meanwhile from the snapshots."""
    import threading as th

    import uvicorn

    from api.main import create_app
    from minewatch.services import free_port

    page.expected_errors = ["ERR_CONNECTION_REFUSED", "ERR_EMPTY_RESPONSE", "ERR_CONNECTION_RESET",
                            "ERR_INCOMPLETE_CHUNKED_ENCODING"]
    port = free_port()

    def serve() -> tuple[uvicorn.Server, th.Thread]:
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on", timeout_graceful_shutdown=1))
        thread = th.Thread(target=server.run, daemon=True)
        thread.start()
        wait_for(lambda: server.started, what="the API")
        return server, thread

    server, thread = serve()
    url = f"http://127.0.0.1:{port}"
    try:
        page.goto(f"{url}/?api_key={KEYS['operator']}")
        page.wait_for_selector("body[data-ready=true]", timeout=10000)
        page.wait_for_selector("#conn[data-state=live]", timeout=5000)
        server.should_exit = True
        thread.join(15)
        page.wait_for_selector("#conn:not([data-state=live])", timeout=5000)
        page.wait_for_selector("body[data-lost]", timeout=6000)  # said loudly after a few seconds
        assert page.locator("#board [data-scenario-id]").count() == 31  # the board stays
        # raised while the API is down: retained on alerts/active and incidents/active
        (ev,) = mine.signal("hf01", "ch4_t1", "critical", 1.55, 1.5)
        page.screenshot(path=str(screenshots / "stream-down.png"))
        server, thread = serve()
        page.wait_for_selector("#conn[data-state=live]", timeout=15000)
        page.wait_for_selector(f'#incident-list [data-incident-id="{ev.incident_id}"] [data-alert-id="{ev.alert_id}"]',
                               state="attached", timeout=5000)
        assert page.get_attribute('#board [data-scenario-id="hf01"]', "data-severity") == "critical"
        assert page.get_attribute("body", "data-lost") is None
    finally:
        page.goto("about:blank")
        server.should_exit = True
        thread.join(15)
