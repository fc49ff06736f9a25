"""The shift report: figures from a recorded shift in a real InfluxDB, and the file rendered in
headless Chromium with its charts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.report import collect
from api.report_cli import report
from api.report_render import render
from minewatch.influx import SyncInflux
from tests.browser.seed import ALERT_ID, PEAK, SHIFT, SHIFT_ID, seed


@pytest.fixture
def recorded(influx_db: SyncInflux) -> SyncInflux:
    seed(influx_db)
    return influx_db


def test_report_figures(recorded: SyncInflux) -> None:
    data = collect(recorded, SHIFT)
    by_id = {s["id"]: s for s in data.scenarios}
    assert len(by_id) == 31
    mf01 = by_id["mf01"]
    assert set(mf01["channels"]) == {c for c in mf01["meta"]}  # every mf01 channel was recorded
    assert by_id["hf01"]["channels"] == {}  # no robot there this shift
    # the bucket max keeps the methane peak that the bucket mean smooths away
    mean, lo, hi = mf01["channels"]["ch4_t1"]
    assert max(v for v in hi if v is not None) == pytest.approx(PEAK, abs=0.01)
    assert max(v for v in mean if v is not None) < PEAK
    assert all(a <= b for a, b in zip(lo, hi) if a is not None and b is not None)
    assert len(mf01["t"]) <= 360 and mf01["t"][0] >= SHIFT.start_ns // 10**9

    assert [a["alert_id"] for a in data.alerts] == [ALERT_ID]
    alert = data.alerts[0]
    assert (alert["severity"], alert["state"], alert["operator"]) == ("critical", "cleared", "Wang Li")
    assert alert["value"] == pytest.approx(PEAK)
    assert data.counts() == {"gas": {"critical": 1}}

    robots = {r["robot_id"]: r for r in data.robots}
    assert robots["r01"]["uptime"] == pytest.approx(7 / 8)
    assert robots["r02"]["uptime"] == pytest.approx(1.0)
    assert robots["r01"]["reporting"] == pytest.approx(420 / 480)
    assert robots["r01"]["frames"] == 420
    assert robots["r01"]["min_battery"] == pytest.approx(95.0 - 479 * 0.1, abs=0.01)


def test_report_command_and_browser(recorded: SyncInflux, tmp_path: Path, page, screenshots: Path) -> None:
    out = tmp_path / "report.html"
    res = CliRunner().invoke(report, ["--shift", SHIFT_ID, "--out", str(out), "--influx-url",
                                                      recorded.url, "--influx-db", recorded.db, "--progress"])
    assert res.exit_code == 0, res.output
    assert "2/31 scenarios with data, 1 alerts, 2 robots" in res.output
    assert f"report {SHIFT_ID}" in res.stderr and "2/31" not in res.stderr  # the bar, apart from the result
    text = out.read_text()
    # self-contained: no external script, style or image
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)
    assert "uPlot" in text and "MIT License" in text

    page.goto(out.as_uri())
    page.wait_for_selector("body[data-ready=true]", timeout=10000)
    charts = int(page.get_attribute("body", "data-charts"))
    assert charts == 10 + 5  # mf01 and ra01 channels
    assert page.locator("#scenarios canvas").count() == charts
    assert page.locator('[data-scenario-id="hf01"] .nodata').count() == 1
    assert page.locator(f'#timeline [data-alert-id="{ALERT_ID}"]').count() == 1
    assert "Wang Li" in page.inner_text("table.alerts")
    assert "87.5 %" in page.inner_text("table.robots")
    page.screenshot(path=str(screenshots / "report.png"), full_page=True)


def test_report_rejects_a_bad_shift(tmp_path: Path) -> None:
    res = CliRunner().invoke(report, ["--shift", "2026-11-27:lunch", "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 2
    assert "no shift named 'lunch'" in res.output
    assert not (tmp_path / "r.html").exists()


def test_report_says_when_it_cannot_write(recorded: SyncInflux, tmp_path: Path) -> None:
    res = CliRunner().invoke(report, ["--shift", SHIFT_ID, "--out", str(tmp_path / "no" / "such" / "r.html"),
                                      "--influx-url", recorded.url, "--influx-db", recorded.db])
    assert res.exit_code == 1
    assert "cannot write" in res.output and "No such file or directory" in res.output


def test_report_says_when_influx_is_down(tmp_path: Path) -> None:
    from minewatch.services import free_port

    res = CliRunner().invoke(report, ["--shift", SHIFT_ID, "--out", str(tmp_path / "r.html"),
                                      "--influx-url", f"http://127.0.0.1:{free_port()}"])
    assert res.exit_code == 1
    assert "unreachable" in res.output


def test_render_escapes_text(recorded: SyncInflux) -> None:
    data = collect(recorded, SHIFT)
    data.alerts[0]["message"] = "</script><b>x</b>"
    text = render(data)
    assert "</script><b>x</b>" not in text


def test_an_old_shift_comes_from_the_long_term_statistics(influx_db: SyncInflux) -> None:
    """Raw readings are kept a week (minewatch.storage); an older shift is reported from the
    5-minute statistics and the alert log copied into the ``long`` policy."""
    import httpx

    from minewatch.storage import ensure_storage_sync
    from tests.browser.seed import alert_lines

    ensure_storage_sync(influx_db)
    t0 = SHIFT.start_ns
    stats = [f"telemetry_5m,robot=r01,scenario=mf01,scenario_kind=mining_face "
             f"mean_ch4_t1={0.3 + i / 1000},min_ch4_t1=0.2,max_ch4_t1={1.7 if i == 30 else 0.4} {t0 + i * 300 * 10**9}"
             for i in range(96)]
    r = httpx.post(f"{influx_db.url}/write", params={"db": influx_db.db, "rp": "long", "precision": "ns"},
                   content="\n".join(stats + alert_lines()))
    assert r.status_code == 204, r.text
    data = collect(influx_db, SHIFT)
    mf01 = next(s for s in data.scenarios if s["id"] == "mf01")
    assert mf01.get("source") == "long.telemetry_5m"
    assert list(mf01["channels"]) == ["ch4_t1"]
    mean, lo, hi = mf01["channels"]["ch4_t1"]
    assert len(mean) == 96 and max(hi) == pytest.approx(1.7)
    assert [a["alert_id"] for a in data.alerts] == [ALERT_ID]
    assert "no longer kept" in render(data)
