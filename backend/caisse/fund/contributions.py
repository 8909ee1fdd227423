"""Contributions by choice: the indicative scale, the floor, and what each household owes and paid
(docs/settlement.md, "Contributions by choice"; staff guide docs/guide/cotisations.md).

Each household chooses its monthly contribution (caisse.members.means); the caisse shows beside it the
amount its scale suggests for the household's means, and refuses a choice below its floor. Due:
the chosen amount for every month since the household joined (its first month pro rata, as its
allowance, when `allowance_pro_rata`). Received: the contribution register, reversals left out.
Payments cover the oldest months first, so a household is behind by the months they do not cover.

The allowance is a right: nothing here, nor anywhere in the software, stops or reduces an
allowance because of a missed contribution. This module lists; it does not chase.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlmodel import Session, col

from caisse.config import MeansKind, Settings
from caisse.fund.service import suggested_contribution_cents
from caisse.ledger.corrections import reversed_sql
from caisse.members import means as household_means
from caisse.models import Household, HouseholdMeans
from caisse.months import Month


def indicative_cents(row: HouseholdMeans | None, *, settings: Settings) -> int | None:
    """What the caisse's scale suggests for these means, never below the floor; None when the means
    the caisse's scale reads (`means_kind`) are not recorded."""
    if row is None:
        return None
    if settings.means_kind == MeansKind.QUARTILE:
        if row.income_quartile is None:
            return None
        return max(settings.contribution_by_quartile_cents[row.income_quartile - 1], settings.contribution_minimum_cents)
    if row.monthly_income_cents is None:
        return None
    return suggested_contribution_cents(income_cents=row.monthly_income_cents, settings=settings)


@dataclass(frozen=True, slots=True)
class HouseholdDues:
    household_id: int
    name: str
    joined_month: str
    size: int
    income_quartile: int | None
    monthly_income_cents: int | None
    chosen_cents: int | None  # the choice in force in the month asked for; None: not recorded
    indicative_cents: int | None
    due_cents: int
    received_cents: int
    behind_cents: int  # due - received, when positive
    months_behind: int  # months with a due their payments (oldest months first) do not cover
    first_month_behind: str | None


def dues(session: Session, *, month: str, settings: Settings) -> list[HouseholdDues]:
    """Every household that joined by the end of `month`: due and received up to that month, or
    up to its leaving month if it left before."""
    period = Month.parse(month)
    zone = ZoneInfo(settings.settlement_timezone)
    # The bound in UTC: SQLite compares the stored UTC text.
    households = session.execute(select(col(Household.id), col(Household.name), col(Household.members),
                                        col(Household.created_at), col(Household.left_on))
                                 .where(col(Household.created_at) < period.ends_at(zone).astimezone(UTC))
                                 .order_by(col(Household.id))).all()
    history = household_means.history(session, up_to=str(period))
    received = _received(session, up_to=str(period))
    result = []
    for household_id, name, members, created_at, left_on in households:
        joined = _local(created_at, zone)
        rows = history.get(household_id, [])
        # Its leaving month is its last (caisse.members.service): the last allowance, the last contribution due.
        until = period if left_on is None else min(period, Month(left_on.year, left_on.month))
        monthly = _due_by_month(rows, joined=joined, until=until, pro_rata=settings.allowance_pro_rata)
        paid = received.get(household_id, 0)
        due = sum(amount for _, amount in monthly)
        behind = [m for m, remaining in _uncovered(monthly, paid) if remaining > 0]
        now = household_means.in_force(rows, str(period))
        result.append(HouseholdDues(
            household_id=household_id, name=name, joined_month=str(Month.of(joined, zone)), size=now.size if now else members,
            income_quartile=now.income_quartile if now else None,
            monthly_income_cents=now.monthly_income_cents if now else None,
            chosen_cents=now.chosen_contribution_cents if now else None, indicative_cents=indicative_cents(now, settings=settings),
            due_cents=due, received_cents=paid, behind_cents=max(0, due - paid), months_behind=len(behind),
            first_month_behind=behind[0] if behind else None))
    return result


def behind(session: Session, *, month: str, settings: Settings) -> list[HouseholdDues]:
    """Households whose payments do not cover what they chose up to `month`, most behind first."""
    return sorted((d for d in dues(session, month=month, settings=settings) if d.behind_cents > 0),
                  key=lambda d: (-d.behind_cents, d.household_id))


def _due_by_month(rows: list[HouseholdMeans], *, joined: datetime, until: Month, pro_rata: bool) -> list[tuple[str, int]]:
    """(month, due) from the month the household joined (`joined`: local time) to `until`: the
    choice in force each month, nothing without one; the first month pro rata of the days left,
    rounded down, as the allowance."""
    first = Month(joined.year, joined.month)
    monthly = []
    current = first
    while current <= until:
        row = household_means.in_force(rows, str(current))
        amount = (row.chosen_contribution_cents or 0) if row is not None else 0
        if current == first and pro_rata:
            amount = amount * (current.days - joined.day + 1) // current.days
        monthly.append((str(current), amount))
        current = current.shifted(1)
    return monthly


def _uncovered(monthly: list[tuple[str, int]], paid_cents: int) -> list[tuple[str, int]]:
    """Each month with what the payments, applied to the oldest months first, leave of its due."""
    left = paid_cents
    result = []
    for month, amount in monthly:
        covered = min(left, amount)
        left -= covered
        result.append((month, amount - covered))
    return result


def _received(session: Session, *, up_to: str) -> dict[int, int]:
    """Each household's contributions registered for `up_to` or before, less those reversed."""
    return {int(h): int(cents) for h, cents in session.execute(text(
        "SELECT c.household_id, SUM(c.amount_cents) FROM contribution c"
        f" WHERE c.month <= :m AND NOT {reversed_sql('c.reference')} GROUP BY c.household_id"), {"m": up_to})}


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(zone)  # SQLite: naive UTC
