"""Robots move, drain and charge; the 5G link fades with distance and dies in coverage holes."""

from __future__ import annotations

import numpy as np

from simulator.fleet import PATROLS, Robot, build_fleet, default_fleet
from simulator.link import LinkModel


def test_default_fleet_covers_every_scenario_with_patrols_through_several() -> None:
    fleet = default_fleet()
    assert len(fleet) == 35
    assert len({r.scenario for r in fleet if r.kind != "patrol"}) == 31
    assert {r.kind for r in fleet} == {"rail", "crawler", "patrol"}
    assert all(len({sid for sid, _ in r.route.segments}) >= 5 for r in fleet if r.kind == "patrol")
    assert [r.id for r in build_fleet(scenarios=["bc01", "mf01"])] == ["r01", "r15"]


def test_a_patrol_walks_its_loop_stops_drains_and_charges() -> None:
    robot = Robot("p01", "patrol", PATROLS["p01"], 1.0, battery=60.0, charge_below=35.0)
    seen, stops, charged_at = set(), 0, None
    battery = []
    for s in range(6 * 3600):
        before = robot.dwell_left
        robot.advance(1.0)
        seen.add(robot.scenario)
        stops += before == 0.0 and robot.dwell_left > 0.0
        battery.append(robot.battery)
        if robot.charging and charged_at is None:
            charged_at = s
    assert seen == {sid for sid, _ in PATROLS["p01"].segments}
    assert stops >= 5  # an inspection stop in each scenario it passes
    assert charged_at is not None and battery[charged_at] < 35.0
    assert max(battery[charged_at:]) >= 94.9  # charged back up and out again
    assert robot.route.length > 1000 and 0.0 <= robot.pos < robot.route.length


def test_a_rail_robot_shuttles_and_goes_home_to_charge() -> None:
    robot = build_fleet(scenarios=["bc02"])[0]
    robot.battery = 31.0
    positions = []
    for _ in range(4000):
        robot.advance(1.0)
        positions.append(robot.pos)
        if robot.charging:
            break
    assert robot.charging and robot.pos == 0.0
    assert max(positions) <= robot.route.length


def test_link_fades_with_distance_and_dies_in_a_hole() -> None:
    model = LinkModel(np.random.default_rng(1))
    d = np.array([10.0] * 500 + [400.0] * 500 + [100.0] * 500)
    hole = np.array([False] * 1000 + [True] * 500)
    up, latency, rssi, lost = model.sample(d, hole)
    near, far, dead = slice(0, 500), slice(500, 1000), slice(1000, 1500)
    assert up[near].all() and up[far].all() and not up[dead].any()
    assert rssi[near].mean() > rssi[far].mean() + 20
    assert latency[far].mean() > latency[near].mean() + 3
    assert np.percentile(latency[near], 99) < 20  # the mine's 5G: < 20 ms (domain §5)
    assert not lost[dead].any()
