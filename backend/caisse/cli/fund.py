"""`caisse cotisations ...` and `caisse annee ...`: households' means and chosen contributions,
contributions due and received, the monthly matching claim, the year's budget, its costs and its
simulation (docs/settlement.md; staff guide docs/guide/cotisations.md). Thin: each command calls
one service of caisse.members.means, caisse.fund.contributions, caisse.fund.matching_claim, caisse.fund.costs,
caisse.fund.year_budget or caisse.fund.year_simulation. Registered by caisse.cli.main.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from caisse.cli.session import err, fail, login_name, out, run_in_session
from caisse.config import Settings
from caisse.money import euros

cotisations_app = typer.Typer(help="Cotisations choisies : moyens des foyers, retards, demande d'abondement de l'État.",
                              no_args_is_help=True)
year_app = typer.Typer(help="L'année du fonds : budget (réel et prévision), frais par catégorie, simulation.",
                       no_args_is_help=True)

_StaffBy = Annotated[str, typer.Option("--by", help="Votre compte de la console (adresse e-mail, actif) ; le journal note"
                                                      " aussi l'utilisateur du système.")]
_Month = Annotated[str, typer.Option("--mois", help="Mois, AAAA-MM.")]


def _cents(value: str | None) -> int | None:
    from caisse.money import parse_euros

    return None if value is None else parse_euros(value, zero_allowed=True)


@cotisations_app.command("moyens")
def record_means(
    household: Annotated[int, typer.Argument(metavar="FOYER", help="Numéro du foyer.")],
    month: _Month,
    size: Annotated[int, typer.Option("--taille", help="Nombre de personnes du foyer à partir de ce mois.")],
    by: _StaffBy,
    quartile: Annotated[int | None, typer.Option("--quartile", help="Quartile de revenu, 1 (le plus bas) à 4.")] = None,
    income: Annotated[str | None, typer.Option("--revenu", help="Revenu mensuel du foyer en euros.")] = None,
    contribution: Annotated[str | None, typer.Option("--cotisation", help="Cotisation mensuelle choisie, en euros.")] = None,
) -> None:
    """Enregistrer la taille, les moyens et la cotisation choisie d'un foyer à partir d'un mois."""
    from caisse.members import means

    row = run_in_session(lambda s: means.record_means(
        s, household_id=household, effective_month=month, size=size, income_quartile=quartile,
        monthly_income_cents=_cents(income), chosen_contribution_cents=_cents(contribution), by=by, os_user=login_name(),
        settings=Settings()).id)
    out.print(row)
    err.print(f"Moyens du foyer {household} enregistrés à partir de {month}.")


@cotisations_app.command("importer-moyens")
def import_means(
    path: Annotated[Path, typer.Argument(metavar="FICHIER", help="Tableur CSV : foyer ; mois ; taille ; quartile de revenu ou revenu mensuel ;"
                                              " cotisation choisie.", exists=True, dir_okay=False)],
    by: _StaffBy,
    skip_errors: Annotated[bool, typer.Option("--ignorer-erreurs", help="Enregistrer les bonnes lignes malgré les autres.")] = False,
) -> None:
    """Importer les moyens des foyers d'un tableur ; rien n'est enregistré d'un fichier qui a des erreurs."""
    from caisse.members import means

    data = path.read_bytes()
    report = run_in_session(lambda s: means.import_means(s, data=data, by=by, os_user=login_name(), settings=Settings(),
                                                         skip_errors=skip_errors))
    for line in report.errors.lines():
        err.print(f"[red]{line}[/red]")
    out.print(report.recorded)
    err.print(f"{report.recorded} foyer(s) enregistré(s).")
    if report.errors and not skip_errors:
        err.print("Rien n'est enregistré : corrigez les lignes ci-dessus, ou relancez avec --ignorer-erreurs.")
        raise typer.Exit(code=1)


@cotisations_app.command("retards")
def list_behind(month: Annotated[str | None, typer.Option("--mois", help="Jusqu'à ce mois, AAAA-MM (par défaut : ce mois-ci).")] = None) -> None:
    """Lister les foyers en retard de cotisation (séparés par des tabulations). Pour information :
    aucune allocation n'est suspendue ni réduite, personne n'est relancé par le logiciel."""
    from caisse.fund import contributions
    from caisse.members import means

    settings = Settings()
    until = month or str(means.current_month(settings))
    rows = run_in_session(lambda s: contributions.behind(s, month=until, settings=settings))
    typer.echo("\t".join(("foyer", "nom", "cotisation choisie (EUR)", "barème (EUR)", "dû (EUR)", "reçu (EUR)",
                          "en retard (EUR)", "mois en retard", "depuis")))
    for row in rows:
        typer.echo("\t".join(str(value) for value in (
            row.household_id, row.name, _optional(row.chosen_cents), _optional(row.indicative_cents), euros(row.due_cents),
            euros(row.received_cents), euros(row.behind_cents), row.months_behind, row.first_month_behind or "")))
    err.print(f"{len(rows)} foyer(s) en retard jusqu'à {until}, pour {euros(sum(r.behind_cents for r in rows))} EUR."
              " Les allocations restent versées en entier.")


def _optional(cents: int | None) -> str:
    return "non renseignée" if cents is None else euros(cents)


@cotisations_app.command("demande-abondement")
def matching_claim(
    month: _Month,
    folder: Annotated[Path, typer.Option("--dossier", help="Où écrire le CSV et le PDF.", file_okay=False)] = Path("."),
) -> None:
    """Écrire la demande mensuelle d'abondement à l'État : les cotisations du mois et le montant demandé (CSV et PDF)."""
    from caisse.fund import matching_claim as claims

    settings = Settings()
    result = run_in_session(lambda s: claims.claim(s, month=month, settings=settings))
    csv_path, pdf_path = claims.write(result, folder, caisse_name=settings.debtor_name)
    out.print(csv_path)
    out.print(pdf_path)
    err.print(f"Demande d'abondement de {result.month} : {len(result.lines)} cotisation(s), {euros(result.contributions_cents)} EUR ;"
              f" abondement demandé {euros(result.matching_cents)} EUR ({result.rate}),"
              f" {euros(result.matching_posted_cents)} EUR déjà au grand livre (caisse fund match).")


@year_app.command("budget")
def year_budget(year: Annotated[int | None, typer.Option("--annee", help="Année (par défaut : cette année).")] = None) -> None:
    """Le budget de l'année : réel (grand livre) pour les mois passés, prévision pour les suivants."""
    from caisse.fund.year_budget import year_budget as budget
    from caisse.members import means

    settings = Settings()
    wanted = year or means.current_month(settings).year
    result = run_in_session(lambda s: budget(s, year=wanted, settings=settings))
    typer.echo(f"Budget {wanted} : réel de {_span(result.actual_months)}, prévision de {_span(result.forecast_months)}")
    typer.echo(f"{'':<58}{'réel':>16}{'prévision':>16}{'année':>16}")
    for label, line in result.lines():
        if line is None:
            typer.echo(label)
        else:
            typer.echo(f"  {label:<56}" + "".join(f"{euros(cents, grouped=True):>16}" for cents in
                                                  (line.actual_cents, line.forecast_cents, line.total_cents)))
    for difference in result.differences:
        err.print(f"[red]Écart avec le grand livre :[/red] {difference}")
    if result.differences:
        raise typer.Exit(code=1)


def _span(months: list[str]) -> str:
    return f"{months[0]} à {months[-1]}" if months else "aucun mois"


@year_app.command("frais")
def record_cost(
    month: _Month,
    amount: Annotated[str, typer.Option("--montant", help="Euros, par exemple 333,33.")],
    category: Annotated[str, typer.Option("--categorie", help="logiciel, banque, plateforme, personnel ou autre.")],
    memo: Annotated[str, typer.Option("--libelle", help="Ce que ces frais paient.")],
    reference: Annotated[str, typer.Option("--reference", help="Clé unique (numéro de facture).")],
    by: _StaffBy,
) -> None:
    """Enregistrer des frais payés par le fonds, avec leur catégorie."""
    from caisse.fund import costs
    from caisse.money import parse_euros

    created = run_in_session(lambda s: costs.record_cost(s, month=month, amount_cents=parse_euros(amount), category=category, memo=memo,
                                                         reference=reference, by=by, os_user=login_name()))
    err.print(f"Frais enregistrés pour {month} : {memo}." if created else "Déjà enregistré sous cette référence : rien de changé.")


@year_app.command("simuler")
def simulate(
    households: Annotated[int, typer.Option("--foyers", min=1, max=5_000, help="Nombre de foyers.")] = 200,
    year: Annotated[int, typer.Option("--annee", min=2000, max=2100, help="Année simulée.")] = 2026,
    seed: Annotated[int, typer.Option("--graine", help="Graine du hasard : la même donne les mêmes chiffres.")] = 1,
    staff: Annotated[str, typer.Option("--personnel", help="Temps de travail payé par le fonds, euros par mois.")] = "0",
    grants: Annotated[str, typer.Option("--dons", help="Dons et subventions reçus, euros par mois.")] = "0",
    platform: Annotated[int, typer.Option("--plateforme-pb", min=0, max=10_000,
                                          help="Pourcentage de la plateforme de paiement, en points de base (150 = 1,5 %).")] = 150,
) -> None:
    """Simuler une année du fonds sur une base jetable : foyers, cotisations, allocations, abondement, frais."""
    from caisse.errors import CaisseError
    from caisse.fund.year_simulation import YearConfig, french_report, simulate_year

    try:
        config = YearConfig(households=households, year=year, seed=seed, staff_cents_per_month=_cents(staff) or 0,
                            grants_cents_per_month=_cents(grants) or 0, platform_fee_basis_points=platform)
    except CaisseError as error:
        fail(error)
    for line in french_report(simulate_year(config)):
        typer.echo(line)
