"""`caisse liste ...`: find households, vendors, cards, terminals, settlement runs and console
accounts from the command line, as the console's lists do (caisse.reports.directory), page by page.

A rich table for people (`--format tableau`, the default) or CSV for spreadsheets (`--format
csv`, French column names and values, amounts in euros with a decimal comma). Every value a
person types has a French name and its English alias (`bloquée` or `blocked`; accents optional).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlmodel import Session

from caisse.cli.session import err, out, run_in_session
from caisse.money import euros
from caisse.reports import directory
from caisse.reports.search import Page
from caisse_common.cli_french import Choices

liste_app = typer.Typer(help="Lister et rechercher : foyers, commerçants, cartes, terminaux, règlements, comptes.",
                        no_args_is_help=True)

# French names, as printed, and the stored codes (accepted too, as English aliases). Typed,
# names match without case or accents, with hyphens or spaces (caisse_common.cli_french.Choices).
FORMATS = Choices({"tableau": "tableau", "csv": "csv"}, aliases={"table": "tableau"})
CONVENTION = Choices({"conventionné": "active", "en attente": "pending", "suspendu": "suspended", "terminé": "ended"})
CARD_STATUS = Choices({"active": "active", "bloquée": "blocked", "rendue": "returned"})
TERMINAL_STATUS = Choices({"en service": "active", "à vérifier": "suspect", "révoqué": "revoked"})
RUN_STATUS = Choices({"préparé": "prepared", "approuvé": "approved", "exporté": "exported"})
ROLES = Choices({"administration": "admin", "coordination": "coordinator", "trésorerie": "treasurer", "comité": "committee"})
ACCOUNT_STATE = Choices({"actif": "active", "désactivé": "disabled"})

Search = Annotated[str, typer.Option("--recherche", "-r", help="Texte cherché (casse et accents ignorés).")]
PageNumber = Annotated[int, typer.Option("--page", help="Numéro de la page, à partir de 1.")]
PerPage = Annotated[int, typer.Option("--par-page", help="Lignes par page (500 au plus).")]
Format = Annotated[str, FORMATS.option("--format", help="Tableau pour lire, CSV pour un tableur.")]


VendorState = Annotated[str | None, CONVENTION.option("--etat", help="Conventionnement.")]
CardState = Annotated[str | None, CARD_STATUS.option("--etat", help="État de la carte.")]
TerminalState = Annotated[str | None, TERMINAL_STATUS.option("--etat", help="État du terminal.")]
RunState = Annotated[str | None, RUN_STATUS.option("--etat", help="État du règlement.")]
AccountState = Annotated[str | None, ACCOUNT_STATE.option("--etat", help="État du compte.")]
AccountRole = Annotated[str | None, ROLES.option("--role", help="Rôle.")]


def _french(choices: Choices, code: str) -> str:
    """The French name of a stored code, as printed in tables and CSV."""
    return next((french for french, stored in choices.values.items() if stored == code), code)


def _show(page: Page[Any], headers: Sequence[str], row: Callable[[Any], Sequence[object]], output: str) -> None:
    """The page as a table or CSV on stdout; which page of how many on stderr."""
    lines = [[("" if value is None else str(value)) for value in row(item)] for item in page.rows]
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(lines)
        sys.stdout.flush()
    else:
        table = Table(*headers)
        for line in lines:
            table.add_row(*line)
        out.print(table)
    err.print(f"Page {page.page} sur {page.pages} : {len(page.rows)} ligne(s) affichée(s) sur {page.total}.",
              highlight=False)


def _read(query: Callable[[Session], Page[Any]]) -> Page[Any]:
    return run_in_session(query)


@liste_app.command("foyers")
def households(search: Search = "", page: PageNumber = 1, per_page: PerPage = 50, output: Format = "tableau") -> None:
    """Les foyers (nom, quartier, numéro ou identifiant de carte), du plus récent au plus ancien."""
    found = _read(lambda s: directory.households_page(s, query=search, page=page, per_page=per_page))
    _show(found, ("numéro", "nom", "personnes", "quartier", "cartes actives", "cartes", "solde (EUR)", "inscrit le"),
          lambda r: (r.household.id, r.household.name, r.household.members, r.household.zone, r.active_cards, r.cards,
                     euros(r.balance_cents), f"{r.household.created_at:%Y-%m-%d}"), output)


@liste_app.command("commercants")
def vendors(search: Search = "", state: VendorState = None, page: PageNumber = 1,
            per_page: PerPage = 50, output: Format = "tableau") -> None:
    """Les commerçants (nom, type, marché, quartier ou numéro), par nom."""
    found = _read(lambda s: directory.vendors_page(s, query=search, convention=state, page=page, per_page=per_page))
    _show(found, ("numéro", "nom", "type", "marché", "quartier", "conventionnement", "IBAN", "terminaux", "à payer (EUR)"),
          lambda r: (r.vendor.id, r.vendor.name, r.vendor.kind, r.vendor.market, r.vendor.zone,
                     _french(CONVENTION, r.vendor.convention_status), r.vendor.iban, r.terminals,
                     euros(r.payable_cents)), output)


@liste_app.command("cartes")
def cards(search: Search = "", state: CardState = None, page: PageNumber = 1,
          per_page: PerPage = 50, output: Format = "tableau") -> None:
    """Les cartes (identifiant entier, nom ou numéro du foyer), de la plus récente à la plus ancienne."""
    from caisse.cards.authentication import BLOCK_REASON_FR

    found = _read(lambda s: directory.cards_page(s, query=search, status=state, page=page, per_page=per_page))
    _show(found, ("carte", "type", "état", "motif", "depuis", "foyer", "nom du foyer"),
          lambda r: (r.card.uid.hex(), "sécurisée" if r.card.card_type == "secure" else "simple",
                     _french(CARD_STATUS, r.card.status), BLOCK_REASON_FR.get(r.card.block_reason or "", ""),
                     f"{r.card.blocked_at:%Y-%m-%d %H:%M}" if r.card.blocked_at else "", r.card.household_id,
                     r.household_name), output)


@liste_app.command("terminaux")
def terminals(search: Search = "", state: TerminalState = None, page: PageNumber = 1,
              per_page: PerPage = 50, output: Format = "tableau") -> None:
    """Les terminaux (numéro ou nom du commerçant), par numéro."""
    found = _read(lambda s: directory.terminals_page(s, query=search, status=state, page=page, per_page=per_page))
    _show(found, ("numéro", "commerçant", "état", "dernière synchro", "non réglés", "retenus", "refusés", "logiciel"),
          lambda r: (r.terminal.id, r.vendor_name, _french(TERMINAL_STATUS, r.terminal.status),
                     f"{r.terminal.last_sync_at:%Y-%m-%d %H:%M}" if r.terminal.last_sync_at else "",
                     r.unsettled, r.held, r.rejected, r.terminal.firmware_version or "inconnu"), output)


@liste_app.command("reglements")
def runs(search: Search = "", state: RunState = None, page: PageNumber = 1,
         per_page: PerPage = 50, output: Format = "tableau") -> None:
    """Les règlements (jour AAAA-MM-JJ ou mois AAAA-MM, numéro, qui l'a préparé ou approuvé), du plus récent au plus ancien."""
    found = _read(lambda s: directory.runs_page(s, query=search, status=state, page=page, per_page=per_page))
    _show(found, ("numéro", "jour", "état", "préparé par", "approuvé par"),
          lambda r: (r.id, r.run_date.isoformat(), _french(RUN_STATUS, r.status), r.prepared_by, r.approved_by), output)


@liste_app.command("comptes")
def accounts(
    search: Search = "", role: AccountRole = None,
    state: AccountState = None,
    page: PageNumber = 1, per_page: PerPage = 50, output: Format = "tableau",
) -> None:
    """Les comptes de la console (adresse e-mail), par adresse."""
    active = {None: None, "active": True, "disabled": False}[state]
    found = _read(lambda s: directory.users_page(s, query=search, role=role, active=active, page=page, per_page=per_page))
    _show(found, ("adresse", "rôle", "état", "créé le", "dernière connexion"),
          lambda u: (u.email, _french(ROLES, u.role), "actif" if u.active else "désactivé", f"{u.created_at:%Y-%m-%d}",
                     f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else ""), output)
