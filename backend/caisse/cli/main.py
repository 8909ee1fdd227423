"""The `caisse` command: a thin layer over the services (no HTTP), one sub-command per operation.

Each creating command prints the new id alone on stdout (for scripts) and a short sentence on
stderr (for people).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.cli.choices import ACCREDITATION_STATUS, BLOCK_REASON, ROLE
from caisse.cli.fund import cotisations_app, year_app
from caisse.cli.lists import liste_app
from caisse.cli.session import err, fail, french, login_name, open_engine, open_session, out, run_in_session
from caisse.config import Settings, sepa_text
from caisse.db import make_engine, session_factory, upgrade
from caisse.errors import CaisseError
from caisse.ingest import terminal_decisions
from caisse.members import households as household_service
from caisse.models import Card, SettlementStatus
from caisse.money import euros, parse_euros
from caisse.staff import accounts
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from caisse_common import sun
from caisse_common.cli_french import Choices, FrenchTyper, ask_twice, unexpected

if TYPE_CHECKING:
    from caisse.simulation import SimulationConfig
    from caisse_common.pn532_uart import PN532Uart

app = FrenchTyper(help="Caisse alimentaire commune : administration du serveur.", no_args_is_help=True)
db_app = typer.Typer(help="Base de données : schéma, sauvegarde, restauration.", no_args_is_help=True)
vendor_app = typer.Typer(help="Commerçants conventionnés.", no_args_is_help=True)
member_app = typer.Typer(help="Foyers membres : inscription, code, départ, données personnelles.", no_args_is_help=True)
card_app = typer.Typer(help="Cartes des foyers.", no_args_is_help=True)
terminal_app = typer.Typer(help="Terminaux de paiement.", no_args_is_help=True)
app.add_typer(cotisations_app, name="cotisations")  # caisse.cli.fund: contributions by choice
app.add_typer(year_app, name="annee")  # and the fund's year
for name, sub in (("db", db_app), ("vendor", vendor_app), ("member", member_app), ("card", card_app), ("terminal", terminal_app)):
    app.add_typer(sub, name=name)
app.add_typer(member_app, name="membre", help="Foyers membres (comme « member »).")

T = TypeVar("T")


@app.callback()
def _check_settings() -> None:
    """Refuse to run on settings that are wrong or unsafe, with a French sentence per problem."""
    from pydantic import ValidationError

    from caisse.config import settings_problems

    try:
        Settings()
    except ValidationError as error:
        for problem in settings_problems(error):
            err.print(f"[red]Erreur de configuration :[/red] {problem}", markup=True, highlight=False)
        raise typer.Exit(code=2) from None


_StaffBy = Annotated[str, typer.Option(help="Votre compte de la console (adresse e-mail, actif) ; "
                                             "le journal d'audit inscrit aussi l'utilisateur du système.")]


def _created(what: str, new_id: int | None) -> None:
    """The new id alone on stdout (for scripts), `what` (French, e.g. "Foyer créé") on stderr."""
    assert new_id is not None
    out.print(new_id)
    err.print(f"{what} : {new_id}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Adresse d'écoute.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port TCP.")] = 8000,
) -> None:
    """Servir l'API et la console (en développement, la base est d'abord créée ou mise à jour)."""
    import uvicorn

    from caisse.main import create_app

    settings = Settings()
    engine = make_engine(settings.database_url)
    if settings.environment == "development":
        upgrade(engine)
    uvicorn.run(create_app(settings, engine=engine), host=host, port=port)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Adresse d'écoute.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port TCP.")] = 8000,
) -> None:
    """Remplir une caisse de démonstration par l'API, rejouer une matinée de marché, puis continuer à servir."""
    from caisse.demo.seed import run

    run(host=host, port=port)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Créer la base ou la mettre à jour (migrations jusqu'à la dernière révision)."""
    settings = Settings()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    err.print("Base de données à jour.")


@db_app.command("sauvegarder")
def db_backup(
    folder: Annotated[Path, typer.Option("--dossier", help="Dossier des sauvegardes.")] = Path("./sauvegardes"),
    keep: Annotated[int, typer.Option("--garder", help="Nombre de sauvegardes gardées (les plus récentes).")] = 14,
) -> None:
    """Sauvegarder la base (pg_dump en production) : le chemin du fichier sur la sortie standard."""
    from caisse import backup

    settings = Settings()
    try:
        with open_engine(settings, older_schema_ok=True):  # a missing database is not backed up as an empty one
            path = backup.back_up(settings.database_url, folder, keep=keep)
    except CaisseError as error:
        fail(error)
    out.print(str(path), markup=False, highlight=False)
    err.print(f"Sauvegarde écrite : {path}")


@db_app.command("restaurer")
def db_restore(
    path: Annotated[Path, typer.Argument(help="Fichier de sauvegarde (caisse db sauvegarder).")],
    yes: Annotated[bool, typer.Option("--oui", help="Confirmer : tout ce qui est arrivé après la sauvegarde est effacé.")] = False,
) -> None:
    """Remplacer le contenu de la base par une sauvegarde ; les terminaux renvoient ensuite ce qui manque."""
    from caisse import backup

    if not yes:
        err.print("[red]Erreur :[/red] la restauration efface tout ce qui est arrivé après la sauvegarde :"
                  " relancez avec --oui pour confirmer.")
        raise typer.Exit(code=1)
    try:
        restored = backup.restore(Settings().database_url, path, by=f"cli:{login_name()}")
    except CaisseError as error:
        fail(error)
    err.print(f"Base restaurée depuis {path.name}. Chaque terminal renvoie, à sa prochaine synchronisation, ses"
              " enregistrements au-delà du numéro ci-dessous (ceux qu'il a encore en mémoire) :")
    typer.echo("terminal\tacquitté jusqu'à")
    for terminal_id, acked_seq in restored.terminals:
        typer.echo(f"{terminal_id}\t{acked_seq}")


# The console's names of the kinds (caisse.console.templating.LABELS), the stored codes as aliases.
_VENDOR_KINDS = Choices({"producteur": "producer", "étal de marché": "market_stall", "commerce": "shop", "épicerie": "epicerie",
                         "coopérative": "cooperative", "boulangerie": "bakery", "autre": "other"})


@vendor_app.command("add")
def vendor_add(
    name: Annotated[str, typer.Option(help="Nom commercial.")],
    kind: Annotated[str, _VENDOR_KINDS.option(help="Type de commerce.")],
    zone: Annotated[str, typer.Option(help="Quartier.")],
    by: _StaffBy,
    market: Annotated[str | None, typer.Option(help="Marché où il vend, s'il y en a un.")] = None,
    iban: Annotated[str | None, typer.Option(help="Compte où la caisse le paie (zone SEPA).")] = None,
) -> None:
    """Conventionner un commerçant ; affiche son numéro."""
    vendor = run_in_session(lambda s: vendor_service.create_vendor(s, name=name, kind=kind, zone=zone, market=market, iban=iban,
                                                          by=by, os_user=login_name()))
    _created("Commerçant créé", vendor.id)
    if notice := vendor_service.sepa_name_notice(vendor.name):
        err.print(notice)


@vendor_app.command("iban-request")
def vendor_iban_request(
    vendor_id: Annotated[int, typer.Argument(help="Numéro du commerçant.")],
    iban: Annotated[str, typer.Option(help="Son nouvel IBAN (zone SEPA).")],
    by: _StaffBy,
) -> None:
    """Demander le changement d'IBAN d'un commerçant : une autre personne l'approuve, puis les règlements préparés ensuite le paient."""
    change = run_in_session(lambda s: vendor_service.request_iban_change(s, vendor_id=vendor_id, iban=iban, by=by, os_user=login_name()))
    out.print(change.id)
    err.print(f"Changement d'IBAN {change.id} demandé pour le commerçant {vendor_id} : {change.iban}. Une autre personne"
              f" l'approuve avec « caisse vendor iban-approve {change.id} --by <compte> ».")


@vendor_app.command("iban-approve")
def vendor_iban_approve(change_id: Annotated[int, typer.Argument(help="Numéro du changement d'IBAN.")], by: _StaffBy) -> None:
    """Approuver un IBAN demandé (pas par la personne qui l'a demandé) : les règlements préparés ensuite le paient."""
    vendor = run_in_session(lambda s: vendor_service.approve_iban_change(s, change_id=change_id, by=by, os_user=login_name()))
    out.print(vendor.id)
    err.print(f"IBAN du commerçant {vendor.id} ({vendor.name}) : {vendor.iban}, pour les règlements préparés désormais.")


@vendor_app.command("iban-reject")
def vendor_iban_reject(change_id: Annotated[int, typer.Argument(help="Numéro du changement d'IBAN.")], by: _StaffBy) -> None:
    """Refuser (ou retirer) un IBAN demandé : l'IBAN du commerçant reste tel quel."""
    change = run_in_session(lambda s: vendor_service.reject_iban_change(s, change_id=change_id, by=by, os_user=login_name()))
    out.print(change.id)
    err.print(f"Changement d'IBAN {change_id} refusé : l'IBAN du commerçant {change.vendor_id} reste inchangé.")


# Accreditation ("conventionnement"): French commands -------------------------------------------

accreditation_app = typer.Typer(help="Conventionnement des commerçants : critères, visite, formation, dates et statut.",
                                no_args_is_help=True)
vendor_app.add_typer(accreditation_app, name="conventionnement")
_Par = Annotated[str, typer.Option("--par", help="Votre compte de la console (adresse e-mail, actif) ; le journal note aussi"
                                                 " l'utilisateur du système.")]
_NONE = "aucune"


def _cli_date(text: str | None, current: date | None) -> date | None:
    """A date option: absent keeps `current`, « aucune » clears it, else AAAA-MM-JJ."""
    if text is None:
        return current
    if text.strip().lower() == _NONE:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        err.print(f"[red]Erreur :[/red] date invalide « {text} » : écrivez AAAA-MM-JJ, ou « {_NONE} » pour l'effacer.")
        raise typer.Exit(code=1) from None


@accreditation_app.command("afficher")
def accreditation_show(vendor_id: Annotated[int, typer.Argument(help="Numéro du commerçant.")]) -> None:
    """Afficher le conventionnement d'un commerçant : statut, dates, visite, formation, critères."""
    from caisse.vendors import accreditation

    def read(session: Session) -> tuple[accreditation.Accreditation, list[tuple[int, str, bool]]]:
        now = accreditation.current(session, vendor_id=vendor_id)
        return now, [(c.id or 0, c.label, c.retired) for c in accreditation.criteria(session, include_retired=True)]

    now, criteria = run_in_session(read)
    typer.echo(f"statut\t{accreditation.STATUS_LABELS.get(now.status, now.status)}")
    for label, value in (("début", now.starts_on), ("fin", now.ends_on), ("visite le", now.visited_on),
                         ("visite par", now.visited_by), ("formation le", now.trained_on)):
        typer.echo(f"{label}\t{value if value is not None else '—'}")
    for criterion_id, label, retired in criteria:
        if not retired or criterion_id in now.criteria:
            typer.echo(f"critère {criterion_id}\t{'oui' if criterion_id in now.criteria else 'non'}\t{label}")


@accreditation_app.command("modifier")
def accreditation_change(
    vendor_id: Annotated[int, typer.Argument(help="Numéro du commerçant.")],
    by: _Par,
    statut: Annotated[str | None, ACCREDITATION_STATUS.option(help="Nouveau statut.")] = None,
    debut: Annotated[str | None, typer.Option(help="Premier jour (AAAA-MM-JJ, ou « aucune »).")] = None,
    fin: Annotated[str | None, typer.Option(help="Dernier jour (AAAA-MM-JJ, ou « aucune »).")] = None,
    visite_le: Annotated[str | None, typer.Option(help="Date de la visite (AAAA-MM-JJ, ou « aucune »).")] = None,
    visite_par: Annotated[str | None, typer.Option(help="Qui a fait la visite (« aucune » pour l'effacer).")] = None,
    formation_le: Annotated[str | None, typer.Option(help="Date de la formation (AAAA-MM-JJ, ou « aucune »).")] = None,
    cocher: Annotated[list[int] | None, typer.Option(help="Critère rempli (numéro ; l'option se répète).")] = None,
    decocher: Annotated[list[int] | None, typer.Option(help="Critère qui n'est plus rempli (numéro ; l'option se répète).")] = None,
    oui: Annotated[bool, typer.Option("--oui", help="Appliquer les changements affichés.")] = False,
) -> None:
    """Modifier un conventionnement : affiche ce qui change, puis l'applique avec --oui."""
    from caisse.vendors import accreditation

    def change(session: Session) -> list[accreditation.Change]:
        now = accreditation.current(session, vendor_id=vendor_id)
        wanted = accreditation.Accreditation(
            status=now.status if statut is None else statut,
            starts_on=_cli_date(debut, now.starts_on), ends_on=_cli_date(fin, now.ends_on),
            visited_on=_cli_date(visite_le, now.visited_on),
            visited_by=now.visited_by if visite_par is None else (None if visite_par.strip().lower() == _NONE else visite_par.strip()),
            trained_on=_cli_date(formation_le, now.trained_on),
            criteria=(now.criteria | frozenset(cocher or ())) - frozenset(decocher or ()))
        changes = accreditation.preview(session, vendor_id=vendor_id, wanted=wanted)
        if changes and oui:
            accreditation.update(session, vendor_id=vendor_id, wanted=wanted, by=by, os_user=login_name())
        return changes

    changes = run_in_session(change)
    if not changes:
        err.print("Rien ne change : le conventionnement est déjà ainsi.")
        return
    for c in changes:
        err.print(f"{c.field} : {c.before} → {c.after}", markup=False, highlight=False)
    if not oui:
        err.print("[red]Rien n'est enregistré :[/red] relancez avec --oui pour appliquer ces changements.")
        raise typer.Exit(code=1)
    err.print(f"Conventionnement du commerçant {vendor_id} enregistré ; ses terminaux l'apprennent à leur prochaine synchronisation.")


@accreditation_app.command("criteres")
def accreditation_criteria() -> None:
    """Lister les critères de conventionnement (numéro, en vigueur ou retiré, libellé)."""
    from caisse.vendors import accreditation

    rows = run_in_session(lambda s: [(c.id, c.retired, c.label) for c in accreditation.criteria(s, include_retired=True)])
    for criterion_id, retired, label in rows:
        typer.echo(f"{criterion_id}\t{'retiré' if retired else 'en vigueur'}\t{label}")


@accreditation_app.command("ajouter-critere")
def accreditation_add_criterion(label: Annotated[str, typer.Argument(help="Le critère, en 200 caractères au plus.")],
                                by: _Par) -> None:
    """Ajouter un critère, demandé désormais à chaque commerce conventionné."""
    from caisse.vendors import accreditation

    criterion = run_in_session(lambda s: accreditation.add_criterion(s, label=label, by=by, os_user=login_name()))
    _created("Critère ajouté", criterion.id)


@accreditation_app.command("retirer-critere")
def accreditation_retire_criterion(criterion_id: Annotated[int, typer.Argument(help="Numéro du critère.")], by: _Par) -> None:
    """Retirer un critère : il n'est plus demandé ; les commerces qui le remplissaient le gardent coché."""
    from caisse.vendors import accreditation

    run_in_session(lambda s: accreditation.retire_criterion(s, criterion_id=criterion_id, by=by, os_user=login_name()))
    err.print(f"Critère {criterion_id} retiré.")


@accreditation_app.command("a-renouveler")
def accreditation_ending(jours: Annotated[int, typer.Option(help="Horizon, en jours.")] = 30) -> None:
    """Lister les conventionnements actifs qui se terminent bientôt (commerçant, nom, dernier jour, jours restants)."""
    from datetime import datetime

    from caisse.vendors import accreditation

    today = datetime.now(ZoneInfo(Settings().settlement_timezone)).date()
    for e in run_in_session(lambda s: accreditation.ending_soon(s, today=today, days=jours)):
        typer.echo(f"{e.vendor_id}\t{e.name}\t{e.ends_on}\t{e.days_left}")


@member_app.command("add")
def member_add(
    name: Annotated[str, typer.Option(help="Nom du foyer.")],
    members: Annotated[int, typer.Option(help="Nombre de personnes du foyer.")],
    zone: Annotated[str, typer.Option(help="Quartier.")],
) -> None:
    """Inscrire un foyer membre (hors tirage au sort : un foyer tiré au sort est créé par « sortition accepter »)."""
    household = run_in_session(lambda s: household_service.create_household(s, name=name, members=members, zone=zone))
    _created("Foyer créé", household.id)


@member_app.command("set-code")
def member_set_code(household_id: Annotated[int, typer.Argument(help="Numéro du foyer.")]) -> None:
    """Donner au foyer un code de 4 chiffres (demandé deux fois, jamais affiché)."""
    from caisse.cards import member_codes

    code = ask_twice("Code du foyer (4 chiffres)")
    run_in_session(lambda s: member_codes.set_code(s, household_id=household_id, code=code))
    err.print(f"Code enregistré pour le foyer {household_id} : les terminaux le recevront à leur prochaine synchronisation.")


@member_app.command("clear-code")
def member_clear_code(household_id: Annotated[int, typer.Argument(help="Numéro du foyer.")]) -> None:
    """Retirer le code du foyer."""
    from caisse.cards import member_codes

    run_in_session(lambda s: member_codes.clear_code(s, household_id=household_id))
    err.print(f"Code supprimé pour le foyer {household_id}.")


@member_app.command("partir")
def member_leave(
    household_id: Annotated[int, typer.Argument(help="Numéro du foyer.")],
    end_date: Annotated[str, typer.Option("--date", help="Date de départ, AAAA-MM-JJ (heure de Paris) : l'allocation de ce mois est la dernière.")],
    by: _StaffBy,
) -> None:
    """Enregistrer le départ d'un foyer : ses cartes sont bloquées à la date de départ, son solde revient au fonds
    après le délai hors ligne des terminaux (« appliquer-departs »). Irréversible."""
    from caisse.members import service as members

    day = _iso_date(end_date)
    household = run_in_session(lambda s: members.leave_household(s, household_id=household_id, end_date=day, by=by, os_user=login_name()))
    out.print(household.id)
    blocked = "cartes bloquées" if household.leaving_blocked_at else "cartes bloquées le jour du départ par « appliquer-departs »"
    err.print(f"Départ du foyer {household_id} enregistré au {day:%d/%m/%Y} ; {blocked}.")


@member_app.command("appliquer-departs")
def member_apply_departures(
    by: Annotated[str, typer.Option(help="automatique (le minuteur de la nuit) "
                                         "ou votre compte de la console (adresse e-mail, actif).")] = "automatique",
) -> None:
    """Étape du minuteur (une fois par jour) : bloquer les cartes des foyers dont le départ est arrivé, et rendre
    au fonds le solde de ceux dont le délai hors ligne des terminaux est passé. Sans effet quand tout est fait."""
    from caisse.members import service as members

    settings = Settings()
    report = run_in_session(lambda s: members.apply_departures(s, settings=settings, by=by, os_user=login_name()))
    err.print(f"Cartes bloquées : {len(report.cards_blocked)} foyer(s) ; soldes rendus au fonds : {euros(report.returned_cents)} € ;"
              f" enregistrements antérieurs au départ couverts : {euros(report.covered_cents)} € ;"
              f" en attente du délai hors ligne : {len(report.waiting)} foyer(s).")


@member_app.command("donnees")
def member_personal_data(
    by: _StaffBy,
    household: Annotated[int | None, typer.Option("--foyer", help="Numéro du foyer.")] = None,
    volunteer: Annotated[int | None, typer.Option("--volontaire", help="Identifiant du volontaire (page du tirage).")] = None,
    form: Annotated[str, typer.Option("--format", help="json ou csv.")] = "json",
) -> None:
    """Exporter toutes les données d'une personne (droit d'accès) sur la sortie standard. La consultation est journalisée."""
    from caisse.members import service as members

    if form not in ("json", "csv"):
        err.print("[red]Erreur :[/red] le format est json ou csv")
        raise typer.Exit(2)
    data = run_in_session(lambda s: members.personal_data(s, household_id=household, volunteer_id=volunteer, by=by, os_user=login_name()))
    typer.echo(members.personal_data_json(data) if form == "json" else members.personal_data_csv(data), nl=False)


@member_app.command("effacer-anciens")
def member_erase(
    by: Annotated[str, typer.Option(help="automatique (un minuteur) ou votre compte de la console (adresse e-mail, actif).")] = "automatique",
) -> None:
    """Effacer noms et contacts des anciens membres partis depuis plus de CAISSE_RETENTION_MONTHS mois (et des volontaires
    jamais devenus membres) : pseudonymes dans les tables, le journal et les exports ; montants intacts. Irréversible,
    sauf dans les sauvegardes antérieures (voir docs/guide/adhesion.md)."""
    from caisse.members import service as members

    settings = Settings()
    report = run_in_session(lambda s: members.erase_former_members(s, settings=settings, by=by, os_user=login_name()))
    err.print(f"Données effacées : {len(report.households)} foyer(s), {len(report.volunteers)} volontaire(s),"
              f" {report.audit_events} entrée(s) du journal pseudonymisées.")


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        err.print(f"[red]Erreur :[/red] date attendue au format AAAA-MM-JJ, pas {text!r}")
        raise typer.Exit(2) from None


@card_app.command("issue")
def card_issue(
    household: Annotated[int, typer.Option(help="Numéro du foyer.")],
    uid: Annotated[str, typer.Option(help="Identifiant de la carte en hexadécimal (4, 7 ou 10 octets ; 7 pour une carte sécurisée).")],
    by: _StaffBy,
    card_type: Annotated[str, typer.Option("--type", help="basic (simple : l'identifiant seul, plafond plus bas) "
                                                          "ou secure (NTAG 424 DNA).")] = "basic",
) -> None:
    """Remettre une carte à un foyer (un foyer peut en avoir plusieurs), ou une carte rendue à nouveau."""
    card = run_in_session(lambda s: card_service.issue_card(s, household_id=household, uid_hex=uid, card_type=card_type, by=by,
                                                     os_user=login_name()))
    _created("Carte émise", card.id)




@card_app.command("block")
def card_block(
    uid: Annotated[str, typer.Argument(help="Identifiant de la carte en hexadécimal.")],
    by: _StaffBy,
    reason: Annotated[str, BLOCK_REASON.option("--motif", "--reason", help="Pourquoi.")] = "perdue",
) -> None:
    """Bloquer maintenant une carte perdue ou volée : les terminaux la refusent après leur prochaine synchronisation."""
    card = run_in_session(lambda s: card_service.block_card(s, uid_hex=uid, reason=reason, by=by, os_user=login_name()))
    out.print(card.id)
    err.print(f"Carte {uid.lower()} bloquée ; les terminaux la refuseront après leur prochaine synchronisation.")


@card_app.command("unblock")
def card_unblock(uid: Annotated[str, typer.Argument(help="Identifiant de la carte en hexadécimal.")], by: _StaffBy) -> None:
    """Débloquer une carte perdue puis retrouvée ; une carte volée, copiée ou remplacée se remplace (caisse card replace)."""
    card = run_in_session(lambda s: card_service.unblock_card(s, uid_hex=uid, by=by, os_user=login_name()))
    out.print(card.id)
    err.print(f"Carte {card.uid.hex()} débloquée : les terminaux l'acceptent à nouveau après leur prochaine synchronisation.")


@card_app.command("replace")
def card_replace(
    uid: Annotated[str, typer.Argument(help="Identifiant de la carte à remplacer, en hexadécimal.")],
    new_uid: Annotated[str, typer.Option(help="Identifiant de la nouvelle carte, en hexadécimal.")],
    by: _StaffBy,
    card_type: Annotated[str | None, typer.Option("--type", help="basic ou secure (par défaut : comme l'ancienne carte).")] = None,
) -> None:
    """Remettre au foyer une nouvelle carte et bloquer l'ancienne ; le solde reste celui du foyer."""
    card = run_in_session(lambda s: card_service.replace_card(s, uid_hex=uid, new_uid_hex=new_uid, card_type=card_type, by=by,
                                                       os_user=login_name()))
    out.print(card.id)
    err.print(f"Carte {new_uid.lower()} remise au foyer {card.household_id} ; l'ancienne carte {uid.lower()} est bloquée.")


@card_app.command("return")
def card_return(uid: Annotated[str, typer.Argument(help="Identifiant de la carte en hexadécimal.")], by: _StaffBy) -> None:
    """Enregistrer une carte rendue (remettez-la aussi à zéro) : refusée désormais, elle pourra être remise à un foyer."""
    run_in_session(lambda s: card_service.return_card(s, uid_hex=uid, by=by, os_user=login_name()))
    err.print(f"Carte {uid.lower()} rendue : refusée désormais, elle pourra être remise à un foyer.")


@card_app.command("show")
def card_show(uid: Annotated[str, typer.Argument(help="Identifiant de la carte en hexadécimal.")]) -> None:
    """L'état d'une carte : type, état, pourquoi elle est bloquée, codes faux par terminal."""
    from caisse.cards import authentication as card_auth
    from caisse.cards import member_codes

    def read(session: Session) -> tuple[Card, list[member_codes.CardFailures]]:
        card = card_service.get_card(session, uid_hex=uid)
        assert card.id is not None
        return card, member_codes.card_failures(session, card_id=card.id)

    card, failures = run_in_session(read)
    kind = "sécurisée" if card.card_type == "secure" else "simple"
    typer.echo(f"Carte {card.uid.hex()} ({kind}), foyer {card.household_id} : {_CARD_STATUS_FR[card.status]}")
    if card.blocked_at is not None:
        reason = card_auth.BLOCK_REASON_FR.get(card.block_reason or "", _CARD_STATUS_FR[card.status])
        typer.echo(f"  refusée depuis {card.blocked_at:%Y-%m-%d %H:%M} UTC ({reason})")
    if card.flag_reason:
        typer.echo(f"  signalée : {card.flag_reason}")
    for failure in failures:
        locked = ", verrouillée sur ce terminal" if failure.locked else ""
        typer.echo(f"  terminal {failure.terminal_id} : {failure.failures} code(s) faux{locked}")


_CARD_STATUS_FR = {"active": "active", "blocked": "bloquée", "returned": "rendue"}
_SUN_ERRORS_FR = {
    "bad_key": "une clé fait 16 octets (32 caractères hexadécimaux)",
    "bad_length": "--picc fait 16 octets et --cmac 8 (32 et 16 caractères hexadécimaux)",
    "bad_picc_tag": "les données PICC ne se déchiffrent pas avec cette clé méta (mauvaise clé, ou message altéré)",
}


@card_app.command("verify-sun")
def card_verify_sun(
    meta_key: Annotated[str, typer.Option(help="Clé SDM de lecture des métadonnées, 16 octets en hexadécimal.")],
    file_key: Annotated[str, typer.Option(help="Clé SDM de lecture du fichier (diversifiée pour la carte), 16 octets en hexadécimal.")],
    picc: Annotated[str, typer.Option(help="Données PICC chiffrées, 16 octets en hexadécimal.")],
    cmac: Annotated[str, typer.Option(help="SDMMAC, 8 octets en hexadécimal.")],
    as_json: Annotated[bool, typer.Option("--json", help="Un objet JSON (clés en anglais).")] = False,
) -> None:
    """Vérifier un message SUN d'une carte sécurisée : sortie 0 si le MAC est valide, 1 sinon, 2 s'il est illisible."""
    try:
        message = sun.verify_sun(
            meta_key=bytes.fromhex(meta_key),
            file_key=bytes.fromhex(file_key),
            picc_data=bytes.fromhex(picc),
            mac=bytes.fromhex(cmac),
        )
    except ValueError as error:  # bytes.fromhex; SunError is not a ValueError
        err.print(f"[red]Erreur :[/red] chaque valeur s'écrit en hexadécimal ({error})")
        raise typer.Exit(code=2) from None
    except sun.SunError as error:
        err.print(f"[red]Erreur :[/red] {_SUN_ERRORS_FR.get(error.code, error.detail)} ({error.code})")
        raise typer.Exit(code=2) from None
    if as_json:
        typer.echo(json.dumps({"uid": message.uid.hex(), "counter": message.counter, "mac_valid": message.mac_valid}))
    else:
        out.print(f"UID {message.uid.hex()}, compteur de lecture {message.counter}, MAC {'valide' if message.mac_valid else 'INVALIDE'}")
    if not message.mac_valid:
        raise typer.Exit(code=1)


@card_app.command("personalize")
def card_personalize(
    member: Annotated[int, typer.Option(help="Numéro du foyer qui reçoit la carte.")],
    by: _StaffBy,
    port: Annotated[str, typer.Option(help="Port série du lecteur USB PN532 (mode HSU).")] = "/dev/ttyUSB0",
    number: Annotated[str | None, typer.Option(help="Numéro imprimé sur la carte, écrit dans son URL.")] = None,
    url: Annotated[str, typer.Option(help="Début de l'URL SUN, sans https://.")] = "caisse.example/c",
) -> None:
    """Personnaliser une NTAG 424 DNA vierge sur un lecteur USB PN532, puis la remettre au foyer comme carte sécurisée."""
    from caisse.cards import authentication as card_auth
    from caisse_common.personalize import personalize

    run_in_session(lambda s: (household_service.get_household(s, household_id=member), accounts.active_user(s, email=by)))  # before touching the card
    keys = card_auth.card_keys(Settings())

    def not_in_use(uid: bytes) -> None:
        """Personalizing restarts the card's read counter: refuse a card that is issued."""
        run_in_session(lambda s: _require_not_issued(s, uid))

    done = _on_card_reader(port, lambda reader: personalize(reader, keys, url_base=url, number=number,
                                                            check_uid=not_in_use))
    card = run_in_session(lambda s: card_service.issue_card(s, household_id=member, uid_hex=done.uid.hex(), card_type="secure", by=by,
                                                     os_user=login_name()))
    _created("Carte émise", card.id)


def _require_not_issued(session: Session, uid: bytes) -> None:
    from caisse.errors import Conflict, NotFound
    from caisse.models import CardStatus

    try:
        card = card_service.get_card(session, uid_hex=uid.hex())
    except NotFound:
        return
    if card.status != CardStatus.RETURNED:
        raise Conflict("card_in_use", f"la carte {uid.hex()} est déjà émise ; rendez-la d'abord avec "
                                      "« caisse card wipe » avant de la personnaliser à nouveau")


@card_app.command("wipe")
def card_wipe(
    by: _StaffBy,
    port: Annotated[str, typer.Option(help="Port série du lecteur USB PN532 (mode HSU).")] = "/dev/ttyUSB0",
) -> None:
    """Remettre à zéro une carte sécurisée rendue (clés d'usine, plus de message SUN) et enregistrer son retour."""
    from caisse.cards import authentication as card_auth
    from caisse.errors import NotFound
    from caisse_common.personalize import wipe

    run_in_session(lambda s: accounts.active_user(s, email=by))  # before touching the card
    keys = card_auth.card_keys(Settings())
    uid = _on_card_reader(port, lambda reader: wipe(reader, keys)).hex()

    def record_return(session: Session) -> bool:
        try:
            card_service.return_card(session, uid_hex=uid, by=by, os_user=login_name())
        except NotFound:
            return False
        return True

    known = run_in_session(record_return)
    out.print(uid)
    err.print(f"Carte {uid} remise à zéro" + (" et enregistrée comme rendue." if known else " (elle n'était pas émise)."))


def _on_card_reader(port: str, action: Callable[[PN532Uart], T]) -> T:
    """Run `action` with the USB PN532 on `port`; a French error and exit code 1 if it fails."""
    from caisse_common import pn532_uart
    from caisse_common.personalize import PersonalizationError

    try:
        return action(pn532_uart.PN532Uart(pn532_uart.open_port(port)))
    except (PersonalizationError, pn532_uart.ReaderError) as error:
        err.print(f"[red]Erreur :[/red] {error}")
        raise typer.Exit(code=1) from None


@terminal_app.command("register")
def terminal_register(
    vendor: Annotated[int, typer.Option(help="Numéro du commerçant.")],
    public_key: Annotated[str, typer.Option(help="Clé publique P-256 non compressée de 65 octets, en hexadécimal.")],
) -> None:
    """Enregistrer un terminal ; affiche son numéro."""
    terminal = run_in_session(lambda s: terminal_registry.register_terminal(s, vendor_id=vendor, public_key_hex=public_key))
    _created("Terminal enregistré", terminal.id)


@terminal_app.command("revoke")
def terminal_revoke(
    terminal_id: Annotated[int, typer.Argument(help="Numéro du terminal.")],
    by: _StaffBy,
) -> None:
    """Révoquer un terminal (définitif) : ses requêtes sont refusées désormais ; ses enregistrements non réglés sont retenus."""
    terminal = run_in_session(lambda s: terminal_decisions.revoke_terminal(s, terminal_id=terminal_id, by=by, os_user=login_name()))
    out.print(terminal.id)
    err.print(f"Terminal {terminal_id} révoqué : ses requêtes sont refusées désormais. Ses enregistrements non réglés"
              f" attendent une décision : caisse review list, caisse review release-all|reject-all --terminal {terminal_id}.")


@terminal_app.command("perte")
def terminal_accept_loss(
    terminal_id: Annotated[int, typer.Argument(help="Numéro du terminal.")],
    by: Annotated[str, typer.Option(help="Votre compte de la console (inscrit au journal).")],
) -> None:
    """Constater la perte des enregistrements qu'un terminal n'a plus, après une restauration de la base
    (docs/operations.md, « Terminals after a restore ») : le terminal peut de nouveau libérer sa mémoire."""
    first, last = run_in_session(lambda s: terminal_decisions.accept_lost_records(s, terminal_id=terminal_id, by=by, os_user=login_name()))
    out.print(terminal_id)
    err.print(f"Terminal {terminal_id} : perte des n° {first} à {last} constatée par {by}. Le paiement qui suit"
              " sera réglé au prochain règlement.")


@terminal_app.command("clear")
def terminal_clear(
    terminal_id: Annotated[int, typer.Argument(help="Numéro du terminal.")],
    by: _StaffBy,
) -> None:
    """Remettre en service un terminal signalé suspect ; ses enregistrements retenus le restent jusqu'à décision."""
    run_in_session(lambda s: terminal_decisions.clear_suspect_terminal(s, terminal_id=terminal_id, by=by, os_user=login_name()))
    out.print(terminal_id)
    err.print(f"Terminal {terminal_id} remis en service par {by}. Ses enregistrements retenus attendent toujours une"
              f" décision : caisse review list, caisse review release-all|reject-all --terminal {terminal_id}.")


_Month = Annotated[str, typer.Option(help="Mois, AAAA-MM.")]


@app.command()
def allocate(month: Annotated[str, typer.Option(help="Mois à créditer, AAAA-MM.")], by: _StaffBy) -> None:
    """Créditer à chaque foyer son allocation du mois (une seconde fois, seuls les foyers manquants le sont)."""
    from caisse.fund import allowances

    report = run_in_session(lambda s: allowances.allocate(s, month=month, settings=Settings(), by=by, os_user=login_name()))
    out.print(report.credited_cents)
    err.print(f"{report.month} : {report.credited_households} foyer(s) crédité(s) de {euros(report.credited_cents)} EUR"
              f" (déjà crédités : {report.already_credited}) ; reliquats rendus au fonds :"
              f" {euros(report.expired_cents)} EUR de {report.expired_households} foyer(s).")
    for household_id, posted, now in report.differing:
        err.print(f"[yellow]Foyer {household_id} : crédité de {euros(posted)} EUR auparavant, les règles donnent"
                  f" maintenant {euros(now)} EUR ; laissé tel quel.[/yellow]")


rule_app = typer.Typer(help="La règle d'allocation choisie par le comité citoyen, à partir d'un mois.", no_args_is_help=True)
app.add_typer(rule_app, name="allowance-rule")


@rule_app.command("set")
def allowance_rule_set(
    effective: Annotated[str, typer.Option("--from", help="Premier mois où la règle s'applique, AAAA-MM.")],
    by: _StaffBy,
    rule: Annotated[str | None, typer.Option(help="flat (forfait), per_member (par membre) "
                                                  "ou average_contribution (moyenne des cotisations).")] = None,
    flat: Annotated[str | None, typer.Option(help="flat : euros par foyer.")] = None,
    base: Annotated[str | None, typer.Option(help="per_member : euros pour le premier membre.")] = None,
    per_extra_member: Annotated[str | None, typer.Option(help="per_member : euros par membre supplémentaire.")] = None,
    pro_rata: Annotated[bool | None, typer.Option("--pro-rata/--no-pro-rata",
                                                  help="Au prorata des jours restants pour un foyer arrivé en cours de mois.")] = None,
    unspent: Annotated[str | None, typer.Option(help="carry_over (reliquat gardé jusqu'au plafond) ou expire (rendu au fonds).")] = None,
    cap: Annotated[str | None, typer.Option(help="carry_over : euros qu'un foyer peut garder.")] = None,
) -> None:
    """Fixer la règle à partir d'un mois ; ce qui n'est pas donné reste comme dans la règle alors en vigueur."""
    from caisse.fund import allowances

    def cents(value: str | None) -> int | None:
        return None if value is None else parse_euros(value, zero_allowed=True)

    new = run_in_session(lambda s: allowances.set_rule(
        s, effective_month=effective, by=by, settings=Settings(), rule=rule, flat_cents=cents(flat),
        base_cents=cents(base), per_extra_member_cents=cents(per_extra_member), pro_rata=pro_rata, unspent=unspent,
        carry_over_cap_cents=cents(cap), os_user=login_name()))
    typer.echo(f"Règle d'allocation enregistrée par {by}, applicable à partir de {new.effective_month} : {allowances.rule_text(new)}", err=True)


@rule_app.command("show")
def allowance_rule_show(month: Annotated[str | None, typer.Option(help="AAAA-MM (par défaut : ce mois-ci).")] = None) -> None:
    """Afficher la règle en vigueur pour un mois, puis chaque règle enregistrée."""
    from caisse.fund import allowances
    from caisse.members import means

    month = month or str(means.current_month(Settings()))  # this month in Paris, not on the server's clock
    settings = Settings()
    in_force, recorded = run_in_session(lambda s: (allowances.rule_in_force(s, month=month, settings=settings), allowances.list_rules(s)))
    source = f"depuis {in_force.effective_month}" if in_force.effective_month else "réglages par défaut, aucune règle enregistrée"
    typer.echo(f"{month} : {allowances.rule_text(in_force)} ({source})")  # echo: rich would wrap the sentence
    for recorded_rule in recorded:
        typer.echo(f"  à partir de {recorded_rule.effective_month} : {allowances.rule_text(recorded_rule)}")


@app.command("close-month")
def close_month(month: Annotated[str, typer.Argument(help="Mois à clôturer, AAAA-MM.")], by: _StaffBy) -> None:
    """Clôturer un mois : il ne peut plus être alloué (définitif)."""
    from caisse.fund import allowances

    run_in_session(lambda s: allowances.close_month(s, month=month, by=by, os_user=login_name()))
    err.print(f"Mois {month} clôturé : il ne peut plus être alloué.")


@app.command()
def settle(
    day: Annotated[str | None, typer.Option("--date", help="Journée à régler, AAAA-MM-JJ (par défaut : hier).")] = None,
    by: Annotated[str, typer.Option(help="automatique (le minuteur de la nuit) "
                                         "ou votre compte de la console (adresse e-mail, actif).")] = "automatique",
) -> None:
    """Régler une journée : préparer (puis approuver et exporter, si aucune seconde personne n'est requise) ; affiche le numéro du règlement."""
    from caisse.settlement import runs as settlement

    run_date = _settlement_date(day)
    settings = Settings()
    try:
        with open_engine(settings) as engine:
            result = settlement.settle(session_factory(engine), run_date=run_date, settings=settings, by=by,
                                       os_user=login_name())
            if result.status == SettlementStatus.PREPARED:
                _print_payees(session_factory(engine), result.run_id)
    except CaisseError as error:
        fail(error)
    out.print(result.run_id)
    err.print(f"Règlement {result.run_id} du {run_date} : {_RUN_STATUS_FR[result.status]} ; {result.paid_records}"
              f" enregistrement(s), {euros(result.paid_cents)} EUR à payer.")
    for vendor_id, amount_cents, reason in result.held:
        err.print(f"[yellow]Commerçant {vendor_id} : {euros(amount_cents)} EUR retenus : {reason}[/yellow]")
        if reason == settlement.HELD_REVIEW:
            err.print(f"  Décider : caisse review list --vendor {vendor_id}, puis caisse review release|reject <enregistrement>.")
    for difference in result.differences:
        err.print(f"[red]Écart entre compte et enregistrements :[/red] {difference.french()}")
    if result.status == SettlementStatus.PREPARED:
        err.print(f"En attente d'approbation : caisse settle-approve {result.run_id} --by <trésorier>, puis relancer caisse settle.")
    elif result.output_dir:
        err.print(f"Fichiers : {result.output_dir}")


_RUN_STATUS_FR = {"prepared": "préparé", "approved": "approuvé", "exported": "exporté"}


@app.command("settle-approve")
def settle_approve(
    run_id: Annotated[int, typer.Argument(help="Numéro du règlement.")],
    by: Annotated[str, typer.Option(help="Votre compte de la console (actif, pas celui qui a préparé le règlement).")],
) -> None:
    """Approuver un règlement préparé (la seconde personne) : affiche les virements qu'il paie."""
    from caisse.settlement import runs as settlement

    run = run_in_session(lambda s: settlement.approve_run(s, run_id=run_id, by=by, settings=Settings(), os_user=login_name()))
    out.print(run.id)
    err.print(f"Règlement {run_id} : {_RUN_STATUS_FR[run.status]}, approuvé par {run.approved_by}.")
    with open_engine(Settings()) as engine:
        _print_payees(session_factory(engine), run_id)


def _print_payees(sessions: Callable[[], Session], run_id: int) -> None:
    """The transfers as the bank will receive them: frozen when the run was prepared."""
    from caisse.settlement import runs as settlement

    with sessions() as session:
        payouts = settlement.run_payouts(session, run_id=run_id)
    err.print("Virements (bénéficiaire tel que transmis à la banque, IBAN, BIC, montant) :")
    for payout in payouts:
        err.print(f"  commerçant {payout.vendor_id} : {sepa_text(payout.name)}, {payout.iban}, {payout.bic or 'BIC inconnu'},"
                  f" {euros(payout.amount_cents)} EUR")


def _settlement_date(day: str | None) -> date:
    if day is None:
        return date.today() - timedelta(days=1)
    try:
        return date.fromisoformat(day)
    except ValueError:
        err.print(f"[red]Erreur :[/red] une date s'écrit AAAA-MM-JJ, pas {day!r}")
        raise typer.Exit(code=1) from None


fund_app = typer.Typer(help="Cotisations, abondement, subventions et frais (montants en euros, par exemple 12,50).", no_args_is_help=True)
app.add_typer(fund_app, name="fund")


@fund_app.command("contribute")
def fund_contribute(
    household: Annotated[int, typer.Option(help="Numéro du foyer.")],
    month: _Month,
    amount: Annotated[str, typer.Option(help="Euros, par exemple 25,00.")],
    by: _StaffBy,
    reference: Annotated[str | None, typer.Option(help="Référence (numéro de reçu) : la même référence n'est enregistrée qu'une fois.")] = None,
) -> None:
    """Enregistrer la cotisation du mois d'un foyer."""
    from caisse.fund import service as fund

    created = run_in_session(lambda s: fund.record_contribution(s, household_id=household, month=month, amount_cents=parse_euros(amount),
                                                                settings=Settings(), reference=reference, by=by, os_user=login_name()))
    _recorded(created, "Cotisation enregistrée.")


def _recorded(created: bool, sentence: str) -> None:
    """What an idempotent fund command did: `sentence`, or nothing new for a reference seen before."""
    err.print(sentence if created else "Déjà enregistré sous cette référence : rien de changé.")


@fund_app.command("import")
def fund_import(
    path: Annotated[Path, typer.Argument(help="CSV : foyer, mois, montant, référence (ou household_id, month, amount_eur, reference).",
                                         exists=True, dir_okay=False)],
    by: _StaffBy,
    skip_errors: Annotated[bool, typer.Option("--skip-errors", help="Importer les lignes valides même si d'autres sont fausses.")] = False,
) -> None:
    """Importer les cotisations du fichier CSV de la plateforme de paiement ; rien n'est importé d'un fichier qui a des erreurs."""
    from caisse.fund import service as fund

    content = path.read_bytes()
    report = run_in_session(lambda s: fund.import_contributions(s, content=content, settings=Settings(), skip_errors=skip_errors,
                                                                by=by, os_user=login_name()))
    for line, problem in report.errors:
        err.print(f"[red]ligne {line} :[/red] {french(problem)}")
    out.print(report.imported)
    err.print(f"{report.imported} cotisation(s) importée(s) ({euros(report.imported_cents)} EUR), {report.already} déjà"
              f" présente(s), frais de la plateforme {euros(report.fee_cents)} EUR.")
    if report.errors and not skip_errors:
        err.print("Rien n'est importé : corrigez les lignes ci-dessus, ou relancez avec --skip-errors.")
        raise typer.Exit(code=1)


@fund_app.command("match")
def fund_match(month: _Month, by: _StaffBy) -> None:
    """Verser l'abondement du partenaire encore dû pour le mois."""
    from caisse.fund import service as fund

    posted = run_in_session(lambda s: fund.record_matching(s, month=month, settings=Settings(), by=by, os_user=login_name()))
    out.print(posted)
    err.print(f"Abondement de {month} : {euros(posted)} EUR versés au fonds." if posted
              else f"Abondement de {month} : rien de plus n'est dû.")


@fund_app.command("grant")
def fund_grant(
    month: _Month, amount: Annotated[str, typer.Option(help="Euros.")],
    source: Annotated[str, typer.Option(help="Qui la verse.")],
    reference: Annotated[str, typer.Option(help="Référence (numéro de pièce) : la même n'est enregistrée qu'une fois.")],
    by: _StaffBy,
) -> None:
    """Enregistrer une subvention reçue."""
    from caisse.fund import service as fund

    created = run_in_session(lambda s: fund.record_grant(s, month=month, amount_cents=parse_euros(amount), source=source,
                                                         reference=reference, by=by, os_user=login_name()))
    _recorded(created, f"Subvention de {source} enregistrée pour {month}.")


@fund_app.command("fee")
def fund_fee(
    month: _Month, amount: Annotated[str, typer.Option(help="Euros.")],
    memo: Annotated[str, typer.Option(help="Pour quoi.")],
    reference: Annotated[str, typer.Option(help="Référence (numéro de pièce) : la même n'est enregistrée qu'une fois.")],
    by: _StaffBy,
) -> None:
    """Enregistrer des frais payés (banque, plateforme de paiement)."""
    from caisse.fund import service as fund

    created = run_in_session(lambda s: fund.record_fee(s, month=month, amount_cents=parse_euros(amount), memo=memo, reference=reference,
                                                       by=by, os_user=login_name()))
    _recorded(created, f"Frais enregistrés pour {month} : {memo}.")


ledger_app = typer.Typer(help="Le grand livre : corriger une saisie faite par erreur.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("reverse")
def ledger_reverse(
    reference: Annotated[str, typer.Argument(help="Référence de l'écriture à reprendre (par exemple contribution:RECU-0042).")],
    by: _StaffBy,
    reason: Annotated[str, typer.Option(help="Pourquoi (gardé au grand livre et au journal).")],
) -> None:
    """Contre-passer une allocation, une cotisation, une subvention ou des frais saisis par erreur (une fois ; rien n'est effacé)."""
    from caisse.ledger import corrections

    done = run_in_session(lambda s: corrections.reverse(s, reference=reference, by=by, reason=reason, os_user=login_name()))
    out.print(done.reference)
    err.print(f"Écriture {reference} contre-passée ({euros(done.amount_cents)} EUR) sous la référence {done.reference}."
              if done.created else f"Écriture {reference} déjà contre-passée ({done.reference}) : rien de changé.")


@app.command()
def budget(month: Annotated[str, typer.Option(help="Mois, AAAA-MM.")]) -> None:
    """Le budget du mois au centime près, refait depuis le grand livre ; chaque écart est listé (code de sortie 1 s'il y en a)."""
    from caisse.fund import service as fund

    result = run_in_session(lambda s: fund.budget(s, month=month, settings=Settings()))
    for label, cents in fund.budget_lines(result):
        out.print(f"{label:<46}{euros(cents):>16} EUR")
    for difference in result.differences:
        err.print(f"[red]Écart avec le grand livre :[/red] {difference}")
    if not result.reconciled:
        err.print(f"[red]{len(result.differences)} écart(s) avec le grand livre.[/red]")
        raise typer.Exit(code=1)
    err.print("Rapproché du grand livre : aucun écart.")


def _first_line(error: Exception) -> str:
    """The driver's own message of a database error, without SQLAlchemy's statement and link."""
    return (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0]


@app.command("verify")
def verify() -> None:
    """Vérifier les invariants du grand livre sur la base en service, sans rien y écrire.

    Liste aussi ce qui attend une décision depuis plus de CAISSE_OVERDUE_AFTER_DAYS jours : paiements retenus, cartes bloquées comme copies, foyers et commerçants à solde négatif.

    Code de sortie 0 : tout tient ; 1 : au moins un invariant est rompu (chaque écart est listé) ; 2 : la base est introuvable ou illisible.
    """  # noqa: E501 (one line a paragraph: typer's rich help keeps a docstring's line breaks)
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from caisse.reports import invariants, overdue

    try:
        settings = Settings()
        with open_engine(settings) as engine:
            snapshot = engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True) \
                if engine.dialect.name == "postgresql" else engine
            with session_factory(snapshot)() as session:
                results = invariants.check_all(session)
                waiting = overdue.overdue(session, settings=settings)
                session.rollback()
    except ValidationError as error:
        err.print(f"[red]Erreur :[/red] réglages invalides : {error.errors()[0]['msg']}")
        raise typer.Exit(code=2) from None
    except typer.Exit:  # the database is missing or out of reach: _engine said so
        raise
    except SQLAlchemyError as error:
        err.print(f"[red]Erreur :[/red] la vérification n'a pas pu lire la base : {_first_line(error)}")
        raise typer.Exit(code=2) from None
    except Exception as error:  # a person reads this in a nightly mail: a sentence, not a traceback
        err.print(f"[red]Erreur inattendue pendant la vérification[/red] ({type(error).__name__} : {_first_line(error)})")
        raise typer.Exit(code=2) from None
    broken = 0
    for invariant, problems in results:
        typer.echo(f"{'✗' if problems else '✓'} {invariant.title}")
        for problem in problems:
            typer.echo(f"    – {problem}")
        broken += len(problems)
    if waiting:
        typer.echo(f"En attente d'une personne depuis plus de {settings.overdue_after_days} jour(s) : {len(waiting)}")
        for item in waiting:
            typer.echo(f"    – {item.text}")
    else:
        typer.echo(f"Rien n'attend une personne depuis plus de {settings.overdue_after_days} jour(s).")
    if broken:
        err.print(f"[red]{broken} écart(s) : le grand livre n'est pas sain.[/red]")
        raise typer.Exit(code=1)
    err.print("Tous les invariants du grand livre tiennent.")


review_app = typer.Typer(help="Enregistrements retenus pour vérification : les libérer ou les rejeter.", no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("list")
def review_list(vendor: Annotated[int | None, typer.Option(help="Seulement les enregistrements de ce commerçant.")] = None) -> None:
    """Lister les enregistrements qui attendent une décision (séparés par des tabulations, par commerçant puis du plus ancien)."""
    from caisse.settlement import statements

    settings = Settings()
    held = run_in_session(lambda s: statements.held_for_review(s, vendor_id=vendor))
    clock = statements.LocalClock(ZoneInfo(settings.settlement_timezone))
    typer.echo("\t".join(("enregistrement", "commerçant", "nom", "date", "heure", "terminal", "numéro", "opération",
                          "montant (EUR)", "motif")))
    for record in held:
        day, hour = clock.local(record.time)
        typer.echo("\t".join(str(value) for value in (
            record.record_id, record.vendor_id, record.vendor_name, day, hour, record.terminal_id, record.seq,
            record.kind, euros(record.amount_cents), record.reason)))
    err.print(f"{len(held)} enregistrement(s) en attente de décision.")


_HeldRecordId = Annotated[int, typer.Argument(help="Numéro de l'enregistrement (voir caisse review list).")]


@review_app.command("release")
def review_release(record_id: _HeldRecordId, by: _StaffBy) -> None:
    """Libérer un enregistrement retenu : le prochain règlement paie le commerçant."""
    from caisse.ingest import review

    record = run_in_session(lambda s: review.release(s, record_id=record_id, by=by, os_user=login_name()))
    out.print(record.id)
    err.print(f"Enregistrement {record_id} libéré par {by} : le commerçant sera payé au prochain règlement.")


@review_app.command("reject")
def review_reject(record_id: _HeldRecordId, by: _StaffBy) -> None:
    """Rejeter un enregistrement retenu : le commerçant n'est jamais payé pour lui ; un paiement revient au foyer."""
    from caisse.ingest import review
    from caisse_common.protocol import Kind

    record = run_in_session(lambda s: review.reject(s, record_id=record_id, by=by, os_user=login_name()))
    out.print(record.id)
    err.print(f"Enregistrement {record_id} rejeté par {by} : il ne sera jamais payé au commerçant"
              + (" ; le foyer a été remboursé." if record.kind == Kind.PAYMENT else " ; le paiement annulé reste dû."))


_BulkTerminal = Annotated[int | None, typer.Option("--terminal", help="Tous les enregistrements retenus de ce terminal.")]
_BulkVendor = Annotated[int | None, typer.Option("--vendor", help="Tous les enregistrements retenus de ce commerçant.")]


@review_app.command("release-all")
def review_release_all(by: _StaffBy, terminal: _BulkTerminal = None, vendor: _BulkVendor = None) -> None:
    """Libérer d'un coup tous les enregistrements retenus d'un terminal ou d'un commerçant (chacun inscrit au journal)."""
    _decide_all("release", by=by, terminal=terminal, vendor=vendor)


@review_app.command("reject-all")
def review_reject_all(by: _StaffBy, terminal: _BulkTerminal = None, vendor: _BulkVendor = None) -> None:
    """Rejeter d'un coup tous les enregistrements retenus d'un terminal ou d'un commerçant (chacun inscrit au journal)."""
    _decide_all("reject", by=by, terminal=terminal, vendor=vendor)


def _decide_all(decision: str, *, by: str, terminal: int | None, vendor: int | None) -> None:
    from caisse.ingest import review

    decided = run_in_session(lambda s: review.decide_all(s, decision=review.Decision(decision), by=by, terminal_id=terminal, vendor_id=vendor,
                                                         os_user=login_name()))
    for record_id in decided:
        out.print(record_id)
    done = "libéré(s)" if decision == review.Decision.RELEASE else "rejeté(s)"
    err.print(f"{len(decided)} enregistrement(s) {done} par {by}.")


user_app = typer.Typer(help="Comptes de la console (docs/console.md).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(liste_app, name="liste")
_AdminBy = Annotated[str, typer.Option("--by", help="Votre compte de la console (adresse e-mail d'un administrateur actif) ; "
                                                    "le journal note aussi l'utilisateur du système.")]


@user_app.command("add")
def user_add(
    email: Annotated[str, typer.Argument(help="Adresse e-mail, pour se connecter.")],
    role: Annotated[str, ROLE.option("--role", help="Ce que le compte peut faire.")] = "administration",
    by: Annotated[str | None, typer.Option("--by", help="Votre compte d'administrateur actif ; "
                                                        "sans objet pour le tout premier administrateur.")] = None,
    password: Annotated[str, typer.Option(envvar="CAISSE_NEW_USER_PASSWORD", show_default=False,
                                          help="Demandé deux fois, sans l'afficher, s'il n'est pas donné.")] = "",
) -> None:
    """Créer un compte de la console (le premier administrateur, par exemple) ; le mot de passe est demandé deux fois."""
    if not password:
        password = ask_twice("Mot de passe", again="Mot de passe, une seconde fois")
    user_id = run_in_session(lambda s: accounts.add_account(s, email=email, password=password, role=role, by=by,
                                                            os_user=login_name()).id)
    out.print(user_id)
    err.print(f"Compte créé : {email.strip().lower()} ({role}).")


@user_app.command("disable")
def user_disable(email: Annotated[str, typer.Argument(help="Adresse e-mail du compte.")], by: _AdminBy) -> None:
    """Désactiver un compte (une personne est partie) : elle ne peut plus se connecter, ses sessions ouvertes sont fermées."""
    out.print(run_in_session(lambda s: accounts.set_active(s, email=email, active=False, by=by, os_user=login_name()).id))
    err.print(f"Compte désactivé : {email.strip().lower()} ; ses sessions ouvertes sont fermées.")


@user_app.command("enable")
def user_enable(email: Annotated[str, typer.Argument(help="Adresse e-mail du compte.")], by: _AdminBy) -> None:
    """Réactiver un compte désactivé."""
    out.print(run_in_session(lambda s: accounts.set_active(s, email=email, active=True, by=by, os_user=login_name()).id))
    err.print(f"Compte réactivé : {email.strip().lower()}.")


@user_app.command("reset-password")
def user_reset_password(email: Annotated[str, typer.Argument(help="Adresse e-mail du compte.")], by: _AdminBy) -> None:
    """Donner au compte un mot de passe provisoire, affiché une seule fois ; ses sessions ouvertes sont fermées."""
    password = run_in_session(lambda s: accounts.reset_password(s, email=email, by=by, os_user=login_name()))
    typer.echo(password)  # stdout only, never logged: give it to the person, who changes it in the console
    err.print(f"Mot de passe provisoire de {email.strip().lower()} ci-dessus, affiché une seule fois : transmettez-le"
              " à la personne, qui le change dans la console (Mon mot de passe).")


_FIRMWARE_RUNTIMES = Choices({"cpython": "cpython", "micropython": "micropython"})


@app.command()
def simulate(
    terminals: Annotated[int, typer.Option(help="Terminaux, un par commerçant.")] = 6,
    members: Annotated[int, typer.Option(help="Foyers adhérents.")] = 40,
    days: Annotated[int, typer.Option(help="Jours de marché.")] = 2,
    seed: Annotated[int, typer.Option(help="Graine : même graine, même déroulé, octet pour octet.")] = 1,
    seeds: Annotated[int, typer.Option(help="Nombre de graines à partir de --seed : une ligne chacune, et la durée.")] = 1,
    power_cuts: Annotated[int, typer.Option(help="Coupures de courant, à des moments d'écriture tirés au hasard.")] = 2,
    network_drops: Annotated[int, typer.Option(help="Pannes de réseau : heures hors ligne, envois coupés avant ou après, "
                                                    "lots envoyés deux fois, envois corrompus.")] = 5,
    clones: Annotated[int, typer.Option(help="Cartes clonées : copies de l'UID de cartes simples, messages SUN rejoués de cartes sécurisées.")] = 2,
    adversaries: Annotated[bool, typer.Option("--adversaries/--no-adversaries",
                                              help="Acteurs hostiles ou maladroits : achats en rafale hors ligne, horloge menteuse, "
                                                   "faux dépassements, flot de déchets, personnel qui agit au mauvais moment, "
                                                   "IBAN changé pendant un règlement, crédit saisi deux fois.")] = True,
    db: Annotated[str | None, typer.Option(help="Adresse d'une base vide (par défaut : un fichier SQLite temporaire).")] = None,
    firmware_runtime: Annotated[str, _FIRMWARE_RUNTIMES.option(help="micropython : refaire et signer aussi les enregistrements "
                                                                    "de quelques terminaux dans MicroPython.")] = "cpython",
    as_json: Annotated[bool, typer.Option("--json", help="JSON (clés en anglais) au lieu du résumé en français.")] = False,
) -> None:
    """Simuler des jours de marché sur la vraie logique du terminal et du serveur, injecter des pannes, vérifier l'argent."""
    from caisse.simulation import SimulationConfig

    if not 1 <= seeds <= 1000 or (seeds > 1 and (db is not None or as_json)):
        err.print("[red]Erreur :[/red] --seeds va de 1 à 1000, et plusieurs graines ne vont ni avec --db ni avec --json")
        raise typer.Exit(2)
    configs = [SimulationConfig(terminals=terminals, members=members, days=days, seed=s, power_cuts=power_cuts,
                                network_drops=network_drops, clones=clones, database_url=db, adversaries=adversaries,
                                micropython_terminals=min(3, terminals) if firmware_runtime == "micropython" else 0)
               for s in range(seed, seed + seeds)]
    if seeds == 1:
        _simulate_one(configs[0], as_json=as_json)
    else:
        _simulate_many(configs)


def _simulate_one(config: SimulationConfig, *, as_json: bool) -> None:
    from caisse.simulation import SimulationError
    from caisse.simulation import simulate as run_simulation
    from caisse.simulation.report import as_json as report_json
    from caisse.simulation.report import print_french

    try:
        report = run_simulation(config)
    except SimulationError as error:
        err.print(f"[red]Erreur :[/red] {error}")
        raise typer.Exit(2) from None
    except Exception as error:  # the seed replays it: in the one line, not only in the log
        raise typer.Exit(unexpected(error, during=f"simulation, graine {config.seed}")) from None
    if as_json:
        typer.echo(report_json(report))
    else:
        print_french(report)
    if not report["passed"]:
        err.print(f"Invariant rompu : relancer avec --seed {config.seed}.")
        raise typer.Exit(1)


def _simulate_many(configs: list[SimulationConfig]) -> None:
    """One line per seed (what broke, if anything), then how long it all took."""
    import time

    from caisse.simulation import SimulationError
    from caisse.simulation import simulate as run_simulation
    from caisse.simulation.report import broken_summary

    started, failed = time.perf_counter(), []
    for config in configs:
        began = time.perf_counter()
        try:
            report = run_simulation(config)
        except SimulationError as error:
            err.print(f"[red]Erreur :[/red] {error}")
            raise typer.Exit(2) from None
        except Exception as error:
            raise typer.Exit(unexpected(error, during=f"simulation, graine {config.seed}")) from None
        seconds = time.perf_counter() - began
        if report["passed"]:
            typer.echo(f"graine {config.seed} : tous les invariants tiennent ({seconds:.1f} s)")
        else:
            failed.append(config.seed)
            typer.echo(f"graine {config.seed} : INVARIANT ROMPU ({seconds:.1f} s) — {broken_summary(report)}")
    total = time.perf_counter() - started
    typer.echo(f"{len(configs)} graines en {total:.1f} s ({total / len(configs):.1f} s par graine)")
    if failed:
        err.print(f"Invariant rompu : relancer avec --seed {failed[0]} (graines en échec : {', '.join(map(str, failed))}).")
        raise typer.Exit(1)


sortition_app = typer.Typer(help="Tirage au sort des nouveaux membres : questionnaire, invitations, vérification"
                                  " (la console crée et lance les tirages).", no_args_is_help=True)
app.add_typer(sortition_app, name="sortition")
app.add_typer(sortition_app, name="tirage", help="Tirage au sort (comme « sortition »).")


@sortition_app.command("verify")
@sortition_app.command("verifier", hidden=True)
def sortition_verify(
    export: Annotated[Path, typer.Argument(help="L'export public du tirage en CSV (console, Tirage au sort).")],
    phrase: Annotated[str, typer.Option(help="La phrase de la graine publiée avant le tirage.")],
) -> None:
    """Refaire un tirage à partir de son export public et de la phrase de la graine seuls, sans la base de données."""
    from caisse.members import sortition

    try:
        differences = sortition.replay_export(export.read_text(encoding="utf-8"), phrase=phrase)
    except OSError as error:
        err.print(f"[red]Erreur :[/red] lecture de {export} impossible ({error.strerror})")
        raise typer.Exit(2) from None
    except CaisseError as error:
        err.print(f"[red]Erreur :[/red] {error.detail}")
        raise typer.Exit(2) from None
    for difference in differences:
        out.print(difference)
    if differences:
        err.print(f"Tirage NON confirmé : {len(differences)} ligne(s) diffèrent du calcul refait depuis la graine.")
        raise typer.Exit(1)
    err.print(f"Tirage confirmé : le calcul refait depuis la graine {sortition.seed_of(phrase)} donne le même résultat.")


@sortition_app.command("importer")
def sortition_import(
    draw_id: Annotated[int, typer.Argument(help="Numéro du tirage (ouvert aux inscriptions).")],
    path: Annotated[Path, typer.Argument(help="Le questionnaire en CSV (Excel ou LibreOffice : « ; » ou « , », en-têtes en français).",
                                         exists=True, dir_okay=False)],
    by: _StaffBy,
    skip: Annotated[bool, typer.Option("--ignorer-erreurs", help="Importer les lignes correctes et ignorer les autres (listées).")] = False,
) -> None:
    """Inscrire les volontaires d'un questionnaire. Toute ligne fausse est signalée avec son numéro ; s'il y en a,
    rien n'est importé, sauf avec --ignorer-erreurs."""
    from caisse.members import sortition
    from caisse.staff import accounts

    content = path.read_bytes()

    def run(session: Session) -> sortition.ImportReport:
        user = accounts.active_user(session, email=by).email
        return sortition.import_volunteers(session, draw_id=draw_id, content=content, skip_bad_rows=skip, by=user, os_user=login_name())

    try:
        with open_session() as session:
            report = run(session)
    except CaisseError as error:
        for line in error.detail.split(" ; "):
            err.print(f"[red]Erreur :[/red] {line}", highlight=False)
        raise typer.Exit(1) from None
    for line in report.errors:
        err.print(f"Ignorée : {line}", highlight=False)
    out.print(report.imported)
    err.print(f"{report.imported} volontaire(s) inscrit(s) au tirage {draw_id}.")


@sortition_app.command("accepter")
def sortition_accept(
    volunteer_id: Annotated[int, typer.Argument(help="Identifiant du volontaire invité (page du tirage).")],
    zone: Annotated[str, typer.Option("--quartier", help="Quartier du foyer.")],
    by: _StaffBy,
    members: Annotated[int | None, typer.Option("--personnes", help="Taille du foyer, si elle a changé depuis le questionnaire.")] = None,
) -> None:
    """Le volontaire accepte l'invitation : son foyer est créé (nom, taille, quartier), prêt pour sa carte."""
    from caisse.members import sortition

    household_id = run_in_session(lambda s: sortition.accept_invitation(s, volunteer_id=volunteer_id, zone=zone, members=members,
                                                                       by=by, os_user=login_name()))
    out.print(household_id)
    err.print(f"Foyer {household_id} créé ; émettez sa carte : caisse card issue --household {household_id} --uid …")


@sortition_app.command("refuser")
def sortition_decline(
    volunteer_id: Annotated[int, typer.Argument(help="Identifiant du volontaire invité (page du tirage).")],
    by: _StaffBy,
) -> None:
    """Le volontaire décline : le suivant de la réserve de sa strate (ordre des rangs) est invité. Irréversible."""
    from caisse.members import sortition

    replacement = run_in_session(lambda s: sortition.decline_invitation(s, volunteer_id=volunteer_id, by=by, os_user=login_name()))
    if replacement is None:
        err.print("Refus enregistré ; la réserve de cette strate est vide : elle est à compléter par la mobilisation.")
    else:
        out.print(replacement.id)
        err.print(f"Refus enregistré ; le volontaire n° {replacement.number} (rang {replacement.rank}) est invité à sa place.")


bank_app = typer.Typer(help="Réponses de la banque aux virements de la caisse (pain.002, camt.054, camt.053).",
                       no_args_is_help=True)
app.add_typer(bank_app, name="banque")


@bank_app.command("importer")
def bank_import(
    path: Annotated[Path, typer.Argument(help="Fichier XML reçu de la banque.", exists=True, dir_okay=False)],
    by: _StaffBy,
) -> None:
    """Importer un rejet (pain.002) ou un avis/relevé (camt.054, camt.053) : un virement retourné
    revient au commerçant et sera repayé par un prochain règlement."""
    from caisse.settlement import bank_returns as bank

    content = path.read_bytes()
    result = run_in_session(lambda s: bank.import_file(s, content=content, by=by, os_user=login_name()))
    out.print(len(result.returned))
    if result.already_imported:
        err.print(f"Fichier déjà importé ({result.message_type} {result.message_id}) : rien de changé.")
        return
    for returned in result.returned:
        err.print(f"Virement {returned.payment_id} retourné : {euros(returned.amount_cents)} EUR au commerçant"
                  f" {returned.vendor_id}, {returned.reason}. "
                  + ("Il attend un nouvel IBAN (caisse vendor iban-request)." if returned.needs_new_iban
                     else "Le prochain règlement le paie à nouveau."))
    for payment_id in result.already_returned:
        err.print(f"Virement {payment_id} déjà retourné par un fichier précédent : rien de changé.")
    for payment_id in result.foreign_returns:
        err.print(f"Retour {payment_id} : ce n'est pas un virement de la caisse, à examiner avec la banque.")
    for payment_id in result.duplicates_ignored:
        err.print(f"Virement {payment_id} : doublon refusé par la banque, l'original est payé : rien à faire.")
    err.print(f"{result.message_type} {result.message_id} importé : {len(result.returned)} virement(s) retourné(s),"
              f" {result.debited} débit(s) constaté(s).")


@bank_app.command("retours")
def bank_returns(
    waiting: Annotated[bool, typer.Option("--en-attente", help="Seulement ceux qu'aucun règlement n'a repayés.")] = False,
) -> None:
    """Lister les virements retournés par la banque (séparés par des tabulations)."""
    from caisse.settlement import bank_returns as bank

    rows = run_in_session(lambda s: [(r.payment_id, r.run_id, r.vendor_id, r.amount_cents, r.iban, r.reason, r.repaid_run_id)
                                     for r in bank.returns(s, waiting_only=waiting)])
    typer.echo("\t".join(("virement", "règlement", "commerçant", "montant (EUR)", "IBAN", "motif", "repayé par")))
    for payment_id, run_id, vendor_id, amount, iban, reason, repaid in rows:
        typer.echo("\t".join(str(value) for value in (
            payment_id, run_id, vendor_id, euros(amount), iban, reason, f"règlement {repaid}" if repaid else "en attente")))
    err.print(f"{len(rows)} virement(s) retourné(s).")
