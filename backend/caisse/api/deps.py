"""What a route may ask for, as Annotated aliases: its signature says exactly what it needs."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.routing import APIRoute
from sqlmodel import Session

from caisse.config import Settings
from caisse.errors import CaisseError


class Unauthorized(CaisseError):
    status_code = 401


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request. Routes commit explicitly; anything else rolls back on close."""
    with request.app.state.session_factory() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]


def require_admin(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), settings.admin_token.encode()):
        raise Unauthorized("unauthorized", "send Authorization: Bearer <admin token>")


AdminDep = Annotated[None, Depends(require_admin)]


class TokenFirstRoute(APIRoute):
    """A route that checks the admin token before anything else. FastAPI reads and parses a JSON
    body before it runs any dependency, so a router-level Depends(require_admin) alone would let
    anyone make the server receive and parse bodies (and answer 422 for a bad one)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def token_first(request: Request) -> Response:
            require_admin(get_settings(request), request.headers.get("authorization"))
            return await handler(request)

        return token_first
