"""Vendor accreditation ("conventionnement"): what it records and when a vendor may take payments.

An accreditation records the criteria the vendor meets (from the caisse's list), the visit (date,
by whom), the training (date), its start and end dates and its status. A vendor may take payments
at a moment when its status is active and that moment's date, in the caisse's time zone, is within
start..end (either bound may be absent). Every change of status or dates appends an
AccreditationState row, so ingestion judges a payment on the accreditation in force at the
payment's judged time (caisse.ingest.upload), and sync v3 tells terminals (docs/protocol.md, "Sync v3").

Services follow caisse.vendors.service's pattern: `by` is an active console account, `os_user` the system
user of a command line; each writes its audit entry; none commits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlmodel import Session, col

from caisse import audit
from caisse.db import get_or_not_found
from caisse.errors import Conflict, InvalidInput
from caisse.models import AccreditationCriterion, AccreditationState, ConventionStatus, Vendor, VendorCriterion, unix_s, utcnow
from caisse.staff import accounts

WARNING_DAYS = 30  # the console warns this long before an accreditation ends
MAX_LABEL_CHARS = 200
# Keyed by str: it reads the stored convention_status and accreditation status columns.
STATUS_LABELS: dict[str, str] = {ConventionStatus.PENDING: "en attente", ConventionStatus.ACTIVE: "conventionné",
                                 ConventionStatus.SUSPENDED: "suspendu", ConventionStatus.ENDED: "terminé"}


# Criteria ------------------------------------------------------------------------------------

def criteria(session: Session, *, include_retired: bool = False) -> list[AccreditationCriterion]:
    statement = select(AccreditationCriterion).order_by(col(AccreditationCriterion.id))
    if not include_retired:
        statement = statement.where(col(AccreditationCriterion.retired) == False)  # noqa: E712
    return list(session.execute(statement).scalars())


def add_criterion(session: Session, *, label: str, by: str, os_user: str | None = None) -> AccreditationCriterion:
    """A new criterion every vendor must meet to be accredited from now on."""
    by = accounts.active_user(session, email=by).email
    label = " ".join(label.split())
    if not label or len(label) > MAX_LABEL_CHARS:
        raise InvalidInput("invalid_criterion", f"a criterion is 1 to {MAX_LABEL_CHARS} characters")
    existing = session.execute(select(AccreditationCriterion).where(col(AccreditationCriterion.label) == label)).scalar_one_or_none()
    if existing is not None:
        raise Conflict("criterion_exists", f"criterion {existing.id} has this label already")
    criterion = AccreditationCriterion(label=label)
    session.add(criterion)
    session.flush()
    audit.record(session, actor=by, action="accreditation.criterion_add", subject=f"criterion:{criterion.id}",
                 detail=_with_os_user({"label": label}, os_user))
    return criterion


def retire_criterion(session: Session, *, criterion_id: int, by: str, os_user: str | None = None) -> AccreditationCriterion:
    """No longer ask for this criterion (vendors that met it keep their tick)."""
    by = accounts.active_user(session, email=by).email
    criterion = get_or_not_found(session, AccreditationCriterion, criterion_id, code="criterion_not_found")
    if criterion.retired:
        raise Conflict("criterion_retired", f"criterion {criterion_id} is retired already")
    criterion.retired = True
    session.add(criterion)
    session.flush()
    audit.record(session, actor=by, action="accreditation.criterion_retire", subject=f"criterion:{criterion_id}",
                 detail=_with_os_user({"label": criterion.label}, os_user))
    return criterion


def checked_criteria(session: Session, *, vendor_id: int) -> set[int]:
    return set(session.execute(select(col(VendorCriterion.criterion_id)).where(col(VendorCriterion.vendor_id) == vendor_id)).scalars())


# The accreditation --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Accreditation:
    """What a person may change at once on a vendor's accreditation."""

    status: str
    starts_on: date | None
    ends_on: date | None
    visited_on: date | None
    visited_by: str | None
    trained_on: date | None
    criteria: frozenset[int]


def current(session: Session, *, vendor_id: int) -> Accreditation:
    vendor = _vendor(session, vendor_id=vendor_id)
    return Accreditation(status=vendor.convention_status, starts_on=vendor.convention_start, ends_on=vendor.convention_end,
                         visited_on=vendor.visited_on, visited_by=vendor.visited_by, trained_on=vendor.trained_on,
                         criteria=frozenset(checked_criteria(session, vendor_id=vendor_id)))


def fingerprint(accreditation: Accreditation) -> str:
    """Names an accreditation's content: the confirmation page carries the one it showed, and
    update refuses to apply it over a change made in between."""
    text = repr((accreditation.status, accreditation.starts_on, accreditation.ends_on, accreditation.visited_on,
                 accreditation.visited_by, accreditation.trained_on, sorted(accreditation.criteria)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Change:
    field: str  # French, for the confirmation page and the command line
    before: str
    after: str


def preview(session: Session, *, vendor_id: int, wanted: Accreditation) -> list[Change]:
    """What update would change, in French, after checking every rule (raises as update would)."""
    before = current(session, vendor_id=vendor_id)
    _check(session, wanted)
    labels = {c.id: c.label for c in criteria(session, include_retired=True)}
    changes = []
    for field, label in (("status", "Statut"), ("starts_on", "Début"), ("ends_on", "Fin"), ("visited_on", "Visite le"),
                         ("visited_by", "Visite par"), ("trained_on", "Formation le")):
        old, new = getattr(before, field), getattr(wanted, field)
        if old != new:
            changes.append(Change(label, _shown(field, old), _shown(field, new)))
    for criterion_id in sorted(wanted.criteria ^ before.criteria):
        ticked = criterion_id in wanted.criteria
        changes.append(Change(f"Critère « {labels[criterion_id]} »", "non" if ticked else "oui", "oui" if ticked else "non"))
    return changes


def update(session: Session, *, vendor_id: int, wanted: Accreditation, by: str, os_user: str | None = None,
           seen: str | None = None) -> Vendor:
    """Apply `wanted` (what preview showed): one audit entry naming each change. Raises
    InvalidInput("accreditation_unchanged") when nothing changes, so a second click is harmless,
    and Conflict("accreditation_changed") when `seen` (the fingerprint of the accreditation the
    person saw) is no longer the vendor's: someone changed it in between."""
    by = accounts.active_user(session, email=by).email
    _vendor(session, vendor_id=vendor_id, for_update=True)  # two confirmations at once: the second sees the first
    if seen is not None and fingerprint(current(session, vendor_id=vendor_id)) != seen:
        raise Conflict("accreditation_changed", "the accreditation changed since it was shown")
    changes = preview(session, vendor_id=vendor_id, wanted=wanted)
    if not changes:
        raise InvalidInput("accreditation_unchanged", "the accreditation is already so")
    vendor = _vendor(session, vendor_id=vendor_id)
    ticked = checked_criteria(session, vendor_id=vendor_id)
    if wanted.criteria - ticked:
        session.add_all(VendorCriterion(vendor_id=vendor_id, criterion_id=c, checked_by=by) for c in sorted(wanted.criteria - ticked))
    if ticked - wanted.criteria:
        session.execute(delete(VendorCriterion).where(col(VendorCriterion.vendor_id) == vendor_id,
                                                      col(VendorCriterion.criterion_id).in_(sorted(ticked - wanted.criteria))))
    vendor.sqlmodel_update({"convention_status": wanted.status, "convention_start": wanted.starts_on,
                            "convention_end": wanted.ends_on, "visited_on": wanted.visited_on,
                            "visited_by": wanted.visited_by, "trained_on": wanted.trained_on})
    session.add(vendor)
    session.flush()
    note_state(session, vendor=vendor)
    audit.record(session, actor=by, action="vendor.accreditation", subject=f"vendor:{vendor_id}",
                 detail=_with_os_user({c.field: {"avant": c.before, "après": c.after} for c in changes}, os_user))
    return vendor


def _check(session: Session, wanted: Accreditation) -> None:
    """The rules of an accreditation (French errors through caisse.errors)."""
    if wanted.status not in ConventionStatus.__members__.values():
        raise InvalidInput("invalid_convention_status", f"status must be one of {', '.join(ConventionStatus)}")
    if wanted.starts_on and wanted.ends_on and wanted.ends_on < wanted.starts_on:
        raise InvalidInput("invalid_convention_dates", "the accreditation ends before it starts")
    if wanted.visited_by is not None and (not wanted.visited_by.strip() or len(wanted.visited_by) > 200):
        raise InvalidInput("invalid_visit", "who visited is 1 to 200 characters")
    if (wanted.visited_on is None) != (wanted.visited_by is None):
        raise InvalidInput("invalid_visit", "a visit has a date and who made it")
    known = {c.id for c in criteria(session, include_retired=True)}
    if wanted.criteria - known:
        raise InvalidInput("unknown_criterion", f"no criterion {min(wanted.criteria - known)}")
    if wanted.status == ConventionStatus.ACTIVE:
        missing = [c.label for c in criteria(session) if c.id not in wanted.criteria]
        if missing:
            raise InvalidInput("accreditation_incomplete", f"criteria not met: {', '.join(missing)}")
        if wanted.visited_on is None or wanted.trained_on is None:
            raise InvalidInput("accreditation_incomplete", "an active accreditation needs its visit and its training")


def note_state(session: Session, *, vendor: Vendor) -> None:
    """Append the vendor's status and dates to its history when they differ from the last row.
    Every writer of these fields calls it (here and caisse.vendors.service), in its transaction."""
    assert vendor.id is not None
    last = session.execute(select(AccreditationState).where(col(AccreditationState.vendor_id) == vendor.id)
                           .order_by(col(AccreditationState.id).desc()).limit(1)).scalar_one_or_none()
    state = (vendor.convention_status, vendor.convention_start, vendor.convention_end)
    if last is None or (last.status, last.starts_on, last.ends_on) != state:
        session.add(AccreditationState(vendor_id=vendor.id, status=state[0], starts_on=state[1], ends_on=state[2], since=utcnow()))
        session.flush()


# Judging a moment ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class State:
    status: str
    starts_on: date | None
    ends_on: date | None
    since_s: int


def states(session: Session, *, vendor_id: int) -> list[State]:
    """The vendor's accreditation history, oldest first (one row for most vendors)."""
    rows = session.execute(select(col(AccreditationState.status), col(AccreditationState.starts_on),
                                  col(AccreditationState.ends_on), col(AccreditationState.since))
                           .where(col(AccreditationState.vendor_id) == vendor_id)
                           .order_by(col(AccreditationState.since), col(AccreditationState.id))).all()
    return [State(status, starts_on, ends_on, unix_s(since)) for status, starts_on, ends_on, since in rows]


def local_date(moment_s: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(moment_s, zone).date()


def unaccredited_reason(history: list[State], moment_s: int, zone: ZoneInfo) -> str | None:
    """None if the vendor could take payments at `moment_s`, else the French hold reason. The
    state in force is the last one begun at or before the moment; before the first, the first
    (nothing older is known)."""
    if not history:
        return None  # a vendor made by hand without its history: nothing to judge it on
    state = history[0]
    for candidate in history:
        if candidate.since_s > moment_s:
            break
        state = candidate
    day = local_date(moment_s, zone)
    if state.status != ConventionStatus.ACTIVE:
        return f"commerce non conventionné au moment du paiement (statut : {STATUS_LABELS.get(state.status, state.status)})"
    if state.ends_on is not None and day > state.ends_on:
        return f"paiement après la fin du conventionnement (le {state.ends_on:%d/%m/%Y})"
    if state.starts_on is not None and day < state.starts_on:
        return f"paiement avant le début du conventionnement (le {state.starts_on:%d/%m/%Y})"
    return None


def open_on(status: str, starts_on: date | None, ends_on: date | None, day: date) -> bool:
    """May an accreditation so take payments on `day`?"""
    return (status == ConventionStatus.ACTIVE and (starts_on is None or starts_on <= day)
            and (ends_on is None or day <= ends_on))


def may_take_payments(vendor: Vendor, *, now_s: int, zone: ZoneInfo) -> bool:
    return open_on(vendor.convention_status, vendor.convention_start, vendor.convention_end, local_date(now_s, zone))


def ends_at_s(vendor: Vendor, *, zone: ZoneInfo) -> int | None:
    """The Unix second the accreditation ends at: midnight, local time, after its end date."""
    if vendor.convention_end is None:
        return None
    return int(datetime.combine(vendor.convention_end + timedelta(days=1), time(), zone).astimezone(UTC).timestamp())


# Warnings ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Ending:
    vendor_id: int
    name: str
    ends_on: date
    days_left: int  # 0: its last day is today


def ending_soon(session: Session, *, today: date, days: int = WARNING_DAYS) -> list[Ending]:
    """Active accreditations whose last day is within `days` of today, soonest first."""
    rows = session.execute(select(col(Vendor.id), col(Vendor.name), col(Vendor.convention_end))
                           .where(col(Vendor.convention_status) == ConventionStatus.ACTIVE,
                                  col(Vendor.convention_end).between(today, today + timedelta(days=days)))
                           .order_by(col(Vendor.convention_end), col(Vendor.id))).all()
    return [Ending(vendor_id, name, ends_on, (ends_on - today).days) for vendor_id, name, ends_on in rows]


def warning(vendor: Vendor, *, today: date, days: int = WARNING_DAYS) -> str | None:
    """The French warning of the vendor's page, or None."""
    end = vendor.convention_end
    if vendor.convention_status == ConventionStatus.ACTIVE and end is not None:
        if end < today:
            return f"Conventionnement échu le {end:%d/%m/%Y} : le commerce ne peut plus encaisser."
        if (end - today).days <= days:
            left = (end - today).days
            when = "aujourd'hui" if left == 0 else f"dans {left} jour{'s' if left > 1 else ''}"
            return f"Le conventionnement se termine le {end:%d/%m/%Y} ({when}) : à renouveler ou à clore."
    return None


def _vendor(session: Session, *, vendor_id: int, for_update: bool = False) -> Vendor:
    return get_or_not_found(session, Vendor, vendor_id, code="vendor_not_found", for_update=for_update)


def _shown(field: str, value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, date):
        return f"{value:%d/%m/%Y}"
    if field == "status" and isinstance(value, str):
        return STATUS_LABELS.get(value, value)
    return str(value)


def _with_os_user(detail: dict[str, object], os_user: str | None) -> dict[str, object]:
    return {**detail, "os_user": os_user} if os_user else detail
