"""Transactions: stored records with filters, and the held records waiting for a person's
decision (release or reject, caisse.ingest.review, which writes each decision to the audit log)."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlmodel import Session, col

from caisse import db
from caisse.cards import service as card_service
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.templating import redirect, render
from caisse.errors import CaisseError, InvalidInput, french
from caisse.ingest import review
from caisse.models import ConsoleUser, Vendor
from caisse.reports import records

router = APIRouter(prefix="/transactions", dependencies=[Depends(require_page("transactions"))])
PAGE_SIZE = 50


@router.get("")
def transactions(
    request: Request, session: DbSession, du: str = "", au: str = "", vendor: str = "", card: str = "", status: str = "",
    page: int = 0,
) -> Response:
    form = {"du": du, "au": au, "vendor": vendor, "card": card, "status": status}
    error, rows = None, []
    try:
        where = _filter(form)
    except InvalidInput as problem:
        error = french(problem)
    else:
        settings = request.app.state.settings
        rows = records.search(session, where=where, timezone=settings.settlement_timezone, page=max(page, 0), page_size=PAGE_SIZE)
    return _page(request, session, form=form, rows=rows, page=max(page, 0), error=error)


@router.post("/{record_id}/release")
def release(session: DbSession, user: CurrentUser, record_id: int) -> Response:
    return _decide(session, user, record_id=record_id, decision=review.Decision.RELEASE)


@router.post("/{record_id}/reject")
def reject(session: DbSession, user: CurrentUser, record_id: int) -> Response:
    return _decide(session, user, record_id=record_id, decision=review.Decision.REJECT)


def _decide(session: Session, user: ConsoleUser, *, record_id: int, decision: review.Decision) -> Response:
    decide = review.release if decision == review.Decision.RELEASE else review.reject
    try:
        record = decide(session, record_id=record_id, by=user.email)  # audited by the service
    except CaisseError as error:
        session.rollback()
        return redirect("/console/transactions", flash=french(error))
    session.commit()
    done = ("libéré : le commerçant sera payé au prochain règlement" if decision == review.Decision.RELEASE
            else "rejeté : il ne sera jamais payé et le foyer est remboursé")
    return redirect("/console/transactions", flash=f"Paiement n° {record.seq} du terminal {record.terminal_id} {done}.")


def _filter(form: dict[str, str]) -> records.RecordFilter:
    try:
        first = date.fromisoformat(form["du"]) if form["du"] else None
        last = date.fromisoformat(form["au"]) if form["au"] else None
    except ValueError:
        raise InvalidInput("invalid_form", "dates are YYYY-MM-DD") from None
    if form["status"] and form["status"] not in records.STATUS_FILTERS:
        raise InvalidInput("invalid_form", "unknown status")
    vendor_id = db.parse_row_id(form["vendor"]) if form["vendor"] else None
    if form["vendor"] and vendor_id is None:
        raise InvalidInput("invalid_form", "vendor is a number")
    card = card_service.parse_uid(form["card"].replace(" ", "").replace(":", "")) if form["card"] else None
    return records.RecordFilter(first_day=first, last_day=last, vendor_id=vendor_id,
                                card_uid=card, status=form["status"] or None)


def _page(request: Request, session: Session, *, form: dict[str, str], rows: list[records.RecordRow], page: int,
          error: str | None) -> Response:
    timezone = request.app.state.settings.settlement_timezone
    held = records.search(session, where=records.RecordFilter(status="held"), timezone=timezone, page_size=records.MAX_PAGE)
    vendors = session.execute(select(col(Vendor.id), col(Vendor.name)).order_by(col(Vendor.name))).all()
    return render(request, "transactions/list.html", title="Transactions", form=form, rows=rows, held=held, vendors=vendors,
                  statuses=records.STATUS_FILTERS, page=page, more=len(rows) == PAGE_SIZE, error=error,
                  page_query=lambda number: urlencode({**form, "page": number}))
