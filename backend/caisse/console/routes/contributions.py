"""Contributions by choice (caisse.contributions): each household's chosen contribution beside the
caisse's indicative scale, what is due and received, who is behind; and the month's claim to the
State for its matching (caisse.matching_claim), as CSV and PDF. Reads only: recording means goes
through caisse.means (command line, and the acceptance of new members)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from caisse import contributions, matching_claim, means
from caisse.allowances import Month
from caisse.config import Settings
from caisse.console.deps import DbSession, require_page
from caisse.console.messages import french
from caisse.console.templating import SECURITY_HEADERS, render
from caisse.errors import InvalidInput

router = APIRouter(prefix="/contributions", dependencies=[Depends(require_page("contributions"))])


@router.get("")
def contributions_page(request: Request, session: DbSession, mois: str = "", retard: str = "") -> Response:
    settings: Settings = request.app.state.settings
    month = mois or str(means.current_month(settings))
    try:
        month = str(Month.parse(month))
    except InvalidInput as error:
        return render(request, "contributions/index.html", title="Cotisations", error=french(error), month=mois, rows=[],
                      claim=None, settings=settings, only_behind=bool(retard), totals=None)
    rows = contributions.dues(session, month=month, settings=settings)
    totals = {"due": sum(r.due_cents for r in rows), "received": sum(r.received_cents for r in rows),
              "behind": sum(r.behind_cents for r in rows), "households_behind": sum(1 for r in rows if r.behind_cents)}
    rows.sort(key=lambda r: (-r.behind_cents, r.household_id))
    if retard:
        rows = [r for r in rows if r.behind_cents]
    claim = matching_claim.claim(session, month=month, settings=settings)
    return render(request, "contributions/index.html", title="Cotisations", error=None, month=month, rows=rows, claim=claim,
                  settings=settings, only_behind=bool(retard), totals=totals)


@router.get("/claim/{month}.{extension}")
def claim_file(request: Request, session: DbSession, month: str, extension: str) -> Response:
    """The month's matching claim, to download."""
    settings: Settings = request.app.state.settings
    if extension not in ("csv", "pdf"):
        raise HTTPException(status_code=404)
    result = matching_claim.claim(session, month=month, settings=settings)
    if extension == "csv":
        content, media_type = matching_claim.csv_bytes(result, caisse_name=settings.debtor_name), "text/csv; charset=utf-8"
    else:
        content, media_type = matching_claim.pdf_bytes(result, caisse_name=settings.debtor_name), "application/pdf"
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{result.stem}.{extension}"'}
    return Response(content, media_type=media_type, headers=headers)
