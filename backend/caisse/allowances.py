"""Monthly allowances (docs/settlement.md): the committee's rule, pro rata, unspent money.

`allocate` credits every household once per month: the reference `allowance:{h}:{YYYY-MM}` is the
idempotency key, so a second run credits only households that were missing (a household
registered since), and reports the rest as already credited. Unspent money is handled first, by
a transfer back to the fund (`expiry:{h}:{YYYY-MM}`), so the ledger shows it.
Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlmodel import Session

from caisse import ledger
from caisse.config import Settings
from caisse.errors import Conflict, InvalidInput
from caisse.models import AllowanceMonth, Contribution, Household, LedgerTransfer, utcnow
from caisse.sync import bump_cards

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        found = _MONTH.match(text.strip())
        if found is None:
            raise InvalidInput("invalid_month", f"a month is written YYYY-MM, not {text!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def next_start(self) -> datetime:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return datetime(year, month, 1, tzinfo=UTC)


def allowance_reference(household_id: int, month: Month) -> str:
    return f"allowance:{household_id}:{month}"


def expiry_reference(household_id: int, month: Month) -> str:
    return f"expiry:{household_id}:{month}"


@dataclass(slots=True)
class AllocationReport:
    month: str
    credited_households: int = 0
    credited_cents: int = 0
    already_credited: int = 0
    expired_households: int = 0
    expired_cents: int = 0
    # Credited earlier with another amount (the rule or the contributions changed since): left
    # as they are, reported so a person decides. Immutable transfers: a correction is a new one.
    differing: list[tuple[int, int, int]] = field(default_factory=list)  # (household, posted, now)


def monthly_amount_cents(
    *, settings: Settings, members: int, joined: datetime, month: Month, average_contribution_cents: int
) -> int:
    """The allowance of one household for `month`, in cents, before any unspent-money policy."""
    if settings.allowance_rule == "flat":
        amount = settings.allowance_flat_cents
    elif settings.allowance_rule == "per_member":
        amount = settings.allowance_base_cents + settings.allowance_per_extra_member_cents * (members - 1)
    else:
        amount = average_contribution_cents
    if joined.tzinfo is None:
        joined = joined.replace(tzinfo=UTC)
    joined_day = joined.date()
    if settings.allowance_pro_rata and joined_day > month.first_day and joined_day.month == month.month and joined_day.year == month.year:
        days_left = month.days - joined_day.day + 1
        amount = amount * days_left // month.days  # rounded down: never more than the rule
    return amount


def allocate(session: Session, *, month: str, settings: Settings) -> AllocationReport:
    """Credit every household registered before the end of `month`. Idempotent per household."""
    period = Month.parse(month)
    state = session.get(AllowanceMonth, str(period))
    if state is not None and state.closed_at is not None:
        raise Conflict("month_closed", f"month {period} is closed: allowances can no longer be allocated")
    households = session.execute(
        select(Household.id, Household.members, Household.created_at)
        .where(Household.created_at < period.next_start)  # type: ignore[arg-type, operator]
        .order_by(Household.id)  # type: ignore[arg-type]
    ).all()
    report = AllocationReport(month=str(period))
    if not households:
        return report
    average = _average_contribution_cents(session, month=period, households=len(households))
    fund = ledger.ensure_account(session, code=ledger.ALLOWANCE_FUND, kind="allowance_fund")
    members = ledger.account_ids(session, codes=[ledger.member_code(h) for h, _, _ in households])
    posted = dict(
        session.execute(
            select(LedgerTransfer.reference, LedgerTransfer.amount_cents).where(
                LedgerTransfer.reference.like(f"allowance:%:{period}")  # type: ignore[attr-defined]
            )
        ).all()
    )
    balances = ledger.balances_by_code(session, codes=[ledger.member_code(h) for h, _, _ in households])
    transfers: list[ledger.Transfer] = []
    credited: list[int] = []
    for household_id, size, joined in households:
        amount = monthly_amount_cents(settings=settings, members=size, joined=joined, month=period,
                                      average_contribution_cents=average)
        reference = allowance_reference(household_id, period)
        if reference in posted:
            report.already_credited += 1
            if posted[reference] != amount:
                report.differing.append((household_id, posted[reference], amount))
            continue
        member = members[ledger.member_code(household_id)]
        excess = _unspent_to_expire(settings=settings, balance_cents=balances.get(ledger.member_code(household_id), 0))
        if excess > 0:
            transfers.append(ledger.Transfer(member, fund, excess, ledger.TransferKind.EXPIRY,
                                             expiry_reference(household_id, period), f"unspent before {period}"))
            report.expired_households += 1
            report.expired_cents += excess
        if amount > 0:
            transfers.append(ledger.Transfer(fund, member, amount, ledger.TransferKind.ALLOWANCE, reference,
                                             f"allowance {period}"))
            report.credited_households += 1
            report.credited_cents += amount
        credited.append(household_id)
    ledger.post_transfers(session, transfers=transfers)
    if credited:
        bump_cards(session, household_ids=credited)
    if state is None:
        session.add(AllowanceMonth(month=str(period)))
    session.flush()
    return report


def close_month(session: Session, *, month: str) -> AllowanceMonth:
    """Close a month: `allocate` refuses it from now on. Closing twice keeps the first time."""
    period = Month.parse(month)
    state = session.get(AllowanceMonth, str(period))
    if state is None:
        state = AllowanceMonth(month=str(period))
    if state.closed_at is None:
        state.closed_at = utcnow()
        session.add(state)
        session.flush()
    return state


def _unspent_to_expire(*, settings: Settings, balance_cents: int) -> int:
    if balance_cents <= 0:
        return 0
    if settings.allowance_unspent == "expire":
        return balance_cents
    return max(0, balance_cents - settings.allowance_carry_over_cap_cents)


def _average_contribution_cents(session: Session, *, month: Month, households: int) -> int:
    """The month's contributions shared equally among the households, rounded down."""
    total = session.execute(
        select(func.coalesce(func.sum(Contribution.amount_cents), 0)).where(Contribution.month == str(month))  # type: ignore[arg-type]
    ).scalar_one()
    return int(total) // households
