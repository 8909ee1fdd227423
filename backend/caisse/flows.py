"""Where the food money goes, month by month (docs/console.md, "Flows"): the committee's questions.

Spending is the accepted payments (record kind 1) that are not voided; a void and a payment
rejected in review both mark the payment voided, so neither counts. Held payments count: the
member has spent the money even if the vendor waits for a decision. A payment belongs to the
month of its terminal time in the caisse's time zone (settings.settlement_timezone), like the
budget's spending. All amounts are integer cents, shares integer basis points (10 000 = 100 %).

Nothing here writes. Each query scans the months' records once; there is no index on time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, false, func, select
from sqlmodel import Session

from caisse.allowances import Month
from caisse.errors import InvalidInput
from caisse.models import Household, RecordStatus, Terminal, TransactionRecord, Vendor, VendorKind

MAX_MONTHS = 36
PRODUCER_KINDS = (str(VendorKind.PRODUCER),)  # "reaching producers": paid to a producer's own terminal

_record = TransactionRecord.__table__  # type: ignore[attr-defined]
_terminal = Terminal.__table__  # type: ignore[attr-defined]
_vendor = Vendor.__table__  # type: ignore[attr-defined]
_household = Household.__table__  # type: ignore[attr-defined]
_PAYMENT = 1


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
    bounds = month_bounds(months, timezone=timezone)
    kinds = _spending_by(session, _vendor.c.kind, bounds=bounds)
    total = tuple(sum(column) for column in zip(*kinds.values(), strict=True)) if kinds else (0,) * len(months)
    producers = tuple(sum(column) for column in zip(*(kinds.get(kind, (0,) * len(months)) for kind in PRODUCER_KINDS), strict=True))
    return Flows(
        months=tuple(str(month) for month in months),
        total_cents=total,
        by_vendor_kind=kinds,
        by_vendor_zone=_spending_by(session, _vendor.c.zone, bounds=bounds),
        by_household_zone=_spending_by(session, _household.c.zone, bounds=bounds),
        producer_cents=producers,
        producer_share_bp=tuple(share_bp(p, t) for p, t in zip(producers, total, strict=True)),
        active_members=_active_members(session, bounds=bounds),
        vendors=_vendor_activity(session, bounds=bounds),
    )


def month_bounds(months: Sequence[Month], *, timezone: str) -> list[int]:
    """Unix seconds of local midnight starting each month, then the end of the last one."""
    zone = ZoneInfo(timezone)
    starts = [datetime.combine(m.first_day, time.min, tzinfo=zone) for m in months]
    starts.append(datetime.combine(months[-1].next_start.date(), time.min, tzinfo=zone))
    return [int(moment.timestamp()) for moment in starts]


# Queries -----------------------------------------------------------------------------------------

def _spent_payments(bounds: list[int], *columns: ColumnElement[object]):  # type: ignore[no-untyped-def]
    """The spending of the period, one row per payment: month index, then `columns`."""
    month = case(*((_record.c.time < bound, index) for index, bound in enumerate(bounds[1:])), else_=len(bounds) - 1)
    return (
        select(month.label("month"), _record.c.amount_cents.label("amount_cents"), *columns)
        .select_from(_record.join(_terminal, _terminal.c.id == _record.c.terminal_id)
                     .join(_vendor, _vendor.c.id == _terminal.c.vendor_id)
                     .join(_household, _household.c.id == _record.c.household_id))
        .where(_record.c.status == str(RecordStatus.ACCEPTED), _record.c.kind == _PAYMENT, _record.c.voided == false(),
               _record.c.time >= bounds[0], _record.c.time < bounds[-1])
        .subquery()
    )


def _spending_by(session: Session, column: ColumnElement[object], *, bounds: list[int]) -> dict[str, tuple[int, ...]]:
    rows = _spent_payments(bounds, column.label("key"))
    query = select(rows.c.key, rows.c.month, func.sum(rows.c.amount_cents)).group_by(rows.c.key, rows.c.month)
    by_key: dict[str, list[int]] = {}
    for key, month, amount in session.execute(query):
        by_key.setdefault(str(key), [0] * (len(bounds) - 1))[int(month)] = int(amount)
    return {key: tuple(by_key[key]) for key in sorted(by_key)}


def _active_members(session: Session, *, bounds: list[int]) -> tuple[int, ...]:
    rows = _spent_payments(bounds, _record.c.household_id.label("household_id"))
    counts = [0] * (len(bounds) - 1)
    for month, members in session.execute(select(rows.c.month, func.count(rows.c.household_id.distinct())).group_by(rows.c.month)):
        counts[int(month)] = int(members)
    return tuple(counts)


def _vendor_activity(session: Session, *, bounds: list[int]) -> tuple[VendorActivity, ...]:
    rows = _spent_payments(bounds, _vendor.c.id.label("vendor_id"), _record.c.household_id.label("household_id"))
    query = (select(rows.c.vendor_id, rows.c.month, func.count(rows.c.household_id.distinct()), func.sum(rows.c.amount_cents))
             .group_by(rows.c.vendor_id, rows.c.month))
    months = len(bounds) - 1
    members: dict[int, list[int]] = {}
    spent: dict[int, list[int]] = {}
    for vendor_id, month, count, amount in session.execute(query):
        members.setdefault(vendor_id, [0] * months)[int(month)] = int(count)
        spent.setdefault(vendor_id, [0] * months)[int(month)] = int(amount)
    vendors = session.execute(select(_vendor.c.id, _vendor.c.name, _vendor.c.kind, _vendor.c.zone).order_by(_vendor.c.name, _vendor.c.id))
    return tuple(
        VendorActivity(vendor_id=vid, name=name, kind=kind, zone=zone,
                       members=tuple(members.get(vid, [0] * months)), spent_cents=tuple(spent.get(vid, [0] * months)))
        for vid, name, kind, zone in vendors
    )
