"""What a route may ask for, as Annotated aliases: its signature says exactly what it needs."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
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
