"""Fonds: the money steps staff take by hand, each previewed before it is done.

Allocate a month's allowances, close a month, set the allowance rule from a month on, import the
payment platform's contributions, record a grant, a fee or a manual credit, and reverse one of
those entered by mistake (caisse.fund.allowances, caisse.fund.service, caisse.members.households, caisse.ledger.corrections: the
services the CLI calls, which write the audit entries).

Every step is two POSTs. `/fund/{step}/apercu` runs the service inside a savepoint and rolls it
back: the preview is what the service itself would do (amounts, households), not a second
calculation that could disagree. Its page carries the same fields, hidden, to `/fund/{step}`,
which does it and commits. A second click, or the form sent again, does nothing more: each step is
idempotent on what the form carries (the month, the file's references, the entry's reference, the
original of a reversal), so the service answers "already done" instead of posting twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlmodel import Session, col
from starlette.datastructures import UploadFile

from caisse import spreadsheet
from caisse.config import Settings
from caisse.console.deps import CurrentUser, DbSession, require_page
from caisse.console.templating import CONSOLE_TIMEZONE, local_time, redirect, render
from caisse.errors import CaisseError, InvalidInput, NotFound, french
from caisse.fund import allowances
from caisse.fund import service as fund
from caisse.ledger import corrections
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.models import AllowanceMonth, LedgerTransfer
from caisse.money import euros, parse_euros
from caisse.months import Month

router = APIRouter(prefix="/fund", dependencies=[Depends(require_page("fund"))])
ENTRIES_SHOWN = 30
MONTHS_SHOWN = 12


async def _form_fields(request: Request) -> dict[str, str]:
    """The form's text fields; an uploaded file (the contributions import) as its decoded text."""
    fields: dict[str, str] = {}
    for name, value in (await request.form()).multi_items():
        if isinstance(value, UploadFile):
            try:
                fields[name] = spreadsheet.decode(await value.read(spreadsheet.MAX_FILE_BYTES + 1))
            finally:
                await value.close()  # its temporary file: nothing else closes a form read here
        elif name != "csrf_token":
            fields[name] = value
    return fields


Fields = Annotated[dict[str, str], Depends(_form_fields)]


@dataclass(frozen=True, slots=True)
class Done:
    """What a step did (or, in a preview, would do): French lines, and the sentence shown after it."""

    lines: list[str]
    flash: str
    bad_lines: bool = False  # an import's: the confirmation then asks whether to import the valid ones


@dataclass(frozen=True, slots=True)
class Step:
    title: str
    button: str  # the confirmation button
    warning: str  # what cannot be undone, said before the click
    fields: tuple[str, ...]  # carried from the preview to the confirmation
    # (session, form, by, settings, preview) -> what it did; `preview` only changes what is said
    run: Callable[[Session, dict[str, str], str, Settings, bool], Done]


def _allocate(session: Session, form: dict[str, str], by: str, settings: Settings, _preview: bool) -> Done:
    report = allowances.allocate(session, month=form.get("month", ""), settings=settings, by=by)
    rule = allowances.rule_in_force(session, month=report.month, settings=settings)
    lines = [f"{report.credited_households} foyer(s) crédité(s) pour {euros(report.credited_cents)} € au total"
             f" (règle : {allowances.rule_text(rule)})",
             f"{report.already_credited} foyer(s) déjà crédité(s) pour {report.month} : laissés tels quels",
             f"Reliquats rendus au fonds : {euros(report.expired_cents)} € de {report.expired_households} foyer(s)"]
    lines += [f"Foyer {household} : crédité de {euros(posted)} € auparavant, la règle donne maintenant {euros(now)} € ;"
              " laissé tel quel (une correction est une contre-passation)" for household, posted, now in report.differing]
    return Done(lines, f"Allocations de {report.month} : {report.credited_households} foyer(s) crédité(s),"
                       f" {euros(report.credited_cents)} €.")


def _close(session: Session, form: dict[str, str], by: str, settings: Settings, _preview: bool) -> Done:
    month = str(Month.parse(form.get("month", "")))
    state = session.get(AllowanceMonth, month)
    closed_before = state is not None and state.closed_at is not None  # read now: closing changes this same object
    credited = session.execute(select(col(LedgerTransfer.amount_cents)).where(
        col(LedgerTransfer.reference).like(f"allowance:%:{month}"))).scalars().all()
    allowances.close_month(session, month=month, by=by)
    if closed_before:
        return Done([f"Le mois {month} est déjà clos : rien ne change."], f"Le mois {month} était déjà clos.")
    return Done([f"Allocations de {month} déjà attribuées : {len(credited)} foyer(s), {euros(sum(credited))} €",
                 f"Après la clôture, plus aucune allocation ne peut être attribuée pour {month}, même à un foyer inscrit depuis."],
                f"Mois {month} clôturé : il ne peut plus être alloué.")


def _cents(value: str) -> int | None:
    return None if not value.strip() else parse_euros(value, zero_allowed=True)


def _rule(session: Session, form: dict[str, str], by: str, settings: Settings, _preview: bool) -> Done:
    month = str(Month.parse(form.get("month", "")))
    before = allowances.rule_in_force(session, month=month, settings=settings)
    new = allowances.set_rule(
        session, effective_month=month, by=by, settings=settings, rule=form.get("rule") or None,
        flat_cents=_cents(form.get("flat", "")), base_cents=_cents(form.get("base", "")),
        per_extra_member_cents=_cents(form.get("per_extra_member", "")), pro_rata=form.get("pro_rata") == "oui",
        unspent=form.get("unspent") or None, carry_over_cap_cents=_cents(form.get("cap", "")))
    return Done([f"À partir de {month} : {allowances.rule_text(new)}",
                 f"Jusqu'ici pour {month} : {allowances.rule_text(before)}"],
                f"Règle d'allocation enregistrée à partir de {month}.")


def _import(session: Session, form: dict[str, str], by: str, settings: Settings, preview: bool) -> Done:
    """The preview imports the valid lines (then rolls back) to say what they hold, bad lines or not."""
    skip_errors = preview or form.get("skip_errors") == "oui"
    report = fund.import_contributions(session, content=form.get("content", ""), settings=settings,
                                       skip_errors=skip_errors, by=by)
    lines = [f"Ligne {line} : {french(error)}" for line, error in report.errors]
    if report.errors and not skip_errors:
        lines.append("Rien n'est importé tant qu'une ligne est fausse : corrigez le fichier, ou cochez « importer les"
                     " lignes valides ».")
        return Done(lines, "Rien n'a été importé : le fichier a des lignes fausses.", bad_lines=True)
    if report.errors and preview:
        lines.append("Les lignes valides ne sont importées que si vous cochez « importer les lignes valides ».")
    lines += [f"{report.imported} cotisation(s) importée(s) pour {euros(report.imported_cents)} €",
              f"{report.already} déjà importée(s) : ignorée(s)",
              f"Frais de la plateforme : {euros(report.fee_cents)} €"]
    return Done(lines, f"{report.imported} cotisation(s) importée(s) ({euros(report.imported_cents)} €), {report.already}"
                       " déjà présente(s).", bad_lines=bool(report.errors))


def _grant(session: Session, form: dict[str, str], by: str, settings: Settings, _preview: bool) -> Done:
    amount, month, source = parse_euros(form.get("amount", "")), form.get("month", ""), form.get("source", "").strip()
    if not source:
        raise InvalidInput("invalid_source", "say who gives the grant")
    created = fund.record_grant(session, month=month, amount_cents=amount, source=source,
                                reference=form.get("reference", ""), by=by)
    return _entry(created, f"Subvention de {euros(amount)} € de {source}, au budget de {month}",
                  f"Subvention de {source} enregistrée ({euros(amount)} €).")


def _fee(session: Session, form: dict[str, str], by: str, settings: Settings, _preview: bool) -> Done:
    amount, month, memo = parse_euros(form.get("amount", "")), form.get("month", ""), form.get("memo", "").strip()
    if not memo:
        raise InvalidInput("invalid_memo", "say what the fee is for")
    created = fund.record_fee(session, month=month, amount_cents=amount, memo=memo, reference=form.get("reference", ""), by=by)
    return _entry(created, f"Frais de {euros(amount)} € ({memo}), au budget de {month}", f"Frais enregistrés ({euros(amount)} €).")


def _credit(session: Session, form: dict[str, str], by: str, settings: Settings, _preview: bool) -> Done:
    amount = parse_euros(form.get("amount", ""))
    try:
        household_id = int(form.get("household", ""))
    except ValueError:
        raise InvalidInput("invalid_household_id", "not a household number") from None
    household = household_service.get_household(session, household_id=household_id)
    credit = household_service.credit_household(session, household_id=household_id, amount_cents=amount,
                                    memo=form.get("memo", "").strip() or None, reference=form.get("reference", ""), by=by)
    return _entry(credit.created, f"Crédit de {euros(amount)} € au foyer {household_id} ({household.name}), pris sur le fonds"
                                  " des allocations", f"Foyer {household_id} crédité de {euros(amount)} €.")


def _entry(created: bool, what: str, flash: str) -> Done:
    if not created:
        return Done([f"{what} : déjà enregistré sous cette référence, rien ne change."],
                    "Déjà enregistré sous cette référence : rien de changé.")
    return Done([what], flash)


def _reverse(session: Session, form: dict[str, str], by: str, settings: Settings, _preview: bool) -> Done:
    reference = form.get("reference", "").strip()
    original = ledger.find_transfer(session, reference=reference)
    done = corrections.reverse(session, reference=reference, by=by, reason=form.get("reason", ""))
    if not done.created:
        return Done([f"L'écriture {reference} est déjà contre-passée ({done.reference}) : rien ne change."],
                    f"Écriture {reference} déjà contre-passée : rien de changé.")
    assert original is not None
    kind = corrections.REVERSIBLE.get(original.kind, original.kind)
    return Done([f"{kind.capitalize()} {reference} de {euros(done.amount_cents)} €, saisie le"
                 f" {local_time(original.created_at)} : reprise par une écriture en sens inverse ({done.reference})"],
                f"Écriture {reference} contre-passée ({euros(done.amount_cents)} €).")


STEPS: dict[str, Step] = {
    "allocate": Step("Attribuer les allocations du mois", "Attribuer les allocations",
                     "Les foyers sont crédités aussitôt et le voient à la prochaine synchronisation des terminaux ;"
                     " une allocation se reprend ensuite foyer par foyer, par contre-passation.", ("month",), _allocate),
    "close": Step("Clôturer un mois", "Clôturer le mois", "La clôture est définitive : le mois ne pourra plus être alloué.",
                  ("month",), _close),
    "rule": Step("Fixer la règle d'allocation", "Enregistrer la règle",
                 "La règle s'applique aux mois pas encore attribués à partir de celui-ci.",
                 ("month", "rule", "flat", "base", "per_extra_member", "pro_rata", "unspent", "cap"), _rule),
    "import": Step("Importer des cotisations", "Importer", "Les cotisations importées entrent au grand livre ; une erreur"
                   " se corrige ensuite ligne par ligne, par contre-passation.", ("content", "skip_errors"), _import),
    "grant": Step("Enregistrer une subvention", "Enregistrer la subvention", "L'écriture entre au grand livre.",
                  ("month", "amount", "source", "reference"), _grant),
    "fee": Step("Enregistrer des frais", "Enregistrer les frais", "L'écriture entre au grand livre.",
                ("month", "amount", "memo", "reference"), _fee),
    "credit": Step("Créditer un foyer à la main", "Créditer le foyer", "Le foyer est crédité aussitôt.",
                   ("household", "amount", "memo", "reference"), _credit),
    "reverse": Step("Contre-passer une écriture", "Contre-passer", "Une contre-passation est définitive : elle ne se"
                    " contre-passe pas ; l'écriture se saisit à nouveau, sous une autre référence.", ("reference", "reason"), _reverse),
}


@router.get("")
def fund_page(request: Request, session: DbSession) -> Response:
    return _page(request, session)


def _page(request: Request, session: Session, *, error: str | None = None, status_code: int = 200,
          form: dict[str, str] | None = None, step: str | None = None) -> Response:
    settings: Settings = request.app.state.settings
    this_month = datetime.now(CONSOLE_TIMEZONE).strftime("%Y-%m")
    in_force = allowances.rule_in_force(session, month=this_month, settings=settings)
    months = session.execute(select(AllowanceMonth).order_by(col(AllowanceMonth.month).desc()).limit(MONTHS_SHOWN)).scalars().all()
    entries = session.execute(
        select(LedgerTransfer).where(col(LedgerTransfer.kind).in_(list(corrections.REVERSIBLE)))
        .where(~col(LedgerTransfer.reference).like("allowance:%"))  # monthly ones: hundreds a month
        .order_by(col(LedgerTransfer.id).desc()).limit(ENTRIES_SHOWN)).scalars().all()
    reversed_refs = set(session.execute(select(col(LedgerTransfer.reference)).where(col(LedgerTransfer.reference).in_(
        [ledger.reversal_reference(entry.id) for entry in entries if entry.id is not None]))).scalars())
    return render(request, "fund/index.html", title="Fonds", status_code=status_code, error=error, error_step=step,
                  form=form or {}, this_month=this_month, in_force=in_force, rule_text=allowances.rule_text,
                  rules=allowances.list_rules(session), months=months, entries=entries, reversible=corrections.REVERSIBLE,
                  reversed_refs=reversed_refs, reversal_reference=ledger.reversal_reference, new_key=_new_key)


def _new_key() -> str:
    """A reference the form carries from the start: the same form sent twice is the same entry."""
    return f"console-{secrets.token_hex(6)}"


def _step(name: str) -> Step:
    if name not in STEPS:
        raise NotFound("fund_step_not_found", f"no step {name!r}")
    return STEPS[name]


@router.post("/{name}/apercu")
def preview(request: Request, session: DbSession, user: CurrentUser, name: str, form: Fields) -> Response:
    step = _step(name)
    try:
        with session.begin_nested() as savepoint:  # done, read, then undone: the preview is the real step
            done = step.run(session, form, user.email, request.app.state.settings, True)
            savepoint.rollback()
    except CaisseError as error:
        session.rollback()
        return _page(request, session, error=french(error), status_code=error.status_code, form=form, step=name)
    carried = {field: form.get(field, "") for field in step.fields}
    return render(request, "fund/confirm.html", title=step.title, step=step, step_name=name, lines=done.lines, carried=carried,
                  shows_skip=done.bad_lines)


@router.post("/{name}")
def confirm(request: Request, session: DbSession, user: CurrentUser, name: str, form: Fields) -> Response:
    step = _step(name)
    try:
        done = step.run(session, form, user.email, request.app.state.settings, False)
    except CaisseError as error:
        session.rollback()
        return _page(request, session, error=french(error), status_code=error.status_code, form=form, step=name)
    session.commit()
    return redirect("/console/fund", flash=done.flash)
