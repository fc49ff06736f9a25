"""``/me``: the caller's role and what it may do, so a client can offer only that."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Reader
from api.schemas import Me, errors

router = APIRouter(tags=["me"])


@router.get("/me", response_model=Me, responses=errors(), summary="The caller's role")
async def me(who: Reader) -> Me:
    """The key's role and what it allows: the dashboard shows Acknowledge only to keys that may
    acknowledge (the API would refuse the others with 403 anyway)."""
    return Me(role=who.role, key_id=who.key_id, acknowledge=who.may("operator"), start_replays=who.may("engineer"))
