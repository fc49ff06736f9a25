"""Dependencies: the app's state, and who is calling.

The API key may come in an ``X-API-Key`` header, an ``Authorization: Bearer`` header, an
``api_key`` query parameter or a ``minewatch_api_key`` cookie (the last two for the browser:
``EventSource`` cannot send headers). Roles chain: an engineer may do all an operator may, an
operator all an integrator may.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyCookie, APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from api.schemas import Role
from api.state import AppState
from minewatch.influx import InfluxClient
from minewatch.settings import API_ROLE_RANK, API_ROLES, Settings

__all__ = ["Principal", "StateDep", "SettingsDep", "InfluxDep", "Reader", "CurrentOperator", "CurrentEngineer",
           "authenticate", "KEY_COOKIE", "KEY_QUERY"]

KEY_HEADER = "X-API-Key"
KEY_QUERY = "api_key"
KEY_COOKIE = "minewatch_api_key"

header_key = APIKeyHeader(name=KEY_HEADER, auto_error=False, scheme_name="ApiKeyHeader",
                          description="The API key in a header (preferred).")
bearer_key = HTTPBearer(auto_error=False, scheme_name="Bearer", description="The API key as a bearer token.")
query_key = APIKeyQuery(name=KEY_QUERY, auto_error=False, scheme_name="ApiKeyQuery",
                        description="The API key as a query parameter, for EventSource and links.")
cookie_key = APIKeyCookie(name=KEY_COOKIE, auto_error=False, scheme_name="ApiKeyCookie",
                          description="The API key in a cookie, for the dashboard page.")


@dataclass(frozen=True)
class Principal:
    role: Role
    key_id: str  # a short digest of the key, safe to log and to show

    def may(self, role: Role) -> bool:
        return API_ROLE_RANK[self.role] >= API_ROLE_RANK[role]


def get_state(conn: HTTPConnection) -> AppState:
    return conn.app.state.minewatch


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_influx(state: StateDep) -> InfluxClient:
    return state.influx


SettingsDep = Annotated[Settings, Depends(get_settings)]
InfluxDep = Annotated[InfluxClient, Depends(get_influx)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def authenticate(keys: dict[str, str], key: str | None) -> Principal:
    """The caller behind ``key``; 401 if there is none or it is unknown."""
    if not key:
        raise _unauthorized(f"no API key: send it in the {KEY_HEADER} header, as 'Authorization: Bearer KEY', "
                            f"as the {KEY_QUERY} query parameter or the {KEY_COOKIE} cookie")
    for known, name in keys.items():
        role = next((r for r in API_ROLES if r == name), None)  # the settings check the names
        if role is not None and hmac.compare_digest(known.encode(), key.encode()):
            return Principal(role, hashlib.sha256(key.encode()).hexdigest()[:8])
    raise _unauthorized("unknown API key")


def key_of(conn: HTTPConnection) -> str | None:
    """The key a request or WebSocket carries, by the order of preference above."""
    h = conn.headers.get(KEY_HEADER)
    if h:
        return h
    auth = conn.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return conn.query_params.get(KEY_QUERY) or conn.cookies.get(KEY_COOKIE) or None


def current_principal(
    request: Request,
    state: StateDep,
    header: Annotated[str | None, Security(header_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_key)],
    query: Annotated[str | None, Security(query_key)],
    cookie: Annotated[str | None, Security(cookie_key)],
) -> Principal:
    key = header or (bearer.credentials if bearer else None) or query or cookie
    return authenticate(state.api_keys, key)


def require(role: Role):
    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.may(role):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"the {principal.role} role may not do this; it needs the {role} role or higher")
        return principal

    return check


Reader = Annotated[Principal, Depends(require("integrator"))]
CurrentOperator = Annotated[Principal, Depends(require("operator"))]
CurrentEngineer = Annotated[Principal, Depends(require("engineer"))]
