"""``/scenarios``: the 31 working scenarios with their live state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.deps import Reader, StateDep
from api.schemas import ScenarioPublic, ScenariosPublic, errors
from api.views import robot_public, scenario_public
from minewatch.catalogue import SCENARIOS

router = APIRouter(prefix="/scenarios", tags=["scenarios"])

ScenarioPath = Annotated[str, Path(description="scenario id, e.g. mf01", examples=["mf01"])]


@router.get("", response_model=ScenariosPublic, responses=errors(), summary="All scenarios with live state")
async def list_scenarios(state: StateDep, _: Reader) -> ScenariosPublic:
    """Every scenario of the catalogue, with the worst active alert, the latest reading of each
    channel seen live, and the robots online there."""
    live = state.live
    robots = [robot_public(live, r) for r in live.robot_ids()]
    data = [scenario_public(live, sc, robots) for sc in SCENARIOS.values()]
    return ScenariosPublic(data=data, count=len(data))


@router.get("/{scenario_id}", response_model=ScenarioPublic, responses=errors(404), summary="One scenario")
async def get_scenario(scenario_id: ScenarioPath, state: StateDep, _: Reader) -> ScenarioPublic:
    sc = SCENARIOS.get(scenario_id)
    if sc is None:
        raise HTTPException(404, f"unknown scenario {scenario_id!r}; known: {', '.join(SCENARIOS)}")
    return scenario_public(state.live, sc)
