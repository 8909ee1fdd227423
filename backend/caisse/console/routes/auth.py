"""Sign-in, sign-out, and the console's home (the first page the user's role may see; mounted at
/console itself by caisse.console, since a router without prefix cannot hold an empty path)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from caisse import accounts
from caisse.console.deps import PAGE_ROLES, SESSION_COOKIE, SIGN_IN_CSRF_COOKIE, CurrentUser, DbSession
from caisse.console.messages import french
from caisse.console.templating import NAV, redirect, render

router = APIRouter()


def home(user: CurrentUser) -> Response:
    first = next(path for key, _label, path in NAV if user.role in PAGE_ROLES[key])
    return redirect(first)


@router.get("/login")
def login_form(request: Request, next: str = "") -> Response:
    if getattr(request.state, "signed_in", None):
        return redirect("/console")
    return render(request, "login.html", next=_safe_next(next), email="", error=None)


@router.post("/login")
def login(
    request: Request, session: DbSession, email: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    settings = request.app.state.settings
    try:
        attempt = accounts.begin_sign_in(session, email=email, settings=settings)
        session.commit()  # the attempt counts towards the limit from now on, whatever follows
        matches = accounts.password_matches(attempt, password)  # outside any transaction: it is slow
        token, _signed = accounts.finish_sign_in(session, attempt=attempt, matches=matches, settings=settings)
    except (accounts.SignInRefused, accounts.SignInThrottled) as error:
        session.rollback()
        return render(request, "login.html", status_code=error.status_code, next=_safe_next(next), email=email,
                      error=french(error))
    session.commit()
    response = redirect(_safe_next(next) or "/console")
    response.set_cookie(
        SESSION_COOKIE, token, max_age=settings.console_session_lifetime_s, httponly=True, samesite="lax",
        secure=settings.environment != "development", path="/",
    )
    response.delete_cookie(SIGN_IN_CSRF_COOKIE, path="/console", httponly=True, samesite="strict")
    return response


@router.post("/logout")
def logout(request: Request, session: DbSession) -> Response:
    accounts.sign_out(session, token=request.cookies.get(SESSION_COOKIE, ""))
    session.commit()
    response = redirect("/console/login", flash="Vous êtes déconnecté.")
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


def _safe_next(target: str) -> str:
    """Only a console path: never an open redirect to another site."""
    if target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return ""
