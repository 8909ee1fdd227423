"""Households: search, enrol, edit, their allowance and contributions (recorded here by hand,
or imported with `caisse fund import`), cards, payments."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from caisse import admin, audit, db, directory, fund
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.messages import french
from caisse.console.templating import redirect, render
from caisse.errors import CaisseError, InvalidInput, NotFound
from caisse.money import euros
from caisse.models import BlockReason, Card, CardType

router = APIRouter(prefix="/households", dependencies=[Depends(require_page("households"))])
Text = Annotated[str, Form()]


@router.get("")
def households(request: Request, session: DbSession, q: str = "") -> Response:
    rows = directory.search_households(session, query=q, limit=100)
    return render(request, "households/list.html", title="Foyers", rows=rows, q=q)


@router.get("/new")
def new_household(request: Request) -> Response:
    return render(request, "households/new.html", title="Inscrire un foyer", form={}, error=None)


@router.post("")
def enrol(request: Request, session: DbSession, user: CurrentUser, name: Text = "", members: Text = "",
          zone: Text = "") -> Response:
    form = {"name": name, "members": members, "zone": zone}
    try:
        household = admin.create_household(session, name=name, members=_members(members), zone=zone)
    except CaisseError as error:
        return render(request, "households/new.html", status_code=error.status_code, title="Inscrire un foyer",
                      form=form, error=french(error))
    audit.record(session, actor=user.email, action="household.enrol", subject=f"household:{household.id}",
                 detail={"name": household.name, "members": household.members, "zone": household.zone})
    session.commit()
    return redirect(f"/console/households/{household.id}", flash=f"Foyer « {household.name} » inscrit.")


@router.get("/{household_id}")
def household(request: Request, session: DbSession, household_id: int) -> Response:
    return _detail(request, session, household_id)


@router.post("/{household_id}")
def edit(request: Request, session: DbSession, user: CurrentUser, household_id: int, name: Text = "",
         members: Text = "", zone: Text = "") -> Response:
    try:
        before = admin.get_household(session, household_id=household_id).model_dump(include={"name", "members", "zone"})
        after = admin.update_household(session, household_id=household_id, name=name, members=_members(members), zone=zone)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, household_id, status_code=error.status_code, edit_error=french(error))
    audit.record(session, actor=user.email, action="household.edit", subject=f"household:{household_id}",
                 detail={"before": before, "after": after.model_dump(include={"name", "members", "zone"})})
    session.commit()
    return redirect(f"/console/households/{household_id}", flash="Foyer modifié.")


@router.post("/{household_id}/cards")
def issue_card(request: Request, session: DbSession, user: CurrentUser, household_id: int, uid: Text = "",
               card_type: Text = CardType.BASIC) -> Response:
    try:
        card = admin.issue_card(session, household_id=household_id, uid_hex=_uid(uid), card_type=card_type)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, household_id, status_code=error.status_code, card_error=french(error), uid=uid)
    audit.record(session, actor=user.email, action="card.issue", subject=f"card:{card.uid.hex()}",
                 detail={"household_id": household_id, "card_type": card.card_type})
    session.commit()
    return redirect(f"/console/households/{household_id}", flash=f"Carte {card.uid.hex()} remise au foyer.")


@router.post("/{household_id}/cards/{uid}/block")
def block_card(session: DbSession, user: CurrentUser, household_id: int, uid: str, reason: Text = BlockReason.LOST) -> Response:
    card = _card_of(session, household_id=household_id, uid=uid)
    admin.block_card(session, uid_hex=uid, reason=reason)
    audit.record(session, actor=user.email, action="card.block", subject=f"card:{card.uid.hex()}",
                 detail={"household_id": household_id, "reason": reason})
    session.commit()
    return redirect(f"/console/households/{household_id}",
                    flash=f"Carte {card.uid.hex()} bloquée : les terminaux la refuseront dès leur prochaine synchronisation.")


@router.post("/{household_id}/cards/{uid}/replace")
def replace_card(request: Request, session: DbSession, user: CurrentUser, household_id: int, uid: str,
                 new_uid: Text = "") -> Response:
    old = _card_of(session, household_id=household_id, uid=uid)
    try:
        new = admin.replace_card(session, uid_hex=uid, new_uid_hex=_uid(new_uid))
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, household_id, status_code=error.status_code, card_error=french(error))
    audit.record(session, actor=user.email, action="card.replace", subject=f"card:{old.uid.hex()}",
                 detail={"household_id": household_id, "new_uid": new.uid.hex()})
    session.commit()
    return redirect(f"/console/households/{household_id}",
                    flash=f"Carte {old.uid.hex()} remplacée par {new.uid.hex()} ; l'ancienne est bloquée.")


@router.post("/{household_id}/cards/{uid}/return")
def return_card(session: DbSession, user: CurrentUser, household_id: int, uid: str) -> Response:
    card = _card_of(session, household_id=household_id, uid=uid)
    admin.return_card(session, uid_hex=uid)
    audit.record(session, actor=user.email, action="card.return", subject=f"card:{card.uid.hex()}",
                 detail={"household_id": household_id})
    session.commit()
    return redirect(f"/console/households/{household_id}", flash=f"Carte {card.uid.hex()} rendue : elle peut être remise à nouveau.")


@router.post("/{household_id}/contributions")
def record_contribution(request: Request, session: DbSession, user: CurrentUser, household_id: int, month: Text = "",
                        amount: Text = "", reference: Text = "") -> Response:
    try:
        cents = fund.parse_euros(amount)
        created = fund.record_contribution(session, household_id=household_id, month=month, amount_cents=cents,
                                           settings=request.app.state.settings, reference=reference or None, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, household_id, status_code=error.status_code, contribution_error=french(error))
    session.commit()
    if not created:  # the form sent twice: its reference was recorded the first time
        return redirect(f"/console/households/{household_id}", flash="Cotisation déjà enregistrée : rien de changé.")
    return redirect(f"/console/households/{household_id}", flash=f"Cotisation de {euros(cents)} € pour {month} enregistrée.")


def _card_of(session: DbSession, *, household_id: int, uid: str) -> Card:
    """The card `uid` if it belongs to the household of the page (a form cannot act on another's)."""
    card = admin.get_card(session, uid_hex=uid)
    if card.household_id != household_id:
        raise NotFound("card_not_found", f"card {uid} is not a card of household {household_id}")
    return card


def _uid(text: str) -> str:
    """A UID as people type it (spaces, colons, capitals) in the hex the services take."""
    return text.replace(" ", "").replace(":", "").lower()


def _detail(request: Request, session: DbSession, household_id: int, *, status_code: int = 200, **extra: Any) -> Response:
    settings = request.app.state.settings
    household = admin.get_household(session, household_id=household_id)
    cards = admin.household_cards(session, household_id=household_id)
    subjects = [f"household:{household_id}", *(f"card:{card.uid.hex()}" for card in cards)]
    return render(
        request, "households/detail.html", status_code=status_code, title=household.name, household=household,
        balance_cents=admin.household_balance_cents(session, household_id=household_id),
        cards=cards,
        allowances=directory.household_allowances(session, household_id=household_id),
        contributions=directory.household_contributions(session, household_id=household_id),
        payments=directory.household_payments(session, household_id=household_id),
        history=audit.events(session, subjects=subjects, limit=20),
        this_month=datetime.now(ZoneInfo(settings.settlement_timezone)).strftime("%Y-%m"),
        minimum_contribution_cents=settings.contribution_minimum_cents,
        contribution_key=f"console-{secrets.token_hex(6)}",  # the form's reference: sent twice, recorded once
        **{"edit_error": None, "card_error": None, "contribution_error": None, "uid": "", **extra},
    )


def _members(text: str) -> int:
    count = db.parse_row_id(text.strip())  # ASCII digits within INTEGER: '²' or 20 digits are refused, not a 500
    if count is None:
        raise InvalidInput("invalid_members", "members must be a whole number")
    return count
