"""A vendor's accreditation (criteria, visit, training, dates, status) and the caisse's criteria.

A change is typed, then shown as what will change, then confirmed: the confirmation posts the
same values again, and the service (caisse.vendors.accreditation) checks everything a second time and
writes the audit entry. Coordinators and administrators change; the treasury reads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from caisse import audit
from caisse.console.deps import STAFF, DbSession, require_page, require_roles
from caisse.console.forms import optional_date
from caisse.console.templating import local_today, redirect, render
from caisse.errors import CaisseError, InvalidInput, french
from caisse.models import ConsoleUser, Vendor
from caisse.vendors import accreditation
from caisse.vendors import service as vendor_service

router = APIRouter(dependencies=[Depends(require_page("vendors"))])
Staff = Annotated[ConsoleUser, Depends(require_roles(*STAFF))]
Text = Annotated[str, Form()]
Criteria = Annotated[list[str], Form()]
_FIELDS = ("status", "starts_on", "ends_on", "visited_on", "visited_by", "trained_on")


@router.get("/vendors/{vendor_id}/accreditation")
def accreditation_page(request: Request, session: DbSession, vendor_id: int) -> Response:
    return _form(request, session, vendor_id)


@router.post("/vendors/{vendor_id}/accreditation/preview")
def preview(request: Request, session: DbSession, _user: Staff, vendor_id: int, status: Text = "", starts_on: Text = "",
            ends_on: Text = "", visited_on: Text = "", visited_by: Text = "", trained_on: Text = "",
            criteria: Criteria = []) -> Response:  # noqa: B006 (FastAPI copies the default)
    form = {"status": status, "starts_on": starts_on, "ends_on": ends_on, "visited_on": visited_on,
            "visited_by": visited_by, "trained_on": trained_on}
    try:
        wanted = _wanted(form, criteria)
        changes = accreditation.preview(session, vendor_id=vendor_id, wanted=wanted)
    except CaisseError as error:
        session.rollback()
        return _form(request, session, vendor_id, status_code=error.status_code, error=french(error), form=form,
                     ticked=_ids(criteria, strict=False))
    vendor = vendor_service.get_vendor(session, vendor_id=vendor_id)
    seen = accreditation.fingerprint(accreditation.current(session, vendor_id=vendor_id))
    return render(request, "vendors/accreditation_confirm.html", title=f"Conventionnement · {vendor.name}", vendor=vendor,
                  changes=changes, form=form, ticked=sorted(wanted.criteria), seen=seen,
                  stops=_stops_payments(request, vendor, wanted))


@router.post("/vendors/{vendor_id}/accreditation")
def confirm(request: Request, session: DbSession, user: Staff, vendor_id: int, status: Text = "", starts_on: Text = "",
            ends_on: Text = "", visited_on: Text = "", visited_by: Text = "", trained_on: Text = "",
            criteria: Criteria = [], seen: Text = "") -> Response:  # noqa: B006
    form = {"status": status, "starts_on": starts_on, "ends_on": ends_on, "visited_on": visited_on,
            "visited_by": visited_by, "trained_on": trained_on}
    try:
        accreditation.update(session, vendor_id=vendor_id, wanted=_wanted(form, criteria), by=user.email, seen=seen)
    except CaisseError as error:
        session.rollback()
        return _form(request, session, vendor_id, status_code=error.status_code, error=french(error), form=form,
                     ticked=_ids(criteria, strict=False))
    session.commit()
    return redirect(f"/console/vendors/{vendor_id}/accreditation",
                    flash="Conventionnement enregistré. Les terminaux du commerce l'apprennent à leur prochaine synchronisation.")


@router.get("/accreditation/criteria")
def criteria_page(request: Request, session: DbSession) -> Response:
    return _criteria(request, session)


@router.post("/accreditation/criteria")
def add_criterion(request: Request, session: DbSession, user: Staff, label: Text = "") -> Response:
    try:
        accreditation.add_criterion(session, label=label, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _criteria(request, session, status_code=error.status_code, error=french(error), label=label)
    session.commit()
    return redirect("/console/accreditation/criteria", flash="Critère ajouté : il est demandé à chaque commerce conventionné désormais.")


@router.post("/accreditation/criteria/{criterion_id}/retire")
def retire_criterion(request: Request, session: DbSession, user: Staff, criterion_id: int) -> Response:
    try:
        accreditation.retire_criterion(session, criterion_id=criterion_id, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _criteria(request, session, status_code=error.status_code, error=french(error))
    session.commit()
    return redirect("/console/accreditation/criteria", flash="Critère retiré : il n'est plus demandé.")


def _form(request: Request, session: DbSession, vendor_id: int, *, status_code: int = 200, form: dict[str, str] | None = None,
          ticked: set[int] | None = None, error: str | None = None) -> Response:
    vendor = vendor_service.get_vendor(session, vendor_id=vendor_id)
    now = accreditation.current(session, vendor_id=vendor_id)
    if form is None:
        form = {field: "" if getattr(now, field) is None else str(getattr(now, field)) for field in _FIELDS}
    shown = [c for c in accreditation.criteria(session, include_retired=True) if not c.retired or c.id in now.criteria]
    return render(request, "vendors/accreditation.html", status_code=status_code, title=f"Conventionnement · {vendor.name}",
                  vendor=vendor, form=form, criteria=shown, ticked=now.criteria if ticked is None else ticked, error=error,
                  warning=accreditation.warning(vendor, today=local_today(request)),
                  states=accreditation.states(session, vendor_id=vendor_id),
                  history=audit.events(session, subjects=[f"vendor:{vendor_id}"], limit=20))


def _criteria(request: Request, session: DbSession, *, status_code: int = 200, error: str | None = None,
              label: str = "") -> Response:
    return render(request, "vendors/criteria.html", status_code=status_code, title="Critères de conventionnement",
                  criteria=accreditation.criteria(session, include_retired=True), error=error, label=label)


def _wanted(form: dict[str, str], criteria: list[str]) -> accreditation.Accreditation:
    return accreditation.Accreditation(
        status=form["status"], starts_on=optional_date(form["starts_on"]), ends_on=optional_date(form["ends_on"]),
        visited_on=optional_date(form["visited_on"]), visited_by=form["visited_by"].strip() or None,
        trained_on=optional_date(form["trained_on"]), criteria=frozenset(_ids(criteria)))


def _ids(values: list[str], *, strict: bool = True) -> set[int]:
    """The criterion ids ticked in the form; `strict`: refuse anything else (else: skip it)."""
    valid = {int(v) for v in values if v.isascii() and v.isdigit() and len(v) < 10}
    if strict and len(valid) != len(set(values)):
        raise InvalidInput("invalid_form", "criteria are numbers")
    return valid




def _stops_payments(request: Request, vendor: Vendor, wanted: accreditation.Accreditation) -> bool | None:
    """True when the change stops the vendor's payments today, False when it lets them start again,
    None when it changes neither (the confirmation page says which)."""
    today = local_today(request)
    before = accreditation.open_on(vendor.convention_status, vendor.convention_start, vendor.convention_end, today)
    after = accreditation.open_on(wanted.status, wanted.starts_on, wanted.ends_on, today)
    return None if before == after else before
