"""The home page of the team (admin, coordinators, treasurer): what waits for a person longer
than the caisse allows (caisse.overdue, CAISSE_OVERDUE_AFTER_DAYS). The committee's home is the
budget: these lines name households and vendors."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from caisse import overdue
from caisse.config import Settings
from caisse.console.deps import PAGE_ROLES, CurrentUser, DbSession, require_page
from caisse.console.templating import render

router = APIRouter(prefix="/accueil", dependencies=[Depends(require_page("home"))])

KIND_FR = {overdue.HELD_RECORD: "Paiement retenu pour vérification", overdue.FLAGGED_CARD: "Carte bloquée comme copie",
           overdue.NEGATIVE_HOUSEHOLD: "Foyer à solde négatif", overdue.NEGATIVE_PAYABLE: "Commerçant à solde négatif"}


@router.get("")
def home(request: Request, session: DbSession, user: CurrentUser) -> Response:
    settings: Settings = request.app.state.settings
    waiting = overdue.overdue(session, settings=settings)
    return render(request, "home/index.html", title="À traiter", waiting=waiting, kinds=KIND_FR,
                  days=settings.overdue_after_days, links=_links(user.role))


def _links(role: str) -> dict[str, str]:
    """Where each kind of line leads, for the pages this role may open."""
    targets = {overdue.HELD_RECORD: ("transactions", "/console/transactions?status=held"),
               overdue.NEGATIVE_HOUSEHOLD: ("households", "/console/households/{id}"),
               overdue.FLAGGED_CARD: ("households", ""), overdue.NEGATIVE_PAYABLE: ("vendors", "/console/vendors/{id}")}
    return {kind: path for kind, (page, path) in targets.items() if path and role in PAGE_ROLES[page]}
