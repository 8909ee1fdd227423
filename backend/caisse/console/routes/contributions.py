"""Contributions by choice (caisse.fund.contributions): each household's chosen contribution beside the
caisse's indicative scale, what is due and received, who is behind; and the month's claim to the
State for its matching (caisse.fund.matching_claim), as CSV and PDF; a household's means and chosen
contribution recorded from a month on, one by one or pasted from a spreadsheet (caisse.members.means, which
writes the audit entry)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import Response
from sqlmodel import Session

from caisse.config import Settings
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.templating import SECURITY_HEADERS, redirect, render
from caisse.errors import CaisseError, InvalidInput, french
from caisse.fund import contributions, matching_claim
from caisse.members import means
from caisse.money import parse_euros
from caisse.months import Month

router = APIRouter(prefix="/contributions", dependencies=[Depends(require_page("contributions"))])


Text = Annotated[str, Form()]


@router.get("")
def contributions_page(request: Request, session: DbSession, mois: str = "", retard: str = "") -> Response:
    return _page(request, session, month=mois, only_behind=bool(retard))


def _page(request: Request, session: Session, *, month: str, only_behind: bool = False, status_code: int = 200,
          form: dict[str, str] | None = None, form_error: str | None = None, import_errors: list[str] | None = None) -> Response:
    settings: Settings = request.app.state.settings
    context = {"title": "Cotisations", "settings": settings, "only_behind": only_behind, "form": form or {},
               "form_error": form_error, "import_errors": import_errors or []}
    try:
        month = str(Month.parse(month or str(means.current_month(settings))))
    except InvalidInput as error:
        return render(request, "contributions/index.html", error=french(error), month=month, rows=[], claim=None, totals=None,
                      **context)
    rows = contributions.dues(session, month=month, settings=settings)
    totals = {"due": sum(r.due_cents for r in rows), "received": sum(r.received_cents for r in rows),
              "behind": sum(r.behind_cents for r in rows), "households_behind": sum(1 for r in rows if r.behind_cents)}
    rows.sort(key=lambda r: (-r.behind_cents, r.household_id))
    if only_behind:
        rows = [r for r in rows if r.behind_cents]
    claim = matching_claim.claim(session, month=month, settings=settings)
    return render(request, "contributions/index.html", status_code=status_code, error=None, month=month, rows=rows,
                  claim=claim, totals=totals, **context)


@router.post("/means")
def record_means(request: Request, session: DbSession, user: CurrentUser, foyer: Text = "", mois: Text = "", taille: Text = "",
                 quartile: Text = "", revenu: Text = "", cotisation: Text = "") -> Response:
    """A household's size, means and chosen contribution from a month on."""
    form = {"foyer": foyer, "mois": mois, "taille": taille, "quartile": quartile, "revenu": revenu, "cotisation": cotisation}
    try:
        row = means.record_means(
            session, household_id=_whole(foyer, "household_not_found"), effective_month=mois, size=_whole(taille, "invalid_size"),
            income_quartile=_whole(quartile, "invalid_quartile") if quartile else None,
            monthly_income_cents=parse_euros(revenu, zero_allowed=True) if revenu else None,
            chosen_contribution_cents=parse_euros(cotisation, zero_allowed=True) if cotisation else None,
            by=user.email, settings=request.app.state.settings)
    except CaisseError as error:
        session.rollback()
        return _page(request, session, month="", status_code=error.status_code, form=form, form_error=french(error))
    session.commit()
    return redirect("/console/contributions#moyens",
                    flash=f"Moyens du foyer {row.household_id} enregistrés à partir de {row.effective_month}.")


@router.post("/means/import")
def import_means(request: Request, session: DbSession, user: CurrentUser, content: Text = "", ignorer: Text = "") -> Response:
    """Means pasted from a spreadsheet; nothing is recorded from a paste with a bad line unless asked."""
    try:
        report = means.import_means(session, data=content, by=user.email, settings=request.app.state.settings,
                                    skip_errors=bool(ignorer))
    except CaisseError as error:
        session.rollback()
        return _page(request, session, month="", status_code=error.status_code, form_error=french(error))
    if report.errors and not ignorer:
        session.rollback()
        return _page(request, session, month="", status_code=422, import_errors=report.errors.lines(),
                     form_error="Rien n'est enregistré : corrigez les lignes ci-dessous, ou cochez « Enregistrer les bonnes lignes ».")
    session.commit()
    return redirect("/console/contributions#moyens", flash=f"{report.recorded} foyer(s) enregistré(s)."
                    + (f" {len(report.errors.errors)} ligne(s) écartée(s)." if report.errors else ""))


def _whole(text: str, code: str) -> int:
    if not text.strip().isdigit():
        raise InvalidInput(code, f"{text!r} is not a whole number")
    return int(text.strip())


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
