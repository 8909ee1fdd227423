"""Jinja2 templates of the console, and `render`, the one way a page answers.

Globals every template can use: `csrf_input()` (the hidden field every form must carry),
`euros(cents)` (French amount, from caisse.money), `current_user` (None on the sign-in page),
`nav` (the pages the user's role may see) and `flash` (a message left by the previous request).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from caisse.cards import authentication as card_auth
from caisse.console.deps import CSRF_FIELD, PAGE_ROLES, SIGN_IN_CSRF_COOKIE
from caisse.money import euros

FLASH_COOKIE = "caisse_flash"
# Every console page: no script, style or frame from elsewhere (the console has none: a violation
# is a bug the browser tests see), not framed by another site (clickjacking), and not kept in the
# browser cache of a shared tablet (pages hold personal data).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# French names of the stored codes, for display and for the options of <select>s.
LABELS = {
    "kind": {"producer": "Producteur", "market_stall": "Étal de marché", "shop": "Commerce", "epicerie": "Épicerie",
             "cooperative": "Coopérative", "bakery": "Boulangerie", "other": "Autre"},
    "convention": {"pending": "En attente", "active": "Conventionné", "suspended": "Suspendu", "ended": "Terminé"},
    "terminal": {"active": "En service", "suspect": "À vérifier", "revoked": "Révoqué"},
    "card_type": {"basic": "Basique", "secure": "Sécurisée (NTAG 424)"},
    "card_status": {"active": "active", "blocked": "bloquée", "returned": "rendue"},
    "run_status": {"prepared": "préparé", "approved": "approuvé", "exported": "exporté"},
    "block_reason": card_auth.BLOCK_REASON_FR,  # one table for the console, the CLI and the hold reasons
    # caisse.ingest.upload.Reason of a stored refused record
    "refusal": {"over_limit": "montant au-delà du plafond", "unknown_card": "carte inconnue", "card_blocked": "carte bloquée",
                "unknown_payment": "annulation d'un paiement introuvable"},
}
# Audit actions as people read them in a history (unknown actions are shown as stored).
ACTION_LABELS = {
    "household.enrol": "foyer inscrit", "household.edit": "foyer modifié", "contribution.record": "cotisation enregistrée",
    "card.issue": "carte remise",
    "card.block": "carte bloquée", "card.unblock": "carte débloquée", "card.replace": "carte remplacée", "card.return": "carte rendue",
    "vendor.create": "commerçant enregistré", "vendor.edit": "commerçant modifié",
    "vendor.accreditation": "conventionnement modifié", "accreditation.criterion_add": "critère de conventionnement ajouté",
    "accreditation.criterion_retire": "critère de conventionnement retiré", "terminal.revoke": "terminal révoqué",
    "terminal.clear": "terminal remis en service",
    "terminal.accept_loss": "perte d'enregistrements constatée après une restauration",
    "user.create": "compte créé", "user.disable": "compte désactivé", "user.enable": "compte réactivé",
    "user.reset_password": "mot de passe réinitialisé", "user.change_password": "mot de passe changé",
    "record.release": "paiement libéré", "record.reject": "paiement rejeté",
    "settlement.prepare": "règlement préparé", "settlement.approve": "règlement approuvé",
    "settlement.export": "fichiers du règlement générés",
    "vendor.iban_request": "changement d'IBAN demandé", "vendor.iban_approve": "changement d'IBAN approuvé",
    "vendor.iban_reject": "changement d'IBAN refusé", "ledger.reverse": "écriture contre-passée",
    "sortition.create": "tirage créé", "sortition.register": "volontaire inscrit", "sortition.import": "liste de volontaires inscrite",
    "sortition.seed": "graine publiée", "sortition.draw": "tirage effectué",
    "household.means": "moyens et cotisation choisie enregistrés",
    "allowance.allocate": "allocations attribuées", "allowance.close_month": "mois clôturé",
    "allowance.rule": "règle d'allocation fixée", "contribution.import": "cotisations importées",
    "fund.matching": "abondement versé", "fund.grant": "subvention enregistrée", "fund.fee": "frais enregistrés",
    "household.credit": "foyer crédité à la main", "bank.import": "fichier de la banque importé",
}
ROLE_LABELS = {"admin": "administration", "coordinator": "coordination", "treasurer": "trésorerie", "committee": "comité citoyen"}
CONSOLE_TIMEZONE = ZoneInfo("Europe/Paris")  # the caisse's people read local times
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# (page key of PAGE_ROLES, label, path): the navigation, in this order.
NAV = [
    ("households", "Foyers", "/console/households"),
    ("cards", "Cartes", "/console/cards"),
    ("vendors", "Commerçants", "/console/vendors"),
    ("terminals", "Terminaux", "/console/terminals"),
    ("transactions", "Transactions", "/console/transactions"),
    ("settlements", "Règlements", "/console/settlements"),
    ("contributions", "Cotisations", "/console/contributions"),
    ("fund", "Fonds", "/console/fund"),
    ("budget", "Budget", "/console/budget"),
    ("flows", "Flux", "/console/flows"),
    ("sortition", "Tirage au sort", "/console/sortition"),
    ("audit", "Journal", "/console/audit"),
    ("users", "Comptes", "/console/users"),
]


def local_time(moment: datetime | date | int | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
    """A stored UTC time (or unix seconds) as Paris local time, '—' when there is none."""
    if moment is None:
        return "—"
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    if not isinstance(moment, datetime):
        return moment.strftime("%d/%m/%Y")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(CONSOLE_TIMEZONE).strftime(fmt)


def volts(millivolts: int) -> str:
    """3480 mV as '3,48 V' (a terminal's battery)."""
    return f"{millivolts // 1000},{millivolts % 1000 // 10:02d} V"


def duration(seconds: int) -> str:
    """A running time in French: '2 j 3 h', '3 h 12 min', '4 min'."""
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    if days:
        return f"{days} j {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _csrf_input(request: Request) -> Markup:
    token = getattr(request.state, "csrf_token", "")
    return Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">')


def render(request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The template `name` with `context`, plus the console's globals; consumes the flash message."""
    signed = getattr(request.state, "signed_in", None)
    user = signed.user if signed else None
    flash = request.cookies.get(FLASH_COOKIE)
    response = templates.TemplateResponse(
        request, name, status_code=status_code,
        context={
            "current_user": user,
            "csrf_input": lambda: _csrf_input(request),
            "euros": euros,
            "volts": volts,
            "duration": duration,
            "local_time": local_time,
            "role_labels": ROLE_LABELS,
            "labels": LABELS,
            "action_labels": ACTION_LABELS,
            "page_link": lambda number: page_link(request, number),
            "nav": [(label, path, path == request.url.path or request.url.path.startswith(path + "/"))
                    for key, label, path in NAV if user and user.role in PAGE_ROLES[key]],
            "flash": unquote(flash) if flash else None,
            **context,
        },
    )
    response.headers.update(SECURITY_HEADERS)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/console", httponly=True, samesite="lax")
    new_csrf = getattr(request.state, "new_sign_in_csrf", None)
    if new_csrf:
        secure = request.app.state.settings.environment != "development"
        response.set_cookie(SIGN_IN_CSRF_COOKIE, new_csrf, httponly=True, samesite="strict", secure=secure, path="/console")
    return response


def local_today(request: Request) -> date:
    """Today in the caisse's time zone (a date-only rule, as an accreditation's end, is judged so)."""
    return datetime.now(ZoneInfo(request.app.state.settings.settlement_timezone)).date()


def page_link(request: Request, number: int) -> str:
    """The current list's address at page `number`, its filters kept."""
    url = request.url.include_query_params(page=number)
    return f"{url.path}?{url.query}"


def confirm(request: Request, *, title: str, lines: list[str], action: str, button: str, back: str,
            final: bool = False, danger: bool = False, hidden: dict[str, str] | None = None,
            status_code: int = 200) -> HTMLResponse:
    """A page saying what `action` (a POST) will do, with one button to do it and a way back.
    `final`: it cannot be undone, and the page says so."""
    return render(request, "confirm.html", status_code=status_code, title=title, lines=lines, action=action,
                  button=button, back=back, final=final, danger=danger, hidden=hidden or {})


def redirect(url: str, *, flash: str | None = None) -> RedirectResponse:
    """303 to `url` (after a POST, so a reload does not post again), with a message to show there."""
    response = RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
    if flash:
        response.set_cookie(FLASH_COOKIE, quote(flash), httponly=True, samesite="lax", path="/console")
    return response
