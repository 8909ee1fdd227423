"""Settlements: prepare a day's run, approve it (the treasurer, when a second person is
required), then download the SEPA file, the vendor statements and the summary (caisse.settlement.runs)."""

from __future__ import annotations

import mimetypes
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import select
from sqlmodel import Session, col

from caisse.config import Settings, sepa_text
from caisse.console.deps import CurrentUser, DbSession, require_page, require_roles
from caisse.console.templating import redirect, render
from caisse.errors import CaisseError, InvalidInput, NotFound, french
from caisse.models import ConsoleUser, Role, SettlementLine, SettlementRun, SettlementStatus, Vendor
from caisse.reports import directory
from caisse.settlement import bank_returns as bank
from caisse.settlement import runs as settlement
from caisse.staff import accounts

router = APIRouter(prefix="/settlements", dependencies=[Depends(require_page("settlements"))])
Approver = Annotated[ConsoleUser, Depends(require_roles(Role.TREASURER, Role.ADMIN))]
RUNS_SHOWN = 60


@router.get("")
def runs(request: Request, session: DbSession, q: str = "", status: str = "", page: int = 1) -> Response:
    return _runs_page(request, session, q=q, status=status, page=page)


def _runs_page(request: Request, session: Session, *, error: CaisseError | None = None, q: str = "", status: str = "",
               page: int = 1) -> Response:
    settings: Settings = request.app.state.settings
    status = status if status in SettlementStatus.__members__.values() else ""
    found = directory.runs_page(session, query=q, status=status or None, page=page, per_page=RUNS_SHOWN)
    listed = found.rows
    totals = {run.id: settlement.describe(session, run_id=run.id) for run in listed if run.id is not None}
    yesterday = datetime.now(ZoneInfo(settings.settlement_timezone)).date() - timedelta(days=1)
    return render(request, "settlements/list.html", title="Règlements", runs=listed, totals=totals, yesterday=yesterday,
                  found=found, q=q, status=status,
                  requires_approval=settings.settlement_requires_approval, error=french(error) if error else None,
                  status_code=error.status_code if error else 200)


@router.post("")
def prepare(request: Request, session: DbSession, user: CurrentUser, run_date: Annotated[str, Form()] = "") -> Response:
    settings: Settings = request.app.state.settings
    try:
        day = _past_day(run_date, timezone=settings.settlement_timezone)
        run = settlement.prepare_run(session, run_date=day, settings=settings, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _runs_page(request, session, error=error)
    assert run.id is not None
    session.commit()
    if settings.settlement_requires_approval:
        return redirect(f"/console/settlements/{run.id}", flash=f"Règlement du {day:%d/%m/%Y} préparé : il attend l'approbation de la trésorerie.")
    return _approve_and_export(session, run_id=run.id, by=accounts.AUTOMATIC, actor=user.email, settings=settings)


@router.get("/{run_id}")
def run_page(request: Request, session: DbSession, user: CurrentUser, run_id: int) -> Response:
    return _run_page(request, session, user, run_id=run_id)


def _run_page(request: Request, session: Session, user: ConsoleUser, *, run_id: int, error: CaisseError | None = None) -> Response:
    settings: Settings = request.app.state.settings
    run = settlement.get_run(session, run_id=run_id)
    lines = session.execute(
        select(SettlementLine, col(Vendor.name)).join(Vendor, col(Vendor.id) == col(SettlementLine.vendor_id))
        .where(col(SettlementLine.run_id) == run_id).order_by(col(SettlementLine.status).desc(), col(Vendor.name))
    ).all()
    can_approve = user.role in (Role.TREASURER, Role.ADMIN) and not (
        settings.settlement_requires_approval and user.email == run.prepared_by)
    return render(request, "settlements/run.html", title=f"Règlement du {run.run_date:%d/%m/%Y}", run=run, lines=lines,
                  summary=settlement.describe(session, run_id=run_id), files=_files(run), can_approve=can_approve,
                  payouts=settlement.run_payouts(session, run_id=run_id), sepa_text=sepa_text,
                  returns=bank.returns(session, run_id=run_id),
                  error=french(error) if error else None, status_code=error.status_code if error else 200)


@router.post("/{run_id}/approve")
def approve(request: Request, session: DbSession, approver: Approver, run_id: int) -> Response:
    settings: Settings = request.app.state.settings
    try:
        settlement.approve_run(session, run_id=run_id, by=approver.email, settings=settings)
    except CaisseError as error:
        session.rollback()
        return _run_page(request, session, approver, run_id=run_id, error=error)
    session.commit()
    return _export(session, run_id=run_id, actor=approver.email, settings=settings)


@router.post("/{run_id}/export")
def export(request: Request, session: DbSession, approver: Approver, run_id: int) -> Response:
    """Writes the files again after a failed export (the run stays approved until it succeeds)."""
    return _export(session, run_id=run_id, actor=approver.email, settings=request.app.state.settings)


@router.get("/{run_id}/files/{name}")
def download(session: DbSession, run_id: int, name: str) -> Response:
    files = _files(settlement.get_run(session, run_id=run_id))
    path = next((file for file in files if file.name == name), None)  # only a listed file: no path tricks
    if path is None:
        raise NotFound("settlement_file_not_found", f"run {run_id} has no file {name!r}")
    media_type = "application/xml" if path.suffix == ".xml" else mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, filename=path.name)


def _approve_and_export(session: Session, *, run_id: int, by: str, actor: str, settings: Settings) -> Response:
    settlement.approve_run(session, run_id=run_id, by=by, settings=settings)
    session.commit()
    return _export(session, run_id=run_id, actor=actor, settings=settings)


def _export(session: Session, *, run_id: int, actor: str, settings: Settings) -> Response:
    try:
        settlement.export_run(session, run_id=run_id, settings=settings, by=actor)
    except (CaisseError, OSError) as error:
        session.rollback()
        reason = french(error) if isinstance(error, CaisseError) else f"écriture des fichiers impossible ({error.strerror})"
        return redirect(f"/console/settlements/{run_id}", flash=f"Règlement approuvé mais fichiers non générés : {reason}.")
    session.commit()
    return redirect(f"/console/settlements/{run_id}", flash="Règlement approuvé : le fichier de virements SEPA et les relevés sont prêts.")


def _past_day(text: str, *, timezone: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("invalid_run_date", f"not a date: {text!r}") from None
    if day >= datetime.now(ZoneInfo(timezone)).date():
        raise InvalidInput("day_not_over", f"{day} is not over yet: settle a past day")
    return day


def _files(run: SettlementRun) -> list[Path]:
    if run.status != SettlementStatus.EXPORTED or not run.output_dir or not Path(run.output_dir).is_dir():
        return []
    return sorted((path for path in Path(run.output_dir).iterdir() if path.is_file()), key=lambda p: (p.suffix != ".xml", p.name))
