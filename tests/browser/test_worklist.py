"""The incident worklist on the board: one row per incident, in the order an operator works them;
one acknowledgement per incident; notices after the alarms; late reports marked. Real API,
mosquitto and influxd; the ingestor played by ``tests/browser/mine.py`` with the real alert engine
and incident grouping."""

from __future__ import annotations

import random
import time
from datetime import datetime
from pathlib import Path

import pytest

from minewatch.schema import AlertKind, AlertTiming
from minewatch.shifts import ShiftCalendar
from tests.api.conftest import Api, wait_for
from tests.browser.conftest import open_board
from tests.browser.mine import Mine

pytestmark = [pytest.mark.browser, pytest.mark.integration]

S = 1_000_000_000
TZ = ShiftCalendar().tz  # the mine's offset from UTC (the page's default), whatever this machine's zone


def mine_time(ns: int) -> str:
    """24-hour mine time, as the page writes it."""
    return datetime.fromtimestamp(ns / S, TZ).strftime("%H:%M:%S")


def rows(page) -> list[str]:
    return page.locator("#incident-list [data-incident-id]").evaluate_all("els => els.map(e => e.dataset.incidentId)")


def test_an_outburst_is_one_incident_acknowledged_once_and_asked_again_when_it_escalates(
        dash: Api, mine: Mine, page, screenshots: Path) -> None:
    open_board(page, dash)
    # methane rising at three sensors of the face, and the rate of rise at T1: four alerts
    (t0,) = mine.signal("mf01", "ch4_t0", "alarm", 1.12, 1.0)
    (shearer,) = mine.signal("mf01", "ch4_shearer", "alarm", 1.05, 1.0)
    (rise,) = mine.signal("mf01", "ch4_t1", "warning", 0.35, 0.2, detector="rate_of_rise", unit="%/min",
                          message="Methane, face T1 in mf01 is rising 0.35 %/min (now 0.94 %): find the cause now.")
    (t1,) = mine.signal("mf01", "ch4_t1", "alarm", 1.31, 1.0)
    members = [t0.alert_id, shearer.alert_id, rise.alert_id, t1.alert_id]
    iid = t0.incident_id
    assert iid and all(e.incident_id == iid for e in (shearer, rise, t1))
    r = page.locator(f'#incident-list [data-incident-id="{iid}"]')
    page.wait_for_function("n => document.querySelectorAll('#incident-list [data-incident-id] [data-alert-id]').length"
                           " === n", arg=4, timeout=3000)
    assert rows(page) == [iid]  # one row for the four alerts
    assert r.get_attribute("data-severity") == "alarm" and r.get_attribute("data-needs-ack") == "true"
    text = r.inner_text()
    assert "Methane at mf01, 15101 fully-mechanised longwall" in text
    assert "1.31 % (limit 1.0 %)" in text  # the worst member (the latest of the alarms)
    assert "4 alerts" in text
    assert r.locator("button.ack").count() == 1
    # the members are listed when the row is opened: by a click on the row, and closed by Enter
    members_box = r.locator(".i-members")
    assert members_box.is_hidden()
    r.locator(".i-facts").click()
    assert members_box.is_visible() and r.locator(".i-title").get_attribute("aria-expanded") == "true"
    got = r.locator("[data-alert-id]").evaluate_all("els => els.map(e => e.dataset.alertId)")
    assert sorted(got) == sorted(members)
    rise_row = r.locator(f'[data-alert-id="{rise.alert_id}"]')
    assert "rising 0.35 %/min (limit 0.2 %/min)" in rise_row.inner_text()
    assert "is rising 0.35 %/min" in rise_row.inner_text()
    page.screenshot(path=str(screenshots / "incident-open.png"), full_page=False)
    r.locator(".i-title").focus()
    page.keyboard.press("Enter")
    assert members_box.is_hidden() and r.locator(".i-title").get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")
    assert members_box.is_visible()

    # one acknowledgement covers the four alerts
    r.locator("button.ack").click()
    assert "4 active alerts" in page.inner_text("#ack-message")
    page.fill("#ack-operator", "Wang Li")
    page.fill("#ack-note", "deputy sent, power off")
    page.click("#ack-submit")
    page.wait_for_selector(f'#incident-list [data-incident-id="{iid}"][data-needs-ack="false"]', timeout=5000)
    assert r.get_attribute("data-state") == "acknowledged" and "acknowledged by Wang Li" in r.inner_text()
    assert r.locator("button.ack").count() == 0
    page.wait_for_function("() => [...document.querySelectorAll('#incident-list [data-alert-id]')]"
                           ".every(e => e.dataset.state === 'acknowledged')", timeout=3000)
    assert mine.acks == [f"{mine.topics.prefix}/incidents/ack/{iid}"]  # one request, for the incident
    with dash.client("operator") as c:
        alerts = {a["alert_id"]: a for a in c.get("/alerts", params={"active": "true"}).json()["data"]}
    assert {alerts[m]["acknowledged_by"] for m in members} == {"Wang Li"}
    assert page.locator('[data-count="alarm"]').count() == 0
    page.screenshot(path=str(screenshots / "incident-acknowledged.png"), full_page=False)

    # T1 reaches the power-cut level: past what was acknowledged, so the operator is asked again
    mine.signal("mf01", "ch4_t1", "critical", 1.58, 1.5)
    page.wait_for_selector(f'#incident-list [data-incident-id="{iid}"][data-needs-ack="true"]', timeout=2000)
    assert r.get_attribute("data-severity") == "critical" and r.get_attribute("data-state") == "escalated"
    assert "ESCALATED" in r.inner_text() and "acknowledged by Wang Li before it escalated" in r.inner_text()
    assert page.inner_text('[data-count="critical"]').endswith("1 CRITICAL")
    r.locator("button.ack").click()
    page.click("#ack-submit")
    page.wait_for_selector(f'#incident-list [data-incident-id="{iid}"][data-needs-ack="false"]', timeout=5000)
    assert len(mine.acks) == 2


def test_worklist_order_notices_and_late_reports(dash: Api, mine: Mine, page, screenshots: Path) -> None:
    """Needing acknowledgement first, then severity, then the latest change; notices last and
    quiet; a report from a robot's backlog says when it happened and when it came. The same order
    whichever order the steps arrive in, live or from the snapshot on a reload."""
    now = time.time_ns()
    steps = {
        "critical": lambda: mine.signal("mf02", "ch4_t1", "critical", 1.61, 1.5, ts=now - 50 * S),
        "alarm": lambda: mine.signal("ra01", "ch4", "alarm", 0.81, 0.75, ts=now - 20 * S),
        "late": lambda: mine.signal("mf03", "ch4", "alarm", 1.07, 1.0, ts=now - 180 * S, timing=AlertTiming.late),
        "rise": lambda: mine.signal("hf01", "ch4_t1", "warning", 0.35, 0.2, detector="rate_of_rise", unit="%/min",
                                    ts=now - 10 * S),
        "acked": lambda: mine.signal("bc02", "co", "warning", 19.0, 18.0, ts=now - 5 * S, unit="ppm"),
        "notice": lambda: mine.signal("ss01", "t", "info", 28.4, None, detector="change", kind=AlertKind.ventilation,
                                      unit="°C", ts=now - 1 * S),
    }
    open_board(page, dash)
    names = list(steps)
    random.Random(7).shuffle(names)
    made = {name: steps[name]()[0].incident_id for name in names}
    with dash.client("operator") as c:
        wait_for(lambda: c.get(f"/incidents/{made['acked']}").status_code == 200, what="the incident at bc02")
        assert c.post(f"/incidents/{made['acked']}/ack", json={"operator": "Li Na", "note": ""}).status_code == 200
    expected = [made[k] for k in ("critical", "alarm", "late", "rise", "acked", "notice")]
    page.wait_for_function("([want, n]) => [...document.querySelectorAll('#incident-list [data-incident-id]')]"
                           ".map(e => e.dataset.incidentId + e.dataset.needsAck).join() === want.join()",
                           arg=[[f"{i}{flag}" for i, flag in zip(expected, ["true"] * 4 + ["false"] * 2)], 6],
                           timeout=5000)
    # the rate of rise speaks as a rate; the notice comes after a separator, quiet, with no button
    rise = page.locator(f'#incident-list [data-incident-id="{made["rise"]}"]')
    assert "rising 0.35 %/min (limit 0.2 %/min)" in rise.inner_text()
    notice = page.locator(f'#incident-list [data-incident-id="{made["notice"]}"]')
    assert "notice" in notice.get_attribute("class") and notice.locator("button").count() == 1  # the title only
    sep = page.locator('#incident-list [data-sep="notices"]')
    assert sep.count() == 1 and sep.evaluate("e => e.nextElementSibling.dataset.incidentId") == made["notice"]
    assert float(notice.evaluate("e => getComputedStyle(e).opacity")) < 1
    # late: marked, with when it happened and when it was reported, in mine time
    late = page.locator(f'#incident-list [data-incident-id="{made["late"]}"]')
    assert late.get_attribute("data-timing") == "late"
    times = [late.locator(f"{where} time").inner_text() for where in (".i-facts .i-happened", ".i-head .i-reported")]
    assert "LATE" in late.inner_text()
    assert times[0] == mine_time(now - 180 * S)
    assert times[1] in {mine_time(now + k * S) for k in range(-1, 6)}  # when the played ingestor sent it
    # compact rows: 8 or more fit the panel of a 1600 x 1000 screen
    page.screenshot(path=str(screenshots / "worklist.png"), full_page=False)
    heights = page.locator("#incident-list .inc").evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    assert max(heights) <= 84, heights
    # the snapshot on a reload gives the same order
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=10000)
    page.wait_for_function("n => document.querySelectorAll('#incident-list [data-incident-id]').length === n",
                           arg=6, timeout=5000)
    assert rows(page) == expected
