"""Sign-in, sign-out, and the console's home: what needs the staff's attention (households below
zero; what waits for a person longer than CAISSE_OVERDUE_AFTER_DAYS), then the pages of the
user's role. Mounted at /console itself by caisse.console, since a
router without prefix cannot hold an empty path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from caisse.console.deps import PAGE_ROLES, SESSION_COOKIE, SIGN_IN_CSRF_COOKIE, CurrentUser, DbSession
from caisse.console.templating import NAV, local_today, redirect, render
from caisse.errors import french
from caisse.fund import overdrafts
from caisse.reports import overdue
from caisse.staff import accounts
from caisse.vendors import accreditation

router = APIRouter()


# French names of what waits (caisse.reports.overdue), and the page that deals with each (by its NAV key).
WAITING_FR = {overdue.WaitingKind.HELD_RECORD: "Paiement retenu pour vérification", overdue.WaitingKind.FLAGGED_CARD: "Carte bloquée comme copie",
              overdue.WaitingKind.NEGATIVE_HOUSEHOLD: "Foyer à découvert", overdue.WaitingKind.NEGATIVE_PAYABLE: "Commerçant à solde négatif"}
WAITING_PAGES = {overdue.WaitingKind.HELD_RECORD: ("transactions", "/console/transactions?status=held"),
                 overdue.WaitingKind.NEGATIVE_HOUSEHOLD: ("households", "/console/households/{id}"),
                 overdue.WaitingKind.NEGATIVE_PAYABLE: ("vendors", "/console/vendors/{id}")}


def home(request: Request, session: DbSession, user: CurrentUser) -> Response:
    """Households below zero: by name for those who may see households, as a total for the others.
    What waits too long: line by line for those who may see transactions, as a count for the others."""
    settings = request.app.state.settings
    named = user.role in PAGE_ROLES["households"]
    waiting = overdue.overdue(session, settings=settings)
    links = {kind: path for kind, (page, path) in WAITING_PAGES.items() if user.role in PAGE_ROLES[page]}
    return render(request, "home.html", title="Accueil", overdrafts=overdrafts.overdrawn_households(session) if named else None,
                  overdraft_total=overdrafts.total(session),
                  waiting=waiting if user.role in PAGE_ROLES["transactions"] else None, waiting_count=len(waiting),
                  waiting_kinds=WAITING_FR, waiting_links=links, overdue_days=settings.overdue_after_days,
                  ending=accreditation.ending_soon(session, today=local_today(request)),
                  ending_named=user.role in PAGE_ROLES["vendors"], ending_days=accreditation.WARNING_DAYS,
                  pages=[(label, path) for key, label, path in NAV if user.role in PAGE_ROLES[key]])


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
