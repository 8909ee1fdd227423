"""Monthly allowances (docs/settlement.md): the committee's rule, pro rata, unspent money.

The rule is a row of `allowance_rule`, in force from its month until the next one; the settings
give it only when the table has none, so a caisse can start without deciding anything.

`allocate` credits every member household once per month, from the month it joined to the month
it leaves, in the caisse's time zone (a household created at 2026-03-31T22:30Z joined in April in
Paris): the reference `allowance:{h}:{YYYY-MM}` is the
idempotency key, so a second run credits only households that were missing (a household
registered since), and reports the rest as already credited. Unspent money is handled first, by
a transfer back to the fund (`expiry:{h}:{YYYY-MM}`), so the ledger shows it.
Each step is audited as `by` (caisse.staff.accounts.staff_actor) in the caller's transaction.
Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlmodel import Session, col

from caisse import audit
from caisse.cards.versions import bump_cards
from caisse.config import Settings
from caisse.errors import Conflict, InvalidInput
from caisse.ledger import postings as ledger
from caisse.ledger.corrections import reversed_sql
from caisse.members.means import current_month, sizes_at, sync_current_sizes
from caisse.models import AllowanceKind, AllowanceMonth, AllowanceRule, Household, LedgerTransfer, UnspentPolicy, utcnow
from caisse.months import Month
from caisse.staff import accounts


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




@dataclass(frozen=True, slots=True)
class Rule:
    """The rule in force for a month: from the `allowance_rule` table, or the settings' default."""

    rule: str
    flat_cents: int
    base_cents: int
    per_extra_member_cents: int
    pro_rata: bool
    unspent: str
    carry_over_cap_cents: int
    effective_month: str | None = None  # None: no rule in the table, the settings apply

    @classmethod
    def from_settings(cls, settings: Settings) -> Rule:
        return cls(settings.allowance_rule, settings.allowance_flat_cents, settings.allowance_base_cents,
                   settings.allowance_per_extra_member_cents, settings.allowance_pro_rata, settings.allowance_unspent,
                   settings.allowance_carry_over_cap_cents)

    @classmethod
    def from_row(cls, row: AllowanceRule) -> Rule:
        return cls(row.rule, row.flat_cents, row.base_cents, row.per_extra_member_cents, row.pro_rata, row.unspent,
                   row.carry_over_cap_cents, row.effective_month)


def rule_in_force(session: Session, *, month: str, settings: Settings) -> Rule:
    """The latest rule effective from `month` or before; the settings when there is none."""
    period = Month.parse(month)
    row = session.execute(
        select(AllowanceRule).where(col(AllowanceRule.effective_month) <= str(period))
        .order_by(col(AllowanceRule.effective_month).desc()).limit(1)
    ).scalar_one_or_none()
    return Rule.from_settings(settings) if row is None else Rule.from_row(row)


def list_rules(session: Session) -> list[Rule]:
    rows = session.execute(select(AllowanceRule).order_by(col(AllowanceRule.effective_month))).scalars()
    return [Rule.from_row(row) for row in rows]


_RULE_FIELDS = ("rule", "flat_cents", "base_cents", "per_extra_member_cents", "pro_rata", "unspent", "carry_over_cap_cents")


def set_rule(
    session: Session, *, effective_month: str, by: str, settings: Settings, rule: str | None = None,
    flat_cents: int | None = None, base_cents: int | None = None, per_extra_member_cents: int | None = None,
    pro_rata: bool | None = None, unspent: str | None = None, carry_over_cap_cents: int | None = None,
    os_user: str | None = None,
) -> Rule:
    """The rule from `effective_month` on: the one in force then, with the given fields changed.

    A month already allocated keeps what it was credited: a rule can only start in a month not
    allocated yet (a correction of a credited month is a new transfer, decided by a person)."""
    by = accounts.staff_actor(session, by=by, os_user=os_user)
    period = Month.parse(effective_month)
    allocated = session.execute(
        select(col(AllowanceMonth.month)).where(col(AllowanceMonth.month) >= str(period)).order_by(col(AllowanceMonth.month)).limit(1)
    ).scalar_one_or_none()
    if allocated is not None:
        raise Conflict("month_allocated", f"allowances of {allocated} are allocated already: a new rule starts after it")
    base = rule_in_force(session, month=str(period), settings=settings)
    changed = Rule(
        rule if rule is not None else base.rule,
        flat_cents if flat_cents is not None else base.flat_cents,
        base_cents if base_cents is not None else base.base_cents,
        per_extra_member_cents if per_extra_member_cents is not None else base.per_extra_member_cents,
        pro_rata if pro_rata is not None else base.pro_rata,
        unspent if unspent is not None else base.unspent,
        carry_over_cap_cents if carry_over_cap_cents is not None else base.carry_over_cap_cents,
        str(period),
    )
    _check_rule(changed)
    row = session.get(AllowanceRule, str(period))
    if row is not None and Rule.from_row(row) == changed:
        return changed  # recorded already (a form sent twice): nothing changes, nothing to audit
    if row is None:
        row = AllowanceRule(effective_month=str(period), rule=changed.rule, flat_cents=changed.flat_cents, base_cents=changed.base_cents,
                            per_extra_member_cents=changed.per_extra_member_cents, pro_rata=changed.pro_rata, unspent=changed.unspent,
                            carry_over_cap_cents=changed.carry_over_cap_cents, set_by=by)
    else:
        for name in _RULE_FIELDS:
            setattr(row, name, getattr(changed, name))
        row.set_by = by
    session.add(row)
    session.flush()
    audit.record(session, actor=by, action="allowance.rule", subject=f"month:{period}",
                 detail={name: getattr(changed, name) for name in _RULE_FIELDS}, os_user=os_user)
    return changed


def _check_rule(rule: Rule) -> None:
    if rule.rule not in tuple(AllowanceKind):
        raise InvalidInput("invalid_allowance_rule", f"the rule is one of {', '.join(AllowanceKind)}, not {rule.rule!r}")
    if rule.unspent not in tuple(UnspentPolicy):
        raise InvalidInput("invalid_unspent_policy", f"unspent money is {' or '.join(UnspentPolicy)}, not {rule.unspent!r}")
    for name in ("flat_cents", "base_cents", "per_extra_member_cents", "carry_over_cap_cents"):
        if getattr(rule, name) < 0:
            raise InvalidInput("negative_amount", f"{name} cannot be negative")


def monthly_amount_cents(
    *, rule: Rule, members: int, joined: datetime, month: Month, average_contribution_cents: int
) -> int:
    """The allowance of one household for `month`, in cents, before any unspent-money policy."""
    if rule.rule == AllowanceKind.FLAT:
        amount = rule.flat_cents
    elif rule.rule == AllowanceKind.PER_MEMBER:
        amount = rule.base_cents + rule.per_extra_member_cents * (members - 1)
    else:
        amount = average_contribution_cents
    if joined.tzinfo is None:
        joined = joined.replace(tzinfo=UTC)
    joined_day = joined.date()
    if rule.pro_rata and joined_day > month.first_day and joined_day.month == month.month and joined_day.year == month.year:
        days_left = month.days - joined_day.day + 1
        amount = amount * days_left // month.days  # rounded down: never more than the rule
    return amount


def allocate(session: Session, *, month: str, settings: Settings, by: str = accounts.SYSTEM,
             os_user: str | None = None) -> AllocationReport:
    """Credit every household that joined by the end of `month` and has not left before it (its
    leaving month, caisse.members.service, is its last), by the rule in force for the month
    (`rule_in_force`). Idempotent per household; audited when it credits or expires anything."""
    by = accounts.staff_actor(session, by=by, os_user=os_user)
    period = Month.parse(month)
    state = session.get(AllowanceMonth, str(period))
    if state is not None and state.closed_at is not None:
        raise Conflict("month_closed", f"month {period} is closed: allowances can no longer be allocated")
    zone = ZoneInfo(settings.settlement_timezone)  # a month ends at local midnight, as payments' months do
    households = session.execute(  # the bound in UTC: SQLite compares the stored UTC text
        select(col(Household.id), col(Household.members), col(Household.created_at))
        .where(col(Household.created_at) < period.ends_at(zone).astimezone(UTC))
        .where(col(Household.left_on).is_(None) | (col(Household.left_on) >= period.first_day))
        .order_by(col(Household.id))
    ).all()
    report = AllocationReport(month=str(period))
    if not households:
        return report
    rule = rule_in_force(session, month=str(period), settings=settings)
    average = _average_contribution_cents(session, month=period, households=len(households))
    fund = ledger.ensure_account(session, code=ledger.Account.ALLOWANCE_FUND, kind=ledger.AccountKind.ALLOWANCE_FUND)
    members = ledger.account_ids(session, codes=[ledger.member_code(h) for h, _, _ in households])
    posted = dict(
        session.execute(
            select(col(LedgerTransfer.reference), col(LedgerTransfer.amount_cents)).where(
                col(LedgerTransfer.reference).like(f"allowance:%:{period}")
            )
        ).all()
    )
    balances = ledger.balances_by_code(session, codes=[ledger.member_code(h) for h, _, _ in households])
    transfers: list[ledger.Transfer] = []
    credited: list[int] = []
    sizes = sizes_at(session, month=str(period), household_ids=[h for h, _, _ in households])
    if period == current_month(settings):
        sync_current_sizes(session, sizes=sizes)
    for household_id, size, joined in households:
        # The size recorded for that month (caisse.members.means), else the household's current size.
        amount = monthly_amount_cents(rule=rule, members=sizes.get(household_id, int(size)), joined=_at_utc(joined).astimezone(zone),
                                      month=period, average_contribution_cents=average)
        reference = allowance_reference(household_id, period)
        if reference in posted:
            report.already_credited += 1
            if posted[reference] != amount:
                report.differing.append((household_id, posted[reference], amount))
            continue
        member = members[ledger.member_code(household_id)]
        excess = _unspent_to_expire(rule=rule, balance_cents=balances.get(ledger.member_code(household_id), 0))
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
    if transfers:
        audit.record(session, actor=by, action="allowance.allocate", subject=f"month:{period}", detail={
            "credited_households": report.credited_households, "credited_cents": report.credited_cents,
            "already_credited": report.already_credited, "expired_households": report.expired_households,
            "expired_cents": report.expired_cents}, os_user=os_user)
    return report


def close_month(session: Session, *, month: str, by: str = accounts.SYSTEM, os_user: str | None = None) -> AllowanceMonth:
    """Close a month: `allocate` refuses it from now on. Closing twice keeps the first time (and
    its one audit entry)."""
    by = accounts.staff_actor(session, by=by, os_user=os_user)
    period = Month.parse(month)
    state = session.get(AllowanceMonth, str(period))
    if state is None:
        state = AllowanceMonth(month=str(period))
    if state.closed_at is None:
        state.closed_at = utcnow()
        session.add(state)
        session.flush()
        audit.record(session, actor=by, action="allowance.close_month", subject=f"month:{period}", os_user=os_user)
    return state


def first_open_month(session: Session, *, month: str) -> Month:
    """`month`, or when it is closed the first month after it that is not: where a contribution
    for a closed month is counted (docs/settlement.md, "Closed months")."""
    period = Month.parse(month)
    closed = set(session.execute(select(col(AllowanceMonth.month)).where(
        col(AllowanceMonth.month) >= str(period), col(AllowanceMonth.closed_at).is_not(None))).scalars())
    while str(period) in closed:
        period = period.shifted(1)
    return period


def _unspent_to_expire(*, rule: Rule, balance_cents: int) -> int:
    if balance_cents <= 0:
        return 0
    if rule.unspent == UnspentPolicy.EXPIRE:
        return balance_cents
    return max(0, balance_cents - rule.carry_over_cap_cents)


def contributed_cents(session: Session, *, month: str) -> int:
    """The month's contributions, less those reversed (caisse.ledger.corrections)."""
    return int(session.execute(text("SELECT SUM(c.amount_cents) FROM contribution c"
                                    f" WHERE c.month = :m AND NOT {reversed_sql('c.reference')}"), {"m": month}).scalar_one() or 0)


def _average_contribution_cents(session: Session, *, month: Month, households: int) -> int:
    """The month's contributions (less those reversed) shared equally among the households, rounded down."""
    return contributed_cents(session, month=str(month)) // households


def _at_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def rule_text(rule: Rule) -> str:
    """The rule in one French sentence, amounts in euros (the CLI and the console show it)."""
    from caisse.money import euros

    amount = {AllowanceKind.FLAT: f"forfait de {euros(rule.flat_cents)} EUR par foyer",
              AllowanceKind.PER_MEMBER: f"{euros(rule.base_cents)} EUR plus {euros(rule.per_extra_member_cents)} EUR par membre supplémentaire",
              AllowanceKind.AVERAGE_CONTRIBUTION: "moyenne des cotisations du mois"}[AllowanceKind(rule.rule)]
    prorata = "au prorata des jours restants pour un foyer arrivé en cours de mois" if rule.pro_rata else "sans prorata"
    left = (f"reliquat conservé jusqu'à {euros(rule.carry_over_cap_cents)} EUR" if rule.unspent == UnspentPolicy.CARRY_OVER
            else "reliquat rendu au fonds chaque mois")
    return f"{amount}, {prorata}, {left}."
