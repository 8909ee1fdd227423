"""Vendors: accreditation status and dates, kind, market, neighbourhood, IBAN, terminals.

A new IBAN typed in the edit form is a request: another treasurer or administrator approves it
on the vendor's page (caisse.vendors.service); the services write the audit entries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from caisse import audit
from caisse.console.deps import CurrentUser, DbSession, require_page, require_roles
from caisse.console.forms import optional_date
from caisse.console.templating import LABELS, confirm, local_today, redirect, render
from caisse.errors import CaisseError, NotFound, french
from caisse.models import ConsoleUser, Role, Vendor, VendorIbanChange
from caisse.reports import directory
from caisse.staff import accounts
from caisse.vendors import accreditation
from caisse.vendors import service as vendor_service

router = APIRouter(prefix="/vendors", dependencies=[Depends(require_page("vendors"))])
Text = Annotated[str, Form()]
IbanApprover = Annotated[ConsoleUser, Depends(require_roles(Role.TREASURER, Role.ADMIN))]
PER_PAGE = 50
_FORM = ("name", "kind", "zone", "market", "iban", "convention_status", "convention_start", "convention_end")


@router.get("")
def vendors(request: Request, session: DbSession, q: str = "", convention: str = "", page: int = 1) -> Response:
    convention = convention if convention in LABELS["convention"] else ""
    found = directory.vendors_page(session, query=q, convention=convention or None, page=page, per_page=PER_PAGE)
    return render(request, "vendors/list.html", title="Commerçants", found=found, rows=found.rows, q=q, convention=convention)


@router.get("/new")
def new_vendor(request: Request) -> Response:
    return render(request, "vendors/new.html", title="Conventionner un commerçant", form={"convention_status": "active"},
                  error=None)


@router.post("")
def create(request: Request, session: DbSession, user: CurrentUser, name: Text = "", kind: Text = "", zone: Text = "",
           market: Text = "", iban: Text = "", convention_status: Text = "active", convention_start: Text = "",
           convention_end: Text = "") -> Response:
    form = {"name": name, "kind": kind, "zone": zone, "market": market, "iban": iban, "convention_status": convention_status,
            "convention_start": convention_start, "convention_end": convention_end}
    try:
        vendor = vendor_service.create_vendor(session, **_fields(form), by=user.email)
    except CaisseError as error:
        session.rollback()
        return render(request, "vendors/new.html", status_code=error.status_code, title="Conventionner un commerçant",
                      form=form, error=french(error))
    session.commit()
    notice = vendor_service.sepa_name_notice(vendor.name)
    return redirect(f"/console/vendors/{vendor.id}", flash=f"Commerçant « {vendor.name} » enregistré." + (f" {notice}" if notice else ""))


@router.get("/{vendor_id}")
def vendor(request: Request, session: DbSession, vendor_id: int) -> Response:
    return _detail(request, session, vendor_id)


@router.post("/{vendor_id}")
def edit(request: Request, session: DbSession, user: CurrentUser, vendor_id: int, name: Text = "", kind: Text = "",
         zone: Text = "", market: Text = "", iban: Text = "") -> Response:
    """The vendor's own fields; its accreditation changes on its own page (criteria, visit, training)."""
    form = {"name": name, "kind": kind, "zone": zone, "market": market, "iban": iban}
    try:
        updated = vendor_service.update_vendor(session, vendor_id=vendor_id, name=name, kind=kind, zone=zone,
                                      market=market.strip() or None, iban=iban.strip() or None, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, vendor_id, status_code=error.status_code, error=french(error), form=form)
    session.commit()
    flash = "Commerçant modifié."
    if updated.iban_change is not None:
        flash += (f" Nouvel IBAN {updated.iban_change.iban} en attente : une autre personne de la trésorerie l'approuve"
                  " sur cette page ; les règlements préparés ensuite le paieront.")
    if notice := vendor_service.sepa_name_notice(updated.vendor.name):
        flash += f" {notice}"
    return redirect(f"/console/vendors/{vendor_id}", flash=flash)


@router.get("/{vendor_id}/iban")
def iban_form(request: Request, session: DbSession, vendor_id: int) -> Response:
    return _iban_form(request, session, vendor_id, iban="", error=None)


def _iban_form(request: Request, session: DbSession, vendor_id: int, *, iban: str, error: str | None,
               status_code: int = 200) -> Response:
    vendor = vendor_service.get_vendor(session, vendor_id=vendor_id)
    return render(request, "vendors/iban.html", status_code=status_code, title=f"Nouvel IBAN : {vendor.name}", vendor=vendor,
                  pending=vendor_service.pending_iban_change(session, vendor_id=vendor_id), iban=iban, error=error)


@router.post("/{vendor_id}/iban")
def request_iban(request: Request, session: DbSession, user: CurrentUser, vendor_id: int, iban: Text = "",
                 confirmed: Text = "") -> Response:
    """The IBAN typed is checked and shown with the current one; the request once that is confirmed."""
    vendor = vendor_service.get_vendor(session, vendor_id=vendor_id)
    try:
        change = vendor_service.request_iban_change(session, vendor_id=vendor_id, iban=iban, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _iban_form(request, session, vendor_id, iban=iban, error=french(error), status_code=error.status_code)
    if not confirmed:
        session.rollback()  # checked by the service itself, written only once confirmed
        return confirm(request, title=f"Nouvel IBAN : {vendor.name}", action=f"/console/vendors/{vendor_id}/iban",
                       button="Demander ce changement", back=f"/console/vendors/{vendor_id}",
                       hidden={"iban": change.iban, "confirmed": "1"},
                       lines=[f"IBAN actuel : {vendor.iban or 'aucun'}.", f"Nouvel IBAN demandé : {change.iban}.",
                              "Rien ne change tant qu'une autre personne de la trésorerie ou de l'administration ne l'a pas"
                              " approuvé ; les règlements préparés ensuite paieront le nouvel IBAN."])
    session.commit()
    return redirect(f"/console/vendors/{vendor_id}", flash=f"Nouvel IBAN {change.iban} demandé : une autre personne"
                                                          " de la trésorerie l'approuve sur cette page.")


@router.get("/{vendor_id}/iban/{change_id}/approve")
def approve_iban_form(request: Request, session: DbSession, approver: IbanApprover, vendor_id: int, change_id: int) -> Response:
    vendor, change = _change_of(session, vendor_id, change_id)
    if accounts.same_person(approver.email, change.requested_by):
        return _detail(request, session, vendor_id, status_code=409,
                       error=french(CaisseError("second_person_required", "")))
    return confirm(request, title=f"Approuver le nouvel IBAN de {vendor.name}", final=True,
                   action=f"/console/vendors/{vendor_id}/iban/{change_id}/approve", button="Approuver le nouvel IBAN",
                   back=f"/console/vendors/{vendor_id}",
                   lines=[f"IBAN actuel : {vendor.iban or 'aucun'}.", f"Nouvel IBAN, demandé par {change.requested_by} : {change.iban}.",
                          "Vérifiez-le avec le commerçant (un relevé d'identité bancaire à son nom) : les règlements préparés"
                          " dès maintenant lui paieront son argent sur ce compte. Un règlement déjà préparé garde l'ancien."])


@router.get("/{vendor_id}/iban/{change_id}/reject")
def reject_iban_form(request: Request, session: DbSession, vendor_id: int, change_id: int) -> Response:
    vendor, change = _change_of(session, vendor_id, change_id)
    return confirm(request, title=f"Refuser le nouvel IBAN de {vendor.name}", final=True, danger=True,
                   action=f"/console/vendors/{vendor_id}/iban/{change_id}/reject", button="Refuser le changement",
                   back=f"/console/vendors/{vendor_id}",
                   lines=[f"La demande de {change.requested_by} ({change.iban}) sera refusée ; l'IBAN reste {vendor.iban or 'absent'}.",
                          "Un autre changement pourra être demandé ensuite."])


def _change_of(session: DbSession, vendor_id: int, change_id: int) -> tuple[Vendor, VendorIbanChange]:
    """The vendor and its pending change `change_id` (a form cannot decide another vendor's)."""
    vendor = vendor_service.get_vendor(session, vendor_id=vendor_id)
    change = vendor_service.pending_iban_change(session, vendor_id=vendor_id)
    if change is None or change.id != change_id:
        raise NotFound("iban_change_not_found", f"no pending IBAN change {change_id} for vendor {vendor_id}")
    return vendor, change


@router.post("/{vendor_id}/iban/{change_id}/approve")
def approve_iban(request: Request, session: DbSession, approver: IbanApprover, vendor_id: int, change_id: int) -> Response:
    try:
        vendor_service.approve_iban_change(session, change_id=change_id, by=approver.email)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, vendor_id, status_code=error.status_code, error=french(error))
    session.commit()
    return redirect(f"/console/vendors/{vendor_id}", flash="Nouvel IBAN approuvé : les règlements préparés désormais le paient.")


@router.post("/{vendor_id}/iban/{change_id}/reject")
def reject_iban(request: Request, session: DbSession, user: CurrentUser, vendor_id: int, change_id: int) -> Response:
    try:
        vendor_service.reject_iban_change(session, change_id=change_id, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, vendor_id, status_code=error.status_code, error=french(error))
    session.commit()
    return redirect(f"/console/vendors/{vendor_id}", flash="Changement d'IBAN refusé : l'IBAN reste inchangé.")


def _detail(request: Request, session: DbSession, vendor_id: int, *, status_code: int = 200, **extra: Any) -> Response:
    vendor = vendor_service.get_vendor(session, vendor_id=vendor_id)
    form = {key: ("" if value is None else str(value)) for key, value in vendor.model_dump(include=set(_FORM)).items()}
    return render(request, "vendors/detail.html", status_code=status_code, title=vendor.name, vendor=vendor,
                  iban_change=vendor_service.pending_iban_change(session, vendor_id=vendor_id),
                  payable_cents=vendor_service.vendor_payable_cents(session, vendor_id=vendor_id),
                  terminals=directory.terminal_rows(session, vendor_id=vendor_id),
                  history=audit.events(session, subjects=[f"vendor:{vendor_id}"], limit=20),
                  accreditation_warning=accreditation.warning(vendor, today=local_today(request)),
                  **{"error": None, "form": form, **extra})


def _fields(form: dict[str, str]) -> dict[str, Any]:
    """The service's keyword arguments from the form's text (empty optional fields become None)."""
    return {"name": form["name"], "kind": form["kind"], "zone": form["zone"], "market": form["market"].strip() or None,
            "iban": form["iban"].strip() or None, "convention_status": form["convention_status"],
            "convention_start": optional_date(form["convention_start"]), "convention_end": optional_date(form["convention_end"])}
