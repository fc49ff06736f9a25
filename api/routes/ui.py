"""``GET /js/order.js``: the board's group order and the severity order, as an ES module for the
dashboard (not part of the API's document)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from api.ui import order_module

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_BODY = order_module()


@router.get("/js/order.js")
def order_js() -> Response:
    return Response(_BODY, media_type="text/javascript", headers={"Cache-Control": "no-cache"})
