"""Where the food money goes, month by month (docs/console.md, "Flows"): the committee's questions.

Spending is the accepted payments (record kind 1) that are not voided; a void and a payment
rejected in review both mark the payment voided, so neither counts. Held payments count: the
member has spent the money even if the vendor waits for a decision. A payment belongs to the
month of its terminal time in the caisse's time zone (settings.settlement_timezone), like the
budget's spending. All amounts are integer cents, shares integer basis points (10 000 = 100 %).

Nothing here writes. One query scans the period's records once (there is no index on time) and
groups them by month, vendor and household; the breakdowns are added up from those rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import case, false, func, select
from sqlmodel import Session

from caisse.db import table_of
from caisse.errors import InvalidInput
from caisse.models import Household, RecordStatus, Terminal, TransactionRecord, Vendor, VendorKind
from caisse.months import Month
from caisse_common.protocol import Kind

MAX_MONTHS = 36
PRODUCER_KINDS = (str(VendorKind.PRODUCER),)  # "reaching producers": paid to a producer's own terminal

_record = table_of(TransactionRecord)
_terminal = table_of(Terminal)
_vendor = table_of(Vendor)
_household = table_of(Household)


@dataclass(frozen=True, slots=True)
class VendorActivity:
    vendor_id: int
    name: str
    kind: str
    zone: str
    members: tuple[int, ...]  # distinct households that paid there, per month
    spent_cents: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Flows:
    months: tuple[str, ...]
    total_cents: tuple[int, ...]
    by_vendor_kind: dict[str, tuple[int, ...]]
    by_vendor_zone: dict[str, tuple[int, ...]]  # where the money is spent
    by_household_zone: dict[str, tuple[int, ...]]  # where the members who spend it live
    producer_cents: tuple[int, ...]
    producer_share_bp: tuple[int | None, ...]  # None for a month without spending
    active_members: tuple[int, ...]  # distinct households that paid anywhere, per month
    vendors: tuple[VendorActivity, ...]


def month_span(*, first: str, last: str) -> list[Month]:
    start, end = Month.parse(first), Month.parse(last)
    count = (end.year - start.year) * 12 + end.month - start.month + 1
    if count < 1:
        raise InvalidInput("invalid_period", f"le mois de fin ({end}) précède le mois de début ({start})")
    if count > MAX_MONTHS:
        raise InvalidInput("invalid_period", f"une période compte au plus {MAX_MONTHS} mois")
    return [Month(start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1) for i in range(count)]


def share_bp(part_cents: int, total_cents: int) -> int | None:
    """part / total in basis points, rounded half up, exact in integers."""
    if total_cents <= 0:
        return None
    return (part_cents * 10_000 * 2 + total_cents) // (total_cents * 2)


def flows(session: Session, *, first: str, last: str, timezone: str) -> Flows:
    months = month_span(first=first, last=last)
    tally = _Tally(len(months))
    vendors = session.execute(select(_vendor.c.id, _vendor.c.name, _vendor.c.kind, _vendor.c.zone).order_by(_vendor.c.name, _vendor.c.id)).all()
    vendor_kind_zone = {vendor_id: (kind, zone) for vendor_id, _name, kind, zone in vendors}
    household_zone: dict[int, str] = {hid: zone for hid, zone in session.execute(select(_household.c.id, _household.c.zone))}
    for month, vendor_id, household_id, cents in _spending_rows(session, bounds=month_bounds(months, timezone=timezone)):
        kind, zone = vendor_kind_zone[vendor_id]
        tally.add(month, vendor_id=vendor_id, household_id=household_id, cents=cents,
                  kind=kind, vendor_zone=zone, household_zone=household_zone[household_id])
    total = tuple(sum(column) for column in zip(*tally.kinds.values(), strict=True)) if tally.kinds else (0,) * len(months)
    producers = tuple(sum(column) for column in zip(*(tally.kinds.get(kind, [0] * len(months)) for kind in PRODUCER_KINDS), strict=True))
    empty = (0,) * len(months)
    return Flows(
        months=tuple(str(month) for month in months),
        total_cents=total,
        by_vendor_kind=_frozen(tally.kinds),
        by_vendor_zone=_frozen(tally.vendor_zones),
        by_household_zone=_frozen(tally.household_zones),
        producer_cents=producers,
        producer_share_bp=tuple(share_bp(p, t) for p, t in zip(producers, total, strict=True)),
        active_members=tuple(len(households) for households in tally.active),
        vendors=tuple(VendorActivity(vendor_id=vid, name=name, kind=kind, zone=zone,
                                     members=tuple(tally.vendor_members.get(vid, empty)), spent_cents=tuple(tally.vendor_cents.get(vid, empty)))
                      for vid, name, kind, zone in vendors),
    )


def month_bounds(months: Sequence[Month], *, timezone: str) -> list[int]:
    """Unix seconds of local midnight starting each month, then the end of the last one."""
    zone = ZoneInfo(timezone)
    starts = [datetime.combine(m.first_day, time.min, tzinfo=zone) for m in months]
    starts.append(datetime.combine(months[-1].next_start.date(), time.min, tzinfo=zone))
    return [int(moment.timestamp()) for moment in starts]


# Query and tally -------------------------------------------------------------------------------

def _spending_rows(session: Session, *, bounds: list[int]) -> list[tuple[int, int, int, int]]:
    """The period's spending in one scan: (month index, vendor, household, cents), one row per
    household, vendor and month; everything else is added up from these rows."""
    month = case(*((_record.c.time < bound, index) for index, bound in enumerate(bounds[1:])), else_=len(bounds) - 1)
    payments = (
        select(month.label("month"), _terminal.c.vendor_id, _record.c.household_id, _record.c.amount_cents)
        .select_from(_record.join(_terminal, _terminal.c.id == _record.c.terminal_id))
        .where(_record.c.status == str(RecordStatus.ACCEPTED), _record.c.kind == Kind.PAYMENT, _record.c.voided == false(),
               _record.c.time >= bounds[0], _record.c.time < bounds[-1])
        .subquery()
    )
    query = (select(payments.c.month, payments.c.vendor_id, payments.c.household_id, func.sum(payments.c.amount_cents))
             .group_by(payments.c.month, payments.c.vendor_id, payments.c.household_id))
    return [(int(m), int(v), int(h), int(cents)) for m, v, h, cents in session.execute(query)]


class _Tally:
    """Sums per month (lists indexed by month) of the spending rows, by every breakdown."""

    def __init__(self, months: int) -> None:
        self.months = months
        self.kinds: dict[str, list[int]] = {}
        self.vendor_zones: dict[str, list[int]] = {}
        self.household_zones: dict[str, list[int]] = {}
        self.vendor_cents: dict[int, list[int]] = {}
        self.vendor_members: dict[int, list[int]] = {}  # a row is one household at one vendor in one month
        self.active: list[set[int]] = [set() for _ in range(months)]

    def add(self, month: int, *, vendor_id: int, household_id: int, cents: int, kind: str, vendor_zone: str, household_zone: str) -> None:
        for by_name, name in ((self.kinds, kind), (self.vendor_zones, vendor_zone), (self.household_zones, household_zone)):
            by_name.setdefault(name, [0] * self.months)[month] += cents
        for by_vendor, amount in ((self.vendor_cents, cents), (self.vendor_members, 1)):
            by_vendor.setdefault(vendor_id, [0] * self.months)[month] += amount
        self.active[month].add(household_id)


def _frozen(table: dict[str, list[int]]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(table[key]) for key in sorted(table)}
