"""Sortition of new members (caisse.sortition): draws, volunteers, the seed published before the
draw, the draw, and the CSV export. The committee sees counts, seeds and numbers, never names.

caisse.sortition words its errors in French for staff, so the page shows their detail as it is."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from starlette.datastructures import FormData
from sqlmodel import Session

from caisse import audit, sortition
from caisse.console.deps import CurrentUser, DbSession, require_page, require_roles
from caisse.console.templating import redirect, render
from caisse.errors import CaisseError, InvalidInput
from caisse.models import ConsoleUser, Role

router = APIRouter(prefix="/sortition", dependencies=[Depends(require_page("sortition"))])
Organiser = Annotated[ConsoleUser, Depends(require_roles(Role.ADMIN, Role.COORDINATOR))]
DEFAULT_SEATS = 24


@router.get("")
def draws(request: Request, session: DbSession, user: CurrentUser) -> Response:
    return _draws_page(request, session, user)


def _draws_page(request: Request, session: Session, user: ConsoleUser, *, error: CaisseError | None = None) -> Response:
    return render(request, "sortition/list.html", title="Tirage au sort", draws=sortition.list_draws(session),
                  quotas=sortition.even_quotas(DEFAULT_SEATS), age_bands=sortition.AGE_BANDS,
                  can_organise=_organiser(user), error=error.detail if error else None,
                  status_code=error.status_code if error else 200)


async def _form(request: Request) -> FormData:
    """The posted form, read here so that `create` stays a plain function: FastAPI runs those in its
    thread pool, and an async route's database work would stall the event loop (and every
    terminal's upload) while it waits, e.g. for SQLite's write lock."""
    return await request.form()


@router.post("")
def create(request: Request, session: DbSession, user: Organiser, form: Annotated[FormData, Depends(_form)],
           title: Annotated[str, Form()] = "") -> Response:
    try:
        quotas = {(q, a): _whole(str(form.get(f"places_{q}_{a}", "")), code="invalid_seats") for q, a in sortition.STRATA}
        draw = sortition.create_draw(session, title=title, quotas=quotas, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _draws_page(request, session, user, error=error)
    audit.record(session, actor=user.email, action="sortition.create", subject=f"sortition:{draw.id}",
                 detail={"title": draw.title, "seats": sum(quotas.values())})
    session.commit()
    return redirect(f"/console/sortition/{draw.id}", flash="Tirage créé : inscrivez les volontaires.")


@router.get("/{draw_id}")
def draw_page(request: Request, session: DbSession, user: CurrentUser, draw_id: int) -> Response:
    return _draw_page(request, session, user, draw_id=draw_id)


def _draw_page(request: Request, session: Session, user: ConsoleUser, *, draw_id: int, error: CaisseError | None = None) -> Response:
    draw = sortition.get_draw(session, draw_id=draw_id)
    volunteers = sortition.volunteers_of(session, draw_id=draw_id)
    verified = sortition.verify_draw(session, draw_id=draw_id) if draw.status == "drawn" else None
    return render(request, "sortition/draw.html", title=draw.title, draw=draw, volunteers=volunteers,
                  strata=sortition.strata_results(session, draw_id=draw_id), age_bands=sortition.AGE_BANDS,
                  can_organise=_organiser(user), show_names=_organiser(user), verified=verified,
                  columns=", ".join(sortition.IMPORT_COLUMNS), error=error.detail if error else None,
                  status_code=error.status_code if error else 200)


@router.post("/{draw_id}/volunteers")
def register(
    request: Request, session: DbSession, user: Organiser, draw_id: int, name: Annotated[str, Form()] = "",
    contact: Annotated[str, Form()] = "", quartile: Annotated[str, Form()] = "", age_band: Annotated[str, Form()] = "",
) -> Response:
    try:
        volunteer = sortition.register_volunteer(session, draw_id=draw_id, name=name, contact=contact,
                                                 income_quartile=_whole(quartile, code="invalid_stratum"),
                                                 age_band=_whole(age_band, code="invalid_stratum"))
    except CaisseError as error:
        session.rollback()
        return _draw_page(request, session, user, draw_id=draw_id, error=error)
    audit.record(session, actor=user.email, action="sortition.register", subject=f"sortition:{draw_id}",
                 detail={"number": volunteer.number})
    session.commit()
    return redirect(f"/console/sortition/{draw_id}", flash=f"Volontaire inscrit sous le numéro {volunteer.number}.")


@router.post("/{draw_id}/import")
def import_list(request: Request, session: DbSession, user: Organiser, draw_id: int, content: Annotated[str, Form()] = "") -> Response:
    try:
        count = sortition.import_volunteers(session, draw_id=draw_id, content=content)
    except CaisseError as error:
        session.rollback()
        return _draw_page(request, session, user, draw_id=draw_id, error=error)
    audit.record(session, actor=user.email, action="sortition.import", subject=f"sortition:{draw_id}", detail={"count": count})
    session.commit()
    return redirect(f"/console/sortition/{draw_id}", flash=f"{count} volontaire(s) inscrit(s).")


@router.post("/{draw_id}/seed")
def publish_seed(request: Request, session: DbSession, user: Organiser, draw_id: int, phrase: Annotated[str, Form()] = "") -> Response:
    try:
        draw = sortition.publish_seed(session, draw_id=draw_id, phrase=phrase, by=user.email)
    except CaisseError as error:
        session.rollback()
        return _draw_page(request, session, user, draw_id=draw_id, error=error)
    audit.record(session, actor=user.email, action="sortition.seed", subject=f"sortition:{draw_id}",
                 detail={"phrase": draw.seed_phrase, "seed": draw.seed_hex})
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
    audit.record(session, actor=user.email, action="sortition.draw", subject=f"sortition:{draw_id}", detail={"selected": selected})
    session.commit()
    return redirect(f"/console/sortition/{draw_id}", flash=f"Tirage effectué : {selected} volontaire(s) tiré(s) au sort.")


@router.get("/{draw_id}/export.csv")
def export(session: DbSession, user: CurrentUser, draw_id: int, noms: int = 0) -> Response:
    with_names = bool(noms) and _organiser(user)  # names and contacts never leave for the committee
    content = sortition.export_csv(session, draw_id=draw_id, with_names=with_names)
    filename = f"tirage-{draw_id}{'-nominatif' if with_names else ''}.csv"
    return Response(content, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _organiser(user: ConsoleUser) -> bool:
    return user.role in (Role.ADMIN, Role.COORDINATOR)


def _whole(text: str, *, code: str) -> int:
    value = text.strip()
    # ASCII digits only ('²' passes isdigit() but not int()), and few enough for an INTEGER column.
    if not (value.isascii() and value.isdigit() and len(value) <= 9):
        raise InvalidInput(code, f"un nombre entier est attendu, pas {value!r}")
    return int(value)
