"""Members leaving, and their personal data (docs/guide/adhesion.md, docs/backend.md "Membership").

Leaving (`leave_household`): the household is a member until its end date (a Paris calendar
day). Its allowances stop from the month after the end month (caisse.fund.allowances). Its cards are
blocked on the end date, through the card block every terminal learns at its next sync: at once
when the date has come, else by `apply_departures` on that day.

Its unspent balance goes back to the fund (`leave:{household}`, member -> allowance_fund; the
written policy, setting `leaving_balance`: "fund", the default, or "keep" on its account), but
only once every terminal has either learnt the block or stopped paying offline: a terminal
refuses to pay once `offline_max_age_s` has passed since its last sync, so from the block plus
that age (plus the clock window) no new payment of the household can be signed. A payment signed
before and uploaded later still settles: it takes its money back from what was returned, by a
`departure_cover` transfer (allowance_fund -> member) at the next `apply_departures`, never more
than the household gave back, so it does not become an overdraft; money coming back to it later
(a rejected record) returns to the fund the same way. `apply_departures` is idempotent: it brings
each departed household's balance to zero, and does nothing to a balance already at zero.

Personal data: `personal_data` gathers what the caisse holds about one volunteer or household
(the console and `caisse membre donnees` export it as JSON or CSV). `erase_former_members`, after
`retention_months` from the end date (or from the draw, for volunteers who never became
members), replaces names and contacts by pseudonyms ("Foyer #12", "Volontaire 3-17") in the
tables, the audit log's details and therefore the draws' exports; amounts and the ledger stay.
Backups made before keep the old data until they expire (docs/guide/adhesion.md).

Every staff action writes its audit entry here, in the caller's transaction; nothing commits.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select
from sqlmodel import Session, col

from caisse import audit
from caisse.cards import service as card_service
from caisse.cards.versions import bump_cards
from caisse.config import LeavingBalance, Settings
from caisse.db import get_by_id, table_of
from caisse.errors import Conflict, InvalidInput, NotFound
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.models import AuditEvent, BlockReason, Household, LedgerTransfer, SortitionDraw, SortitionVolunteer, utcnow
from caisse.staff import accounts

MAX_END_DATE_AHEAD = timedelta(days=366)
# The caisse's calendar: end dates are days of Paris (settings.settlement_timezone's default, the
# zone allowances count months in).
CALENDAR = ZoneInfo("Europe/Paris")


def leave_reference(household_id: int, step: int = 1) -> str:
    """The first return of a departed household's balance is `leave:{h}`; later balancing
    transfers (a late record, a rejected one) are `leave:{h}:{step}`."""
    return f"leave:{household_id}" if step == 1 else f"leave:{household_id}:{step}"


def household_pseudonym(household_id: int) -> str:
    return f"Foyer #{household_id}"


def volunteer_pseudonym(volunteer: SortitionVolunteer) -> str:
    return f"Volontaire {volunteer.draw_id}-{volunteer.number}"


def today_in_paris(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(CALENDAR).date()


# Leaving ------------------------------------------------------------------------------------------

def leave_household(session: Session, *, household_id: int, end_date: date, by: str, os_user: str | None = None,
                    now: datetime | None = None) -> Household:
    """The household leaves on `end_date`: allowances up to that month, cards blocked from that day."""
    by = accounts.active_user(session, email=by).email
    household = _locked_household(session, household_id=household_id)
    if household.left_on is not None:
        raise Conflict("household_left", f"le foyer {household_id} part déjà le {household.left_on:%d/%m/%Y}")
    today = today_in_paris(now)
    joined = _aware(household.created_at).astimezone(CALENDAR).date()
    if end_date < joined:
        raise InvalidInput("invalid_end_date", f"le foyer {household_id} est entré le {joined:%d/%m/%Y} : "
                                               "la date de départ ne peut pas précéder son entrée")
    if end_date > today + MAX_END_DATE_AHEAD:
        raise InvalidInput("invalid_end_date", "une date de départ est dans l'année qui vient au plus")
    household.left_on = end_date
    session.add(household)
    session.flush()
    blocked = _block_if_due(session, household, today=today, now=now)
    audit.record(session, actor=by, action="household.leave", subject=f"household:{household_id}",
                 detail=audit.with_os_user({"end_date": end_date, "cards_blocked": blocked}, os_user))
    return household


@dataclass(slots=True)
class DeparturesReport:
    cards_blocked: list[int] = field(default_factory=list)  # households whose cards were blocked now
    returned_cents: int = 0  # given back to the fund
    covered_cents: int = 0  # taken back from the fund for records signed before leaving
    settled: list[int] = field(default_factory=list)  # households whose balance moved
    waiting: list[tuple[int, datetime]] = field(default_factory=list)  # (household, not before)


def apply_departures(session: Session, *, settings: Settings, by: str = accounts.AUTOMATIC, os_user: str | None = None,
                     now: datetime | None = None) -> DeparturesReport:
    """The timer's step (`caisse membre appliquer-departs`, `by` = automatique): block the cards of
    households whose end date has come, and bring to zero the balance of those whose wait is over."""
    by = accounts.check_actor(session, by=by)
    now = now or utcnow()
    today = today_in_paris(now)
    report = DeparturesReport()
    wait = timedelta(seconds=settings.offline_max_age_s + settings.sync_clock_window_s)
    ids = session.execute(select(col(Household.id)).where(col(Household.left_on).is_not(None))
                          .order_by(col(Household.id))).scalars().all()
    for household_id in ids:
        household = _locked_household(session, household_id=household_id)
        if household.leaving_blocked_at is None:
            if not _block_if_due(session, household, today=today, now=now):
                continue
            report.cards_blocked.append(household_id)
            audit.record(session, actor=by, action="household.leave_block", subject=f"household:{household_id}",
                         detail=audit.with_os_user({"end_date": household.left_on}, os_user))
        assert household.leaving_blocked_at is not None
        due = _aware(household.leaving_blocked_at) + wait
        if now < due:
            report.waiting.append((household_id, due))
            continue
        moved = _balance_departed(session, household) if settings.leaving_balance == LeavingBalance.FUND else 0
        if moved:
            report.settled.append(household_id)
            report.returned_cents += max(moved, 0)
            report.covered_cents += max(-moved, 0)
            audit.record(session, actor=by, action="household.leave_settle", subject=f"household:{household_id}",
                         detail=audit.with_os_user({"returned_cents": max(moved, 0), "covered_cents": max(-moved, 0)}, os_user))
        if household.leaving_settled_at is None:
            household.leaving_settled_at = now
            session.add(household)
    session.flush()
    return report


def _block_if_due(session: Session, household: Household, *, today: date, now: datetime | None) -> bool:
    """Block the household's active cards when its end date has come; True when it did."""
    assert household.left_on is not None and household.id is not None
    if household.left_on > today:
        return False
    moment = now or utcnow()
    card_service.block_household_cards(session, household_id=household.id, reason=BlockReason.LEFT, at=moment)
    household.leaving_blocked_at = moment
    session.add(household)
    session.flush()
    return True


def _balance_departed(session: Session, household: Household) -> int:
    """Bring a departed household's balance to zero: a positive balance goes to the fund; a
    negative one (a record signed before leaving, uploaded after) is covered from the fund, up to
    what the household gave back. The amount moved to the fund (negative: taken from it)."""
    assert household.id is not None
    code = ledger.member_code(household.id)
    balance = ledger.balance_cents(session, code=code)
    member = ledger.ensure_account(session, code=code, kind=ledger.AccountKind.MEMBER)
    fund = ledger.ensure_account(session, code=ledger.Account.ALLOWANCE_FUND, kind=ledger.AccountKind.ALLOWANCE_FUND)
    given_back = _given_back_cents(session, household_id=household.id)
    amount = balance if balance > 0 else -min(-balance, given_back)
    if amount == 0:
        return 0
    step = _leave_transfers(session, household_id=household.id) + 1
    if amount > 0:
        ledger.post_transfer(session, debit=member, credit=fund, amount_cents=amount, kind=ledger.TransferKind.DEPARTURE,
                             reference=leave_reference(household.id, step), memo="solde rendu au départ du foyer")
    else:
        ledger.post_transfer(session, debit=fund, credit=member, amount_cents=-amount, kind=ledger.TransferKind.DEPARTURE_COVER,
                             reference=leave_reference(household.id, step), memo="enregistrement antérieur au départ")
    bump_cards(session, household_ids=[household.id])  # its balance changed: terminals learn it, overdrafts too
    return amount


def _given_back_cents(session: Session, *, household_id: int) -> int:
    """What a departed household returned to the fund, less what covered its late records."""
    rows = session.execute(select(ledger_transfer.c.kind, func.sum(ledger_transfer.c.amount_cents))
                           .where(_leave_references(household_id)).group_by(ledger_transfer.c.kind)).all()
    sums = {kind: int(total) for kind, total in rows}
    return sums.get(ledger.TransferKind.DEPARTURE, 0) - sums.get(ledger.TransferKind.DEPARTURE_COVER, 0)


def _leave_transfers(session: Session, *, household_id: int) -> int:
    return int(session.execute(select(func.count()).select_from(ledger_transfer).where(_leave_references(household_id))).scalar_one())


def _leave_references(household_id: int) -> ColumnElement[bool]:
    """`leave:{h}` and `leave:{h}:{n}`, not `leave:{h}{more digits}` (another household)."""
    reference = ledger_transfer.c.reference
    return (reference == leave_reference(household_id)) | reference.like(f"leave:{household_id}:%")


# Personal data ------------------------------------------------------------------------------------

def personal_data(session: Session, *, by: str, household_id: int | None = None, volunteer_id: int | None = None,
                  os_user: str | None = None) -> dict[str, object]:
    """Everything the caisse holds about one person: their volunteer answers, their household,
    cards, balance and the audit entries about them. Audited (who looked at whose data)."""
    by = accounts.active_user(session, email=by).email
    if (household_id is None) == (volunteer_id is None):
        raise InvalidInput("invalid_subject", "indiquez un foyer ou un volontaire")
    volunteers: list[SortitionVolunteer]
    if volunteer_id is not None:
        volunteer = get_by_id(session, SortitionVolunteer, volunteer_id)
        if volunteer is None:
            raise NotFound("volunteer_not_found", f"aucun volontaire n° {volunteer_id}")
        volunteers, household_id = [volunteer], volunteer.household_id
    else:
        assert household_id is not None
        household_service.get_household(session, household_id=household_id)
        volunteers = list(session.execute(select(SortitionVolunteer).where(col(SortitionVolunteer.household_id) == household_id)).scalars())
    data: dict[str, object] = {"volontaire": [_volunteer_data(session, v) for v in volunteers]}
    subjects = [f"volunteer:{v.id}" for v in volunteers]
    if household_id is not None:
        household = household_service.get_household(session, household_id=household_id)
        data["foyer"] = {
            "numero": household.id, "nom": household.name, "personnes": household.members, "quartier": household.zone,
            "entree": household.created_at, "depart": household.left_on, "efface_le": household.erased_at,
            "solde_cents": household_service.household_balance_cents(session, household_id=household_id),
            "cartes": [{"uid": card.uid.hex(), "etat": card.status, "emise": card.created_at}
                       for card in household_service.household_cards(session, household_id=household_id)],
        }
        subjects.append(f"household:{household_id}")
    data["journal"] = [{"date": e.at, "par": e.actor, "action": e.action, "objet": e.subject, "details": e.detail}
                       for e in audit.events(session, subjects=subjects, limit=1_000)]
    audit.record(session, actor=by, action="personal_data.export",
                 subject=f"household:{household_id}" if household_id is not None else f"volunteer:{volunteer_id}",
                 detail=audit.with_os_user({}, os_user) or None)
    return data


def personal_data_json(data: dict[str, object]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)


def personal_data_csv(data: dict[str, object]) -> str:
    """The same data flattened: one line per field, `rubrique;champ;valeur` (opens in a spreadsheet)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(["rubrique", "champ", "valeur"])

    def walk(section: str, value: object) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{section}.{key}", inner)
        elif isinstance(value, list):
            for index, inner in enumerate(value, start=1):
                walk(f"{section}[{index}]", inner)
        else:
            head, _, last = section.rpartition(".")
            writer.writerow([head, last, "" if value is None else str(value)])

    for key, value in data.items():
        walk(key, value)
    return out.getvalue()


@dataclass(slots=True)
class ErasureReport:
    households: list[int] = field(default_factory=list)
    volunteers: list[int] = field(default_factory=list)
    audit_events: int = 0


def erase_former_members(session: Session, *, settings: Settings, by: str = accounts.AUTOMATIC, os_user: str | None = None,
                         now: datetime | None = None) -> ErasureReport:
    """Erase the names and contacts of households that left more than `retention_months` ago, and
    of volunteers of draws older than that who never became members (or whose household is
    erased). Amounts, ledger and the draw's numbers stay; the audit log keeps a pseudonym."""
    by = accounts.check_actor(session, by=by)
    now = now or utcnow()
    limit = _months_before(today_in_paris(now), settings.retention_months)
    report = ErasureReport()
    replacements: list[tuple[tuple[str, ...], str, str]] = []  # (audit subjects, old text, pseudonym)
    households = session.execute(select(Household).where(col(Household.left_on).is_not(None), col(Household.left_on) < limit,
                                                         col(Household.erased_at).is_(None))
                                 .order_by(col(Household.id))).scalars().all()
    erased_households = set()
    for household in households:
        assert household.id is not None
        replacements.append(((f"household:{household.id}",), household.name, household_pseudonym(household.id)))
        household.name, household.erased_at = household_pseudonym(household.id), now
        session.add(household)
        report.households.append(household.id)
        erased_households.add(household.id)
    old_draws = select(col(SortitionDraw.id)).where(col(SortitionDraw.created_at) < datetime.combine(limit, datetime.min.time(), UTC))
    kept_volunteers = select(SortitionVolunteer).where(col(SortitionVolunteer.erased_at).is_(None))
    volunteers = session.execute(kept_volunteers.order_by(col(SortitionVolunteer.id))).scalars().all()
    old = set(session.execute(old_draws).scalars())
    for volunteer in volunteers:
        erased_member = volunteer.household_id in erased_households or _household_erased(session, volunteer.household_id)
        never_member = volunteer.household_id is None and volunteer.draw_id in old
        if not (erased_member or never_member):
            continue
        pseudonym = volunteer_pseudonym(volunteer)
        subjects = (f"sortition:{volunteer.draw_id}", f"volunteer:{volunteer.id}",
                    *((f"household:{volunteer.household_id}",) if volunteer.household_id else ()))
        replacements += [(subjects, volunteer.name, pseudonym)] + ([(subjects, volunteer.contact, pseudonym)] if volunteer.contact else [])
        volunteer.name, volunteer.contact, volunteer.birth_date, volunteer.shops = pseudonym, None, None, None
        volunteer.erased_at = now
        session.add(volunteer)
        assert volunteer.id is not None
        report.volunteers.append(volunteer.id)
    session.flush()
    report.audit_events = _pseudonymise_audit(session, replacements)
    if report.households or report.volunteers:
        audit.record(session, actor=by, action="personal_data.erase", subject="membres",
                     detail=audit.with_os_user({"households": report.households, "volunteers": report.volunteers,
                                           "audit_events": report.audit_events, "before": str(limit)}, os_user))
    return report


def _pseudonymise_audit(session: Session, replacements: list[tuple[tuple[str, ...], str, str]]) -> int:
    """Replace erased names and contacts in the details of the audit events about that person:
    the one place events change, because the law requires it; who did what, when, to which
    subject, stays. Longer texts first, so a name inside another is not cut in two."""
    changed: set[int] = set()
    for subjects, old, new in sorted(replacements, key=lambda item: -len(item[1])):
        stored = json.dumps(old, ensure_ascii=False)[1:-1]  # as audit.record wrote it inside JSON
        events = session.execute(select(AuditEvent).where(col(AuditEvent.subject).in_(subjects),
                                                          col(AuditEvent.detail).contains(stored))).scalars().all()
        for event in events:
            event.detail = (event.detail or "").replace(stored, new)
            session.add(event)
            assert event.id is not None
            changed.add(event.id)
    session.flush()
    return len(changed)


def _household_erased(session: Session, household_id: int | None) -> bool:
    if household_id is None:
        return False
    household = session.get(Household, household_id)
    return household is not None and household.erased_at is not None


def _months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def _volunteer_data(session: Session, volunteer: SortitionVolunteer) -> dict[str, object]:
    draw = session.get(SortitionDraw, volunteer.draw_id)
    return {
        "tirage": volunteer.draw_id, "titre_tirage": draw.title if draw else None, "numero": volunteer.number,
        "nom": volunteer.name, "contact": volunteer.contact, "quartile_revenu": volunteer.income_quartile,
        "tranche_age": volunteer.age_band, "date_naissance": volunteer.birth_date, "taille_foyer": volunteer.household_size,
        "commerces": volunteer.shops, "inscrit_le": volunteer.registered_at, "rang": volunteer.rank,
        "tire_au_sort": volunteer.selected, "invitation": volunteer.invitation, "foyer": volunteer.household_id,
        "efface_le": volunteer.erased_at,
    }


def _locked_household(session: Session, *, household_id: int) -> Household:
    household = get_by_id(session, Household, household_id, for_update=True)
    if household is None:
        raise NotFound("household_not_found", f"aucun foyer n° {household_id}")
    session.refresh(household)
    return household


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)



ledger_transfer = table_of(LedgerTransfer)
