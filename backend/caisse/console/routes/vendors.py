"""Vendors: accreditation status and dates, kind, market, neighbourhood, IBAN, terminals."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from caisse import admin, audit, directory
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.messages import french
from caisse.console.templating import redirect, render
from caisse.errors import CaisseError, InvalidInput

router = APIRouter(prefix="/vendors", dependencies=[Depends(require_page("vendors"))])
Text = Annotated[str, Form()]
_AUDITED = {"name", "kind", "zone", "market", "iban", "convention_status", "convention_start", "convention_end"}


@router.get("")
def vendors(request: Request, session: DbSession, q: str = "") -> Response:
    return render(request, "vendors/list.html", title="Commerçants", rows=directory.search_vendors(session, query=q), q=q)


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
        vendor = admin.create_vendor(session, **_fields(form))
    except CaisseError as error:
        return render(request, "vendors/new.html", status_code=error.status_code, title="Conventionner un commerçant",
                      form=form, error=french(error))
    audit.record(session, actor=user.email, action="vendor.create", subject=f"vendor:{vendor.id}",
                 detail=vendor.model_dump(include=_AUDITED))
    session.commit()
    return redirect(f"/console/vendors/{vendor.id}", flash=f"Commerçant « {vendor.name} » enregistré.")


@router.get("/{vendor_id}")
def vendor(request: Request, session: DbSession, vendor_id: int) -> Response:
    return _detail(request, session, vendor_id)


@router.post("/{vendor_id}")
def edit(request: Request, session: DbSession, user: CurrentUser, vendor_id: int, name: Text = "", kind: Text = "",
         zone: Text = "", market: Text = "", iban: Text = "", convention_status: Text = "", convention_start: Text = "",
         convention_end: Text = "") -> Response:
    form = {"name": name, "kind": kind, "zone": zone, "market": market, "iban": iban, "convention_status": convention_status,
            "convention_start": convention_start, "convention_end": convention_end}
    try:
        before = admin.get_vendor(session, vendor_id=vendor_id).model_dump(include=_AUDITED)
        after = admin.update_vendor(session, vendor_id=vendor_id, **_fields(form)).model_dump(include=_AUDITED)
    except CaisseError as error:
        session.rollback()
        return _detail(request, session, vendor_id, status_code=error.status_code, error=french(error), form=form)
    changed = {key: {"before": before[key], "after": after[key]} for key in sorted(_AUDITED) if before[key] != after[key]}
    audit.record(session, actor=user.email, action="vendor.edit", subject=f"vendor:{vendor_id}", detail=changed)
    session.commit()
    return redirect(f"/console/vendors/{vendor_id}", flash="Commerçant modifié.")


def _detail(request: Request, session: DbSession, vendor_id: int, *, status_code: int = 200, **extra: Any) -> Response:
    vendor = admin.get_vendor(session, vendor_id=vendor_id)
    form = {key: ("" if value is None else str(value)) for key, value in vendor.model_dump(include=_AUDITED).items()}
    return render(request, "vendors/detail.html", status_code=status_code, title=vendor.name, vendor=vendor,
                  payable_cents=admin.vendor_payable_cents(session, vendor_id=vendor_id),
                  terminals=directory.terminal_rows(session, vendor_id=vendor_id),
                  history=audit.events(session, subjects=[f"vendor:{vendor_id}"], limit=20),
                  **{"error": None, "form": form, **extra})


def _fields(form: dict[str, str]) -> dict[str, Any]:
    """The service's keyword arguments from the form's text (empty optional fields become None)."""
    return {"name": form["name"], "kind": form["kind"], "zone": form["zone"], "market": form["market"].strip() or None,
            "iban": form["iban"].strip() or None, "convention_status": form["convention_status"],
            "convention_start": _date(form["convention_start"]), "convention_end": _date(form["convention_end"])}


def _date(text: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput("invalid_date", "a date is YYYY-MM-DD") from None
