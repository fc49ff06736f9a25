"""A quantity is data: H2S added to the catalogue in one place (its Quantity, and a channel
measuring it at a face) is detected, simulated, served by the API and documented in the
AsyncAPI document; an unknown quantity or one that cannot carry limits is an error at start-up.

H2S limit: 0.00066 % = 6.6 ppm (domain §1.3, CMSR 2011 table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from detectors import DetectorSuite
from minewatch import asyncapi
from minewatch.catalogue import QUANTITIES, SCENARIOS, Channel, Limit, Quantity, QuantityKind, Scenario
from minewatch.influx import SyncInflux
from minewatch.services import Mosquitto
from minewatch.settings import Settings
from simulator.engine import SimConfig, Simulation
from tests.api.conftest import KEYS, serve, wait_for
from tests.detectors.conftest import T0, frame

H2S = Quantity("h2s", "hydrogen sulphide", "ppm", 0.0, 100.0, 0.1, "electrochemical H2S 0-100 ppm [U]",
               QuantityKind.gas, "gas", spikes=True, blind="alarm", cause="air-quality", noise=(0.05, 0.0),
               short="H₂S")
H2S_LIMIT = Limit("above", (("alarm", 6.6),), 6.0, "CMSR 2011 table: H2S ≤ 0.00066 % = 6.6 ppm (domain §1.3)",
                  "withdraw people to fresh air and find the source")


@pytest.fixture
def with_h2s(monkeypatch: pytest.MonkeyPatch) -> Iterator[Scenario]:
    """The catalogue with H2S, measured at mf01's face."""
    monkeypatch.setitem(QUANTITIES, "h2s", H2S)
    sc = SCENARIOS["mf01"]
    face = dataclasses.replace(sc, channels=sc.channels + (
        Channel("h2s", "h2s", "hydrogen sulphide, face", (0.0, 0.5), (H2S_LIMIT,)),))
    monkeypatch.setitem(SCENARIOS, "mf01", face)
    yield face


def test_h2s_over_its_limit_alerts(with_h2s: Scenario) -> None:
    values = [0.3, 0.4, 7.2, 7.5, 7.4, 5.0, 4.0]
    d = DetectorSuite().process([frame("r01", "mf01", i, {"h2s": v}) for i, v in enumerate(values)])
    h2s = [e for e in d.events if e.channel == "h2s"]
    assert [(e.state.value, e.kind.value, e.detector, e.severity.value) for e in h2s] == [
        ("raised", "gas", "gas_limit", "alarm"), ("cleared", "gas", "gas_limit", "alarm")]
    raised = h2s[0]
    assert raised.limit == 6.6 and raised.unit == "ppm" and raised.value == 7.5  # two readings (debounce)
    assert raised.message.startswith("Hydrogen sulphide at face in mf01") and "is 7.5 ppm" in raised.message
    assert "alarm level 6.6 ppm" in raised.message
    assert raised.incident_id is not None


def test_h2s_is_simulated(with_h2s: Scenario) -> None:
    sim = Simulation(SimConfig(seed=3, rate_hz=1.0, start_ns=T0, duration_s=30, scenarios=["mf01"]))
    values = [f.readings["h2s"] for t in sim.ticks() for m in t.messages for f in m.frames if "h2s" in f.readings]
    assert len(values) >= 20
    assert all(v is not None and 0.0 <= v <= 1.0 for v in values), values
    assert len(set(values)) > 1  # sensor noise, from the quantity


def test_h2s_is_served_and_documented(with_h2s: Scenario, mosquitto: Mosquitto, influx_db: SyncInflux,
                                      prefix: str) -> None:
    settings = Settings(mqtt_url=mosquitto.url, influx_url=influx_db.url, influx_db=influx_db.db, topic_prefix=prefix,
                        api_keys=f"{KEYS['operator']}:operator")
    server, thread, url = serve(settings)
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz").json()["mqtt"], what="the API's MQTT connection")
        r = httpx.get(f"{url}/scenarios/mf01", headers={"X-API-Key": KEYS["operator"]}, timeout=10.0)
        r.raise_for_status()
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    ch = {c["name"]: c for c in r.json()["channels"]}["h2s"]
    assert (ch["quantity"], ch["unit"], ch["low"], ch["high"]) == ("h2s", "ppm", 0.0, 100.0)
    assert ch["limits"][0]["levels"] == {"alarm": 6.6}
    doc = asyncapi.document()["channels"]["telemetry"]["description"]
    assert "| `h2s` | hydrogen sulphide | ppm | 0 to 100 | gas |" in doc


def test_unknown_quantity_is_an_error_at_start_up() -> None:
    with pytest.raises(ValueError, match="unknown quantity 'nh3'"):
        Channel("nh3", "nh3", "ammonia", (0.0, 1.0))


def test_a_limit_on_a_quantity_without_a_limit_detector_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(QUANTITIES, "nh3", dataclasses.replace(H2S, code="nh3", name="ammonia", limit_name=None))
    sc = SCENARIOS["mf01"]
    odd = dataclasses.replace(sc, channels=sc.channels + (
        Channel("nh3", "nh3", "ammonia", (0.0, 1.0), (dataclasses.replace(H2S_LIMIT, levels=(("alarm", 40.0),)),)),))
    with pytest.raises(ValueError, match=r"mf01\.nh3 has a limit, but its quantity 'nh3' \(ammonia\) names no limit"):
        DetectorSuite({**SCENARIOS, "mf01": odd})
