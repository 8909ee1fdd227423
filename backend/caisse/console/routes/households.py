"""Households: search, enrol, edit, their allowance and contributions (recorded here by hand,
or imported with `caisse fund import`), cards (issued, replaced and returned here; blocked and
unblocked on the card's page, routes/cards.py), payments."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlmodel import col

from caisse import audit, db
from caisse.cards import service as card_service
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.templating import confirm, redirect, render
from caisse.errors import CaisseError, InvalidInput, NotFound, french
from caisse.fund import service as fund
from caisse.members import households as household_service
from caisse.members import service as membership
from caisse.models import Card, CardType, SortitionVolunteer
from caisse.money import euros, parse_euros
from caisse.reports import directory

router = APIRouter(prefix="/households", dependencies=[Depends(require_page("households"))])
Text = Annotated[str, Form()]
PER_PAGE = 50


@router.get("")
def households(request: Request, session: DbSession, q: str = "", page: int = 1) -> Response:
    found = directory.households_page(session, query=q, page=page, per_page=PER_PAGE)
    return render(request, "households/list.html", title="Foyers", found=found, rows=found.rows, q=q)


@router.get("/new")
def new_household(request: Request) -> Response:
    return render(request, "households/new.html", title="Inscrire un foyer", form={}, error=None)


@router.post("")
def enrol(request: Request, session: DbSession, user: CurrentUser, name: Text = "", members: Text = "",
          zone: Text = "") -> Response:
    form = {"name": name, "members": members, "zone": zone}
    try:
        household = household_service.create_household(session, name=name, members=_members(members), zone=zone)
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
        before = household_service.get_household(session, household_id=household_id).model_dump(include={"name", "members", "zone"})
        after = household_service.update_household(session, household_id=household_id, name=name, members=_members(members), zone=zone)
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
        card = card_service.issue_card(session, household_id=household_id, uid_hex=_uid(uid), card_type=card_type, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, household_id, status_code=error.status_code, card_error=french(error), uid=uid)
    session.commit()
    return redirect(f"/console/households/{household_id}", flash=f"Carte {card.uid.hex()} remise au foyer.")


@router.get("/{household_id}/cards/{uid}/replace")
def replace_form(request: Request, session: DbSession, household_id: int, uid: str, new_uid: str = "") -> Response:
    """What replacing does, before it is done: the old card is blocked for good, the new one takes its place."""
    old = _card_of(session, household_id=household_id, uid=uid)
    try:
        typed = card_service.parse_uid(_uid(new_uid)).hex()
    except CaisseError as error:
        return _detail(request, session, household_id, status_code=error.status_code, card_error=french(error))
    return confirm(request, title=f"Remplacer la carte {old.uid.hex()}",
                   lines=[f"La carte {old.uid.hex()} sera bloquée pour toujours : chaque terminal la refusera dès sa"
                          " prochaine synchronisation.",
                          f"La carte {typed} la remplace pour ce foyer, avec le même solde."],
                   final=True, danger=True, action=f"/console/households/{household_id}/cards/{old.uid.hex()}/replace",
                   hidden={"new_uid": typed}, button="Remplacer la carte", back=f"/console/households/{household_id}")


@router.post("/{household_id}/cards/{uid}/replace")
def replace_card(request: Request, session: DbSession, user: CurrentUser, household_id: int, uid: str,
                 new_uid: Text = "") -> Response:
    old = _card_of(session, household_id=household_id, uid=uid)
    try:
        new = card_service.replace_card(session, uid_hex=uid, new_uid_hex=_uid(new_uid), by=user.email)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, household_id, status_code=error.status_code, card_error=french(error))
    session.commit()
    return redirect(f"/console/households/{household_id}",
                    flash=f"Carte {old.uid.hex()} remplacée par {new.uid.hex()} ; l'ancienne est bloquée.")


@router.get("/{household_id}/cards/{uid}/return")
def return_form(request: Request, session: DbSession, household_id: int, uid: str) -> Response:
    card = _card_of(session, household_id=household_id, uid=uid)
    return confirm(request, title=f"Carte {card.uid.hex()} rendue",
                   lines=[f"La carte {card.uid.hex()} quitte le foyer : chaque terminal la refusera dès sa prochaine"
                          " synchronisation.", "Elle pourra être remise plus tard, à ce foyer ou à un autre, comme une carte neuve."],
                   final=True, action=f"/console/households/{household_id}/cards/{card.uid.hex()}/return",
                   button="Enregistrer la carte rendue", back=f"/console/households/{household_id}")


@router.post("/{household_id}/cards/{uid}/return")
def return_card(session: DbSession, user: CurrentUser, household_id: int, uid: str) -> Response:
    card = _card_of(session, household_id=household_id, uid=uid)
    card_service.return_card(session, uid_hex=uid, by=user.email)
    session.commit()
    return redirect(f"/console/households/{household_id}", flash=f"Carte {card.uid.hex()} rendue : elle peut être remise à nouveau.")


@router.post("/{household_id}/contributions")
def record_contribution(request: Request, session: DbSession, user: CurrentUser, household_id: int, month: Text = "",
                        amount: Text = "", reference: Text = "") -> Response:
    try:
        cents = parse_euros(amount)
        created = fund.record_contribution(session, household_id=household_id, month=month, amount_cents=cents,
                                           settings=request.app.state.settings, reference=reference or None, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, household_id, status_code=error.status_code, contribution_error=french(error))
    session.commit()
    if not created:  # the form sent twice: its reference was recorded the first time
        return redirect(f"/console/households/{household_id}", flash="Cotisation déjà enregistrée : rien de changé.")
    return redirect(f"/console/households/{household_id}", flash=f"Cotisation de {euros(cents)} € pour {month} enregistrée.")


@router.post("/{household_id}/leave")
def leave(request: Request, session: DbSession, user: CurrentUser, household_id: int, end_date: Text = "",
          confirm: Text = "") -> Response:
    """The household leaves (caisse.members.service.leave_household): asked to confirm, since it cannot be undone."""
    try:
        if confirm != "oui":
            raise InvalidInput("confirmation_required", "cochez la case de confirmation : un départ ne s'annule pas")
        day = _date(end_date)
        household = membership.leave_household(session, household_id=household_id, end_date=day, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, household_id, status_code=error.status_code, leave_error=french(error))
    session.commit()
    blocked = "ses cartes sont bloquées" if household.leaving_blocked_at else "ses cartes seront bloquées ce jour-là"
    return redirect(f"/console/households/{household_id}", flash=f"Départ enregistré au {day:%d/%m/%Y} : {blocked}.")


@router.get("/{household_id}/personal-data.{form}")
def personal_data(session: DbSession, user: CurrentUser, household_id: int, form: str) -> Response:
    """Everything held about the household's people (right of access), audited as it is read."""
    if form not in ("json", "csv"):
        raise NotFound("not_found", "json or csv")
    data = membership.personal_data(session, household_id=household_id, by=user.email)
    session.commit()
    content = membership.personal_data_json(data) if form == "json" else membership.personal_data_csv(data)
    media = "application/json" if form == "json" else "text/csv; charset=utf-8"
    return Response(content, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="donnees-foyer-{household_id}.{form}"'})


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput("invalid_end_date", "indiquez la date de départ (JJ/MM/AAAA)") from None


def _card_of(session: DbSession, *, household_id: int, uid: str) -> Card:
    """The card `uid` if it belongs to the household of the page (a form cannot act on another's)."""
    card = card_service.get_card(session, uid_hex=uid)
    if card.household_id != household_id:
        raise NotFound("card_not_found", f"card {uid} is not a card of household {household_id}")
    return card


def _uid(text: str) -> str:
    """A UID as people type it (spaces, colons, capitals) in the hex the services take."""
    return text.replace(" ", "").replace(":", "").lower()


def _detail(request: Request, session: DbSession, household_id: int, *, status_code: int = 200, **extra: Any) -> Response:
    settings = request.app.state.settings
    household = household_service.get_household(session, household_id=household_id)
    cards = household_service.household_cards(session, household_id=household_id)
    subjects = [f"household:{household_id}", *(f"card:{card.uid.hex()}" for card in cards)]
    return render(
        request, "households/detail.html", status_code=status_code, title=household.name, household=household,
        balance_cents=household_service.household_balance_cents(session, household_id=household_id),
        cards=cards,
        allowances=directory.household_allowances(session, household_id=household_id),
        contributions=directory.household_contributions(session, household_id=household_id),
        payments=directory.household_payments(session, household_id=household_id),
        history=audit.events(session, subjects=subjects, limit=20),
        volunteer=session.execute(select(SortitionVolunteer).where(col(SortitionVolunteer.household_id) == household_id)).scalars().first(),
        today=membership.today_in_paris().isoformat(),
        this_month=datetime.now(ZoneInfo(settings.settlement_timezone)).strftime("%Y-%m"),
        minimum_contribution_cents=settings.contribution_minimum_cents,
        contribution_key=f"console-{secrets.token_hex(6)}",  # the form's reference: sent twice, recorded once
        **{"edit_error": None, "card_error": None, "contribution_error": None, "leave_error": None, "uid": "", **extra},
    )


def _members(text: str) -> int:
    count = db.parse_row_id(text.strip())  # ASCII digits within INTEGER: '²' or 20 digits are refused, not a 500
    if count is None:
        raise InvalidInput("invalid_members", "members must be a whole number")
    return count
