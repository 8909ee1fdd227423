"""What a console page may ask for, as Annotated aliases, and the checks every request passes.

- `DbSession`: the request's database session (routes commit explicitly, as in the API).
- `CurrentUser`: the signed-in user; a browser without a valid session is sent to the sign-in page.
- `require_roles(*roles)`: a dependency refusing other roles with a French 403 page.
- `check_csrf`: applied by the console router to every request. A POST must carry the form field
  `csrf_token` equal to the token of its session (or, before sign-in, to the value of the
  sign-in cookie: double submit), else 403 and nothing runs.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from caisse.api.deps import get_session
from caisse.models import ConsoleUser, Role
from caisse.staff import accounts

SESSION_COOKIE = "caisse_session"
SIGN_IN_CSRF_COOKIE = "caisse_signin_csrf"
CSRF_FIELD = "csrf_token"

DbSession = Annotated[Session, Depends(get_session)]

# Who sees which page (the navigation shows a user only the pages of their role).
STAFF = (Role.ADMIN, Role.COORDINATOR)
PAGE_ROLES: dict[str, tuple[Role, ...]] = {
    "households": STAFF,
    "cards": STAFF,
    "vendors": (*STAFF, Role.TREASURER),
    "terminals": STAFF,
    "transactions": (*STAFF, Role.TREASURER),
    "settlements": (Role.ADMIN, Role.TREASURER, Role.COORDINATOR),
    "contributions": (*STAFF, Role.TREASURER),
    "fund": (Role.ADMIN, Role.TREASURER),  # money steps: allowances, imports, grants, fees, credits, reversals
    "budget": tuple(Role),
    "flows": tuple(Role),
    "sortition": tuple(Role),
    "audit": (Role.ADMIN,),
    "users": (Role.ADMIN,),
}


class SignInRequired(Exception):
    """Answered with a redirect to the sign-in page (caisse.console.install)."""


class ConsoleForbidden(Exception):
    """Answered with a French 403 page; `message` is shown to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def optional_sign_in(request: Request, session: DbSession) -> accounts.SignedIn | None:
    signed = accounts.signed_in(session, token=request.cookies.get(SESSION_COOKIE, ""))
    request.state.signed_in = signed
    return signed


SignedInOrNot = Annotated[accounts.SignedIn | None, Depends(optional_sign_in)]


async def check_csrf(request: Request, signed: SignedInOrNot) -> None:
    expected = signed.session.csrf_token if signed else request.cookies.get(SIGN_IN_CSRF_COOKIE)
    if not expected:
        expected = request.state.new_sign_in_csrf = secrets.token_urlsafe(32)
    request.state.csrf_token = expected
    if request.method == "POST":
        sent = (await request.form()).get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise ConsoleForbidden("Le formulaire a expiré ou ne vient pas de la console. Rechargez la page et recommencez.")


def current_user(signed: SignedInOrNot) -> ConsoleUser:
    if signed is None:
        raise SignInRequired()
    return signed.user


CurrentUser = Annotated[ConsoleUser, Depends(current_user)]


def require_roles(*roles: Role) -> Callable[[ConsoleUser], ConsoleUser]:
    """`dependencies=[Depends(require_roles(Role.ADMIN, ...))]`, or as a parameter: returns the user."""
    allowed = {str(role) for role in roles}

    def _check(user: CurrentUser) -> ConsoleUser:
        if user.role not in allowed:
            raise ConsoleForbidden("Votre rôle ne donne pas accès à cette page.")
        return user

    return _check


def require_page(page: str) -> Callable[[ConsoleUser], ConsoleUser]:
    """require_roles with the roles PAGE_ROLES gives the page."""
    return require_roles(*PAGE_ROLES[page])
