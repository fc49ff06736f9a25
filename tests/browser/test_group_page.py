"""The group page of ``minewatch api --group`` in headless Chromium: every mine with its counts and
a link to its board, every open incident, and an incident that closes leaving the page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from minewatch.services import Influxd, Mosquitto
from tests.api.conftest import KEYS, T0, Publisher
from tests.api.test_group import incident, running_group, watch

S = 1_000_000_000


@pytest.fixture
def group_url(mosquitto: Mosquitto, influxd: Influxd) -> Iterator[tuple[str, Publisher, str]]:
    with running_group(mosquitto, influxd, board_url="https://centre.example/mines/{mine}/") as (url, pub, stored, _):
        yield url, pub, stored


def test_group_page(group_url: tuple[str, Publisher, str], page, screenshots: Path) -> None:
    url, pub, stored = group_url
    base = pub.topics.prefix
    published = [("m001", incident("mf01.methane.1", "critical", True, T0 + 5 * S)),
                 ("m002", incident("mf02.fire.3", "alarm", True, T0 + 7 * S, scenario="mf02")),
                 ("m002", incident("hf01.heat.4", "warning", False, T0 + 9 * S, scenario="hf01"))]
    for mine, inc in published:
        pub.publish(f"{base}/mines/{mine}/incidents/active/{inc.incident_id}", inc.model_dump_json(), retain=True)
    pub.publish(f"{base}/mines/m001/watch/hf02", watch("hf02", False).model_dump_json(), retain=True)

    page.goto(f"{url}/?api_key={KEYS['integrator']}")
    page.wait_for_selector('#incidents tr[data-incident="hf01.heat.4"]', timeout=15000)
    rows = page.locator("#mines tbody tr")
    listed = rows.evaluate_all("rs => rs.map(r => r.dataset.mine)")
    # the InfluxDB is shared with other tests, whose minewatch_* databases are mines too
    assert listed == sorted(listed) and [m for m in listed if m in {"m001", "m002", stored}] == \
        sorted(["m001", "m002", stored])
    m2 = page.locator('#mines tr[data-mine="m002"]')
    assert m2.locator("td.open").inner_text() == "2" and m2.locator("td.needs-ack").inner_text() == "1"
    assert page.locator('#mines tr[data-mine="m001"] td.not-watched').inner_text() == "hf02"
    assert m2.locator("td.board a").get_attribute("href") == "https://centre.example/mines/m002/"
    assert page.locator(f'#mines tr[data-mine="{stored}"] td.heard').inner_text() == "never"
    order = page.locator("#incidents tbody tr").evaluate_all("rs => rs.map(r => r.dataset.incident)")
    assert order == ["mf01.methane.1", "mf02.fire.3", "hf01.heat.4"]
    assert "api_key" not in page.url  # the key left the address bar
    page.screenshot(path=str(screenshots / "group.png"), full_page=False)

    pub.publish(f"{base}/mines/m002/incidents/active/mf02.fire.3", b"", retain=True)
    page.wait_for_selector('#incidents tr[data-incident="mf02.fire.3"]', state="detached", timeout=15000)
    assert page.locator('#mines tr[data-mine="m002"] td.open').inner_text() == "1"
    for mine, inc in published:
        pub.publish(f"{base}/mines/{mine}/incidents/active/{inc.incident_id}", b"", retain=True)
