"""The caisse console: server-rendered French pages for the team and the citizens' committee.

`router` holds every page under /console; `install(app)` mounts it with its static files and the
handlers that answer console errors with HTML. See docs/console.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from caisse.console.deps import ConsoleForbidden, SignInRequired, check_csrf
from caisse.console.routes import (
    accreditation,
    audit,
    auth,
    budget,
    cards,
    contributions,
    flows,
    fund,
    households,
    settlements,
    sortition,
    terminals,
    transactions,
    users,
    vendors,
)
from caisse.console.templating import render
from caisse.errors import CaisseError, french

PREFIX = "/console"
logger = logging.getLogger("caisse.console")

router = APIRouter(prefix=PREFIX, dependencies=[Depends(check_csrf)], include_in_schema=False)
router.add_api_route("", auth.home, methods=["GET"])
for page in (auth, households, cards, accreditation, vendors, terminals, transactions, settlements, fund, contributions,
             budget, flows, sortition, audit, users):
    router.include_router(page.router)
router.include_router(users.own_router)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=Path(__file__).parent / "static"), name="console-static")

    @app.get("/", include_in_schema=False)
    def _home() -> RedirectResponse:
        return RedirectResponse(PREFIX, status_code=307)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _error: SignInRequired) -> Response:
        return RedirectResponse(f"{PREFIX}/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(ConsoleForbidden)
    async def _forbidden(request: Request, error: ConsoleForbidden) -> HTMLResponse:
        return render(request, "error.html", status_code=403, title="Accès refusé", message=error.message)


def is_console(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


def error_page(request: Request, *, status_code: int, error: Exception | None = None) -> HTMLResponse:
    """The HTML answer to an error escaping a console page (the API answers JSON instead)."""
    if isinstance(error, CaisseError):
        return render(request, "error.html", status_code=status_code, title="Opération impossible", message=french(error))
    titles = {404: "Page introuvable", 405: "Opération impossible", 422: "Formulaire incomplet"}
    messages = {404: "Cette page n'existe pas.", 422: "Un champ du formulaire manque ou est mal rempli."}
    if status_code >= 500:
        return render(request, "error.html", status_code=status_code, title="Erreur inattendue",
                      message="Une erreur inattendue est survenue ; rien n'a été enregistré.")
    return render(request, "error.html", status_code=status_code, title=titles.get(status_code, "Erreur"),
                  message=messages.get(status_code, "La demande n'a pas pu aboutir."))
