"""``/robots``: every robot seen (retained status and live telemetry)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from api.deps import Reader, StateDep
from api.params import ROBOT_PATTERN, robot_or_422
from api.schemas import RobotPublic, RobotsPublic, errors
from api.views import robot_public

router = APIRouter(prefix="/robots", tags=["robots"])


@router.get("", response_model=RobotsPublic, responses=errors(), summary="All robots")
async def list_robots(state: StateDep, _: Reader) -> RobotsPublic:
    """Robots known from their retained status and the telemetry seen since the API started:
    online, battery, link and where they are (scenario and position along the route)."""
    data = sorted((robot_public(state.live, r) for r in state.live.robot_ids()), key=lambda r: r.robot_id)
    return RobotsPublic(data=data, count=len(data))


@router.get("/{robot_id}", response_model=RobotPublic, responses=errors(404), summary="One robot")
async def get_robot(robot_id: Annotated[str, Path(examples=["r01"], description="robot id",
                                                  json_schema_extra={"pattern": ROBOT_PATTERN})],
                    state: StateDep, _: Reader) -> RobotPublic:
    robot_or_422(robot_id)
    if robot_id not in state.live.robot_ids():
        raise HTTPException(404, f"no robot {robot_id!r} has been seen")
    return robot_public(state.live, robot_id)
