"""Sortition of new members (caisse.members.sortition): draws, volunteers, the seed published before the
draw, the draw, and the CSV export. The committee sees counts, seeds and numbers, never names.

caisse.members.sortition words its errors in French for staff, so the page shows their detail as it is."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlmodel import Session
from starlette.datastructures import FormData, UploadFile

from caisse.console.deps import CurrentUser, DbSession, require_page, require_roles
from caisse.console.templating import redirect, render
from caisse.errors import CaisseError, InvalidInput, NotFound
from caisse.members import service as members
from caisse.members import sortition
from caisse.models import ConsoleUser, Role
from caisse.spreadsheet import MAX_FILE_BYTES

router = APIRouter(prefix="/sortition", dependencies=[Depends(require_page("sortition"))])
Organiser = Annotated[ConsoleUser, Depends(require_roles(Role.ADMIN, Role.COORDINATOR))]
DEFAULT_SEATS = 24


@router.get("")
def draws(request: Request, session: DbSession, user: CurrentUser) -> Response:
    return _draws_page(request, session, user)


def _draws_page(request: Request, session: Session, user: ConsoleUser, *, error: CaisseError | None = None) -> Response:
    return render(request, "sortition/list.html", title="Tirage au sort", draws=sortition.list_draws(session),
                  quotas=sortition.even_quotas(DEFAULT_SEATS), age_bands=sortition.SCHEMES[sortition.SCHEME_2026].labels,
                  legacy_bands=sortition.SCHEMES[sortition.SCHEME_2024].labels,
                  can_organise=_organiser(user), error=error.detail if error else None,
                  status_code=error.status_code if error else 200)


async def _form(request: Request) -> FormData:
    """The posted form, read here so that `create` stays a plain function: FastAPI runs those in its
    thread pool, and an async route's database work would stall the event loop (and every
    terminal's upload) while it waits, e.g. for SQLite's write lock."""
    return await request.form()


@router.post("")
def create(request: Request, session: DbSession, user: Organiser, form: Annotated[FormData, Depends(_form)],
           title: Annotated[str, Form()] = "", closing_date: Annotated[str, Form()] = "",
           total_places: Annotated[str, Form()] = "") -> Response:
    """Seats typed per stratum, or computed from the population's shares when any is given."""
    try:
        closing = _optional_date(closing_date)
        typed_shares = {(q, a): str(form.get(f"part_{q}_{a}", "")).strip() for q, a in sortition.STRATA}
        if any(typed_shares.values()):
            shares = {stratum: sortition.parse_share(text or "0") for stratum, text in typed_shares.items()}
            draw = sortition.create_draw(session, title=title, shares=shares, total_seats=_whole(total_places, code="invalid_seats"),
                                         closing_date=closing, by=user.email)
        else:
            quotas = {(q, a): _whole(str(form.get(f"places_{q}_{a}", "")), code="invalid_seats") for q, a in sortition.STRATA}
            draw = sortition.create_draw(session, title=title, quotas=quotas, closing_date=closing, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _draws_page(request, session, user, error=error)
    session.commit()
    return redirect(f"/console/sortition/{draw.id}", flash="Tirage créé : inscrivez les volontaires.")


@router.get("/{draw_id}")
def draw_page(request: Request, session: DbSession, user: CurrentUser, draw_id: int) -> Response:
    return _draw_page(request, session, user, draw_id=draw_id)


def _draw_page(request: Request, session: Session, user: ConsoleUser, *, draw_id: int, error: CaisseError | None = None,
               skipped: list[str] | None = None) -> Response:
    draw = sortition.get_draw(session, draw_id=draw_id)
    volunteers = sortition.volunteers_of(session, draw_id=draw_id)
    verified = sortition.verify_draw(session, draw_id=draw_id) if draw.status == "drawn" else None
    legacy = draw.scheme == sortition.SCHEME_2024
    columns = (", ".join(sortition.IMPORT_COLUMNS) if legacy else
               "Nom ; Contact ; Quartile de revenu ; Date de naissance ; Taille du foyer ; Commerces")
    return render(request, "sortition/draw.html", title=draw.title, draw=draw, volunteers=volunteers,
                  strata=sortition.strata_results(session, draw_id=draw_id), age_bands=sortition.SCHEMES[draw.scheme].labels,
                  shares=sortition.shares_of(session, draw_id=draw_id), legacy=legacy,
                  invitations=[v for v in volunteers if v.invitation], invitation_fr=sortition.INVITATION_FR,
                  can_organise=_organiser(user), show_names=_organiser(user), verified=verified,
                  columns=columns, error=error.detail if error else None, skipped=skipped or [],
                  status_code=error.status_code if error else 200)


@router.post("/{draw_id}/volunteers")
def register(
    request: Request, session: DbSession, user: Organiser, draw_id: int, name: Annotated[str, Form()] = "",
    contact: Annotated[str, Form()] = "", quartile: Annotated[str, Form()] = "", age_band: Annotated[str, Form()] = "",
    birth_date: Annotated[str, Form()] = "", household_size: Annotated[str, Form()] = "", shops: Annotated[str, Form()] = "",
) -> Response:
    try:
        volunteer = sortition.register_volunteer(
            session, draw_id=draw_id, name=name, contact=contact, income_quartile=_whole(quartile, code="invalid_stratum"),
            age_band=_whole(age_band, code="invalid_stratum") if age_band.strip() else None,
            birth_date=_optional_date(birth_date),
            household_size=_whole(household_size, code="invalid_volunteer") if household_size.strip() else None,
            shops=shops or None, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _draw_page(request, session, user, draw_id=draw_id, error=error)
    session.commit()
    return redirect(f"/console/sortition/{draw_id}", flash=f"Volontaire inscrit sous le numéro {volunteer.number}.")


@router.post("/{draw_id}/import")
def import_list(request: Request, session: DbSession, user: Organiser, draw_id: int,
                form: Annotated[FormData, Depends(_form)]) -> Response:
    """The questionnaire as an uploaded spreadsheet file, or pasted text."""
    upload = form.get("fichier")
    content: bytes | str = str(form.get("content", ""))
    if isinstance(upload, UploadFile):
        with upload.file:
            if upload.filename:
                content = upload.file.read(MAX_FILE_BYTES + 1)  # one byte more: a larger file is refused in French
    try:
        report = sortition.import_volunteers(session, draw_id=draw_id, content=content,
                                             skip_bad_rows=form.get("ignorer_erreurs") == "oui", by=user.email)
    except CaisseError as error:
        session.rollback()
        return _draw_page(request, session, user, draw_id=draw_id, error=error)
    session.commit()
    if report.errors:
        return _draw_page(request, session, user, draw_id=draw_id, skipped=report.errors)
    return redirect(f"/console/sortition/{draw_id}", flash=f"{report.imported} volontaire(s) inscrit(s).")


@router.post("/{draw_id}/seed")
def publish_seed(request: Request, session: DbSession, user: Organiser, draw_id: int, phrase: Annotated[str, Form()] = "") -> Response:
    try:
        sortition.publish_seed(session, draw_id=draw_id, phrase=phrase, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _draw_page(request, session, user, draw_id=draw_id, error=error)
    session.commit()
    return redirect(f"/console/sortition/{draw_id}", flash="Graine publiée : la liste des volontaires est figée.")


@router.post("/{draw_id}/draw")
def run(request: Request, session: DbSession, user: Organiser, draw_id: int) -> Response:
    try:
        results = sortition.run_draw(session, draw_id=draw_id, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _draw_page(request, session, user, draw_id=draw_id, error=error)
    selected = sum(result.selected for result in results)
    session.commit()
    return redirect(f"/console/sortition/{draw_id}", flash=f"Tirage effectué : {selected} volontaire(s) tiré(s) au sort et invité(s).")


@router.post("/{draw_id}/volunteers/{volunteer_id}/accept")
def accept(request: Request, session: DbSession, user: Organiser, draw_id: int, volunteer_id: int,
           zone: Annotated[str, Form()] = "", members: Annotated[str, Form()] = "") -> Response:
    try:
        _volunteer_of(session, draw_id=draw_id, volunteer_id=volunteer_id)
        household_id = sortition.accept_invitation(session, volunteer_id=volunteer_id, zone=zone, by=user.email,
                                                   members=_whole(members, code="invalid_members") if members.strip() else None)
    except CaisseError as error:
        session.rollback()
        return _draw_page(request, session, user, draw_id=draw_id, error=error)
    session.commit()
    return redirect(f"/console/households/{household_id}", flash="Invitation acceptée : le foyer est créé, remettez-lui sa carte.")


@router.post("/{draw_id}/volunteers/{volunteer_id}/decline")
def decline(request: Request, session: DbSession, user: Organiser, draw_id: int, volunteer_id: int,
            confirm: Annotated[str, Form()] = "") -> Response:
    try:
        _volunteer_of(session, draw_id=draw_id, volunteer_id=volunteer_id)
        if confirm != "oui":
            raise InvalidInput("confirmation_required", "cochez la case de confirmation : un refus ne s'annule pas")
        replacement = sortition.decline_invitation(session, volunteer_id=volunteer_id, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _draw_page(request, session, user, draw_id=draw_id, error=error)
    session.commit()
    flash = ("Refus enregistré ; la réserve de cette strate est vide : à compléter par la mobilisation." if replacement is None
             else f"Refus enregistré ; le volontaire n° {replacement.number} (rang {replacement.rank}) est invité à sa place.")
    return redirect(f"/console/sortition/{draw_id}", flash=flash)


@router.get("/{draw_id}/volunteers/{volunteer_id}/personal-data.{form}")
def personal_data(session: DbSession, user: Organiser, draw_id: int, volunteer_id: int, form: str) -> Response:
    """Everything held about one volunteer (right of access), for one who never became a member
    too; audited as it is read."""
    _volunteer_of(session, draw_id=draw_id, volunteer_id=volunteer_id)
    if form not in ("json", "csv"):
        raise NotFound("not_found", "json or csv")
    data = members.personal_data(session, volunteer_id=volunteer_id, by=user.email)
    session.commit()
    content = members.personal_data_json(data) if form == "json" else members.personal_data_csv(data)
    return Response(content, media_type="application/json" if form == "json" else "text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="donnees-volontaire-{volunteer_id}.{form}"'})


@router.get("/{draw_id}/export.csv")
def export(session: DbSession, user: CurrentUser, draw_id: int, noms: int = 0) -> Response:
    with_names = bool(noms) and _organiser(user)  # names and contacts never leave for the committee
    content = sortition.export_csv(session, draw_id=draw_id, with_names=with_names)
    filename = f"tirage-{draw_id}{'-nominatif' if with_names else ''}.csv"
    return Response(content, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _organiser(user: ConsoleUser) -> bool:
    return user.role in (Role.ADMIN, Role.COORDINATOR)


def _volunteer_of(session: Session, *, draw_id: int, volunteer_id: int) -> None:
    """A form acts only on a volunteer of the draw of its page."""
    if sortition.get_volunteer(session, volunteer_id=volunteer_id).draw_id != draw_id:
        raise NotFound("volunteer_not_found", f"aucun volontaire n° {volunteer_id} dans ce tirage")


def _optional_date(text: str) -> date | None:
    if not text.strip():
        return None
    day = sortition.parse_date(text)
    if day is None:
        raise InvalidInput("invalid_volunteer", f"date illisible {text!r} (JJ/MM/AAAA)")
    return day


def _whole(text: str, *, code: str) -> int:
    value = text.strip()
    # ASCII digits only ('²' passes isdigit() but not int()), and few enough for an INTEGER column.
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise InvalidInput(code, f"un nombre entier est attendu, pas {value!r}")
    return int(value)
