"""Console accounts (administrators only): list, create, disable or enable, reset a password; and
every person's own password page. A new account and a reset get a random password shown once on
the answer page, never stored in clear or logged; the services write the audit entries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from caisse import audit
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.templating import ROLE_LABELS, confirm, redirect, render
from caisse.db import get_or_not_found
from caisse.errors import CaisseError, french
from caisse.models import ConsoleUser
from caisse.reports import directory
from caisse.staff import accounts

router = APIRouter(prefix="/users", dependencies=[Depends(require_page("users"))])
own_router = APIRouter()  # every signed-in person: their own password
Text = Annotated[str, Form()]
PER_PAGE = 50
STATES = {"active": True, "disabled": False}


@router.get("")
def users(request: Request, session: DbSession, q: str = "", role: str = "", state: str = "", page: int = 1) -> Response:
    return _list(request, session, q=q, role=role, state=state, page=page)


def _list(request: Request, session: DbSession, *, q: str = "", role: str = "", state: str = "", page: int = 1,
          form: dict[str, str] | None = None, error: str | None = None, status_code: int = 200) -> Response:
    role = role if role in ROLE_LABELS else ""
    state = state if state in STATES else ""
    found = directory.users_page(session, query=q, role=role or None, active=STATES.get(state), page=page, per_page=PER_PAGE)
    return render(request, "users/list.html", status_code=status_code, title="Comptes", found=found, q=q, role=role,
                  state=state, form=form or {"role": "coordinator"}, error=error)


@router.post("")
def create(request: Request, session: DbSession, user: CurrentUser, email: Text = "", role: Text = "",
           confirmed: Text = "") -> Response:
    """First the summary of what will be created; the account once that page is confirmed."""
    form = {"email": email, "role": role}
    email = accounts.normalize_email(email)
    if not confirmed:
        if role not in ROLE_LABELS or not email:
            return _list(request, session, form=form, error=french(CaisseError("invalid_role" if email else "invalid_email", "")),
                         status_code=422)
        return confirm(request, title="Créer un compte", action="/console/users", button="Créer le compte",
                       back="/console/users", hidden={"email": email, "role": role, "confirmed": "1"},
                       lines=[f"Un compte {ROLE_LABELS[role]} sera créé pour {email}.",
                              "Un mot de passe provisoire s'affichera une seule fois sur la page suivante : transmettez-le"
                              " à la personne, qui le changera à sa première connexion (Mon mot de passe)."])
    password = accounts.new_password()
    try:
        created = accounts.add_account(session, email=email, password=password, role=role, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _list(request, session, form=form, error=french(error), status_code=error.status_code)
    session.commit()
    return render(request, "users/password.html", title="Compte créé", account=created, password=password, created=True)


@router.get("/{user_id}")
def account(request: Request, session: DbSession, user_id: int) -> Response:
    found = _account(session, user_id)
    return render(request, "users/detail.html", title=found.email, account=found,
                  history=audit.events(session, subjects=[f"user:{found.email}"], limit=20))


@router.get("/{user_id}/disable")
def disable_form(request: Request, session: DbSession, user_id: int) -> Response:
    found = _account(session, user_id)
    return confirm(request, title=f"Désactiver {found.email}", action=f"/console/users/{user_id}/disable",
                   button="Désactiver le compte", danger=True, back=f"/console/users/{user_id}",
                   lines=[f"{found.email} ne pourra plus se connecter ; ses sessions ouvertes seront fermées tout de suite.",
                          "Le compte pourra être réactivé ; ce qu'il a fait reste au journal."])


@router.post("/{user_id}/disable")
def disable(request: Request, session: DbSession, user: CurrentUser, user_id: int) -> Response:
    return _set_active(request, session, user, user_id, active=False)


@router.get("/{user_id}/enable")
def enable_form(request: Request, session: DbSession, user_id: int) -> Response:
    found = _account(session, user_id)
    return confirm(request, title=f"Réactiver {found.email}", action=f"/console/users/{user_id}/enable",
                   button="Réactiver le compte", back=f"/console/users/{user_id}",
                   lines=[f"{found.email} pourra de nouveau se connecter avec son mot de passe, rôle "
                          f"{ROLE_LABELS.get(found.role, found.role)}."])


@router.post("/{user_id}/enable")
def enable(request: Request, session: DbSession, user: CurrentUser, user_id: int) -> Response:
    return _set_active(request, session, user, user_id, active=True)


def _set_active(request: Request, session: DbSession, user: ConsoleUser, user_id: int, *, active: bool) -> Response:
    found = _account(session, user_id)
    try:
        accounts.set_active(session, email=found.email, active=active, by=user.email)
    except CaisseError as error:
        session.rollback()
        return render(request, "error.html", status_code=error.status_code, title="Opération impossible", message=french(error))
    session.commit()
    done = "réactivé" if active else "désactivé ; ses sessions ouvertes sont fermées"
    return redirect(f"/console/users/{user_id}", flash=f"Compte {found.email} {done}.")


@router.get("/{user_id}/reset")
def reset_form(request: Request, session: DbSession, user_id: int) -> Response:
    found = _account(session, user_id)
    return confirm(request, title=f"Réinitialiser le mot de passe de {found.email}", final=True, danger=True,
                   action=f"/console/users/{user_id}/reset", button="Réinitialiser le mot de passe",
                   back=f"/console/users/{user_id}", hidden={"stamp": accounts.password_stamp(found)},
                   lines=[f"L'ancien mot de passe de {found.email} cessera de fonctionner et ses sessions ouvertes seront fermées.",
                          "Un mot de passe provisoire s'affichera une seule fois : transmettez-le à la personne,"
                          " qui le changera à sa connexion (Mon mot de passe)."])


@router.post("/{user_id}/reset")
def reset(request: Request, session: DbSession, user: CurrentUser, user_id: int, stamp: Text = "") -> Response:
    found = _account(session, user_id)
    try:
        password = accounts.reset_password(session, email=found.email, by=user.email, stamp=stamp)
    except CaisseError as error:
        session.rollback()
        return render(request, "error.html", status_code=error.status_code, title="Opération impossible", message=french(error))
    session.commit()
    return render(request, "users/password.html", title="Mot de passe réinitialisé", account=found, password=password,
                  created=False)


@own_router.get("/password")
def own_password_form(request: Request, user: CurrentUser) -> Response:
    return render(request, "users/own_password.html", title="Mon mot de passe", error=None)


@own_router.post("/password")
def own_password(request: Request, session: DbSession, user: CurrentUser, current: Text = "", new: Text = "",
                 again: Text = "") -> Response:
    try:
        if new != again:
            raise CaisseError("passwords_differ", "the two new passwords differ")
        accounts.change_password(session, email=user.email, current=current, new=new)
    except CaisseError as error:
        session.rollback()
        return render(request, "users/own_password.html", status_code=422, title="Mon mot de passe", error=french(error))
    session.commit()
    return redirect("/console", flash="Mot de passe changé.")


def _account(session: DbSession, user_id: int) -> ConsoleUser:
    return get_or_not_found(session, ConsoleUser, user_id, code="user_not_found")
