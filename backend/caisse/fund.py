"""Contributions and the euro fund (docs/settlement.md): contributions, matching funds, grants,
fees, and the monthly budget reconciled with the ledger.

The euros the caisse holds are the `fund` account. Money comes in from `income:*` accounts
(debited, so their balance is minus what they brought) and goes out to `expense:fees` and, for
vendors, through settlement to `vendor_paid`. Every posting has a reference with its month, so a
month's budget is read from the journal itself. Nothing here commits: the caller does.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlmodel import Session

from caisse import ledger
from caisse.allowances import Month
from caisse.config import Settings
from caisse.corrections import REVERSIBLE, reversed_sql
from caisse.db import get_by_id
from caisse.errors import CaisseError, Conflict, InvalidInput
from caisse.models import Contribution, Household, LedgerTransfer
from caisse.money import euros

FUND = "fund"
INCOME_CONTRIBUTIONS = "income:contributions"
INCOME_MATCHING = "income:matching"
INCOME_GRANTS = "income:grants"
EXPENSE_FEES = "expense:fees"
MAX_AMOUNT_CENTS = 100_000_000  # 1 000 000 EUR: catches a misplaced decimal point

_EUROS = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")
CSV_COLUMNS = ("household_id", "month", "amount_eur", "reference")


class Kind:
    CONTRIBUTION = "contribution"
    MATCHING = "matching"
    GRANT = "grant"
    FEE = "fee"


def parse_euros(value: str, *, zero_allowed: bool = False) -> int:
    """'12,50' or '12.50' -> 1250 cents, exactly (Decimal, never float). At most 2 decimals, > 0
    (or >= 0 with `zero_allowed`: a rule's amount may be nothing, a payment may not)."""
    cleaned = value.strip().replace("\u00a0", "").replace(" ", "").replace(",", ".")
    if not _EUROS.match(cleaned):  # digits, then at most 2 decimals: no sign, exponent, NaN
        raise InvalidInput("invalid_amount", f"{value!r} is not an amount in euros with at most 2 decimals")
    amount = Decimal(cleaned)
    cents = int(amount * 100)
    if not (0 if zero_allowed else 1) <= cents <= MAX_AMOUNT_CENTS:
        raise InvalidInput("invalid_amount", f"{value!r}: the amount must be positive and at most 1 000 000 EUR")
    return cents



def suggested_contribution_cents(*, income_cents: int, settings: Settings) -> int:
    """The contribution suggested for a monthly household income, never below the minimum."""
    for income_up_to, suggested in sorted(settings.contribution_brackets):
        if income_cents <= income_up_to:
            return max(suggested, settings.contribution_minimum_cents)
    return max(settings.contribution_above_brackets_cents, settings.contribution_minimum_cents)


def _accounts(session: Session) -> dict[str, int]:
    return {code: ledger.ensure_account(session, code=code, kind=code.split(":")[0])
            for code in (FUND, INCOME_CONTRIBUTIONS, INCOME_MATCHING, INCOME_GRANTS, EXPENSE_FEES)}


def _post_once(session: Session, *, debit: int, credit: int, amount_cents: int, kind: str, reference: str, memo: str | None) -> bool:
    """Post unless the reference exists: same body -> False (idempotent), other body -> Conflict."""
    existing = ledger.find_transfer(session, reference=reference)
    if existing is not None:
        if (existing.debit_account_id, existing.credit_account_id, existing.amount_cents) != (debit, credit, amount_cents):
            raise Conflict("reference_reused", f"reference {reference!r} was posted with a different body")
        return False
    ledger.post_transfer(session, debit=debit, credit=credit, amount_cents=amount_cents, kind=kind, reference=reference, memo=memo)
    return True


# Contributions ----------------------------------------------------------------------------------

def record_contribution(
    session: Session, *, household_id: int, month: str, amount_cents: int, settings: Settings, reference: str | None = None
) -> bool:
    """A household's contribution for a month, keyed by a person's reference (a receipt number;
    ledger.user_reference). Returns False if this reference was recorded already."""
    return _record_contribution(session, household_id=household_id, month=month, amount_cents=amount_cents, settings=settings,
                                reference=ledger.user_reference("contribution", reference or str(uuid.uuid4())))


def _record_contribution(
    session: Session, *, household_id: int, month: str, amount_cents: int, settings: Settings, reference: str
) -> bool:
    period = Month.parse(month)
    if get_by_id(session, Household, household_id) is None:
        raise InvalidInput("household_not_found", f"no household {household_id}")
    if not 0 < amount_cents <= MAX_AMOUNT_CENTS:
        raise InvalidInput("invalid_amount", "the amount must be positive and at most 1 000 000 EUR")
    if amount_cents < settings.contribution_minimum_cents:
        raise InvalidInput("below_minimum", f"the caisse's minimum contribution is {settings.contribution_minimum_cents} cents")
    existing = session.execute(select(Contribution).where(Contribution.reference == reference)).scalar_one_or_none()  # type: ignore[arg-type]
    if existing is not None:
        if (existing.household_id, existing.month, existing.amount_cents) != (household_id, str(period), amount_cents):
            raise Conflict("reference_reused", f"reference {reference!r} was recorded with a different body")
        return False
    accounts = _accounts(session)
    session.add(Contribution(household_id=household_id, month=str(period), amount_cents=amount_cents, reference=reference))
    session.flush()
    _post_once(session, debit=accounts[INCOME_CONTRIBUTIONS], credit=accounts[FUND], amount_cents=amount_cents,
               kind=Kind.CONTRIBUTION, reference=reference, memo=f"household {household_id} {period}")
    return True


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    already: int = 0
    imported_cents: int = 0
    fee_cents: int = 0
    errors: list[tuple[int, CaisseError]] = field(default_factory=list)  # (line number, what is wrong)


def import_contributions(session: Session, *, content: str, settings: Settings, skip_errors: bool = False) -> ImportReport:
    """CSV from the payment platform: columns household_id, month (YYYY-MM), amount_eur, reference;
    `;` or `,` separated, with a header line. Every line is checked first; with any error nothing
    is imported unless skip_errors, and then only the good lines are. The platform's fee
    (platform_fee_basis_points of what was imported) is posted once per file."""
    report = ImportReport()
    lines = content.splitlines()
    if not lines:
        raise InvalidInput("empty_file", "the file is empty")
    delimiter = ";" if lines[0].count(";") >= lines[0].count(",") else ","
    reader = csv.DictReader(io.StringIO(content), delimiter=delimiter)
    missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
    if missing:
        raise InvalidInput("missing_columns", f"line 1: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
    good: list[tuple[int, int, str, int, str]] = []
    seen: dict[str, int] = {}
    households = set(session.execute(select(Household.id)).scalars())
    for row in reader:
        line = reader.line_num
        try:
            household_id = int((row["household_id"] or "").strip())
            if household_id not in households:
                raise InvalidInput("household_not_found", f"no household {household_id}")
            month = str(Month.parse(row["month"] or ""))
            amount = parse_euros(row["amount_eur"] or "")
            if amount < settings.contribution_minimum_cents:
                raise InvalidInput("below_minimum", f"below the minimum contribution ({settings.contribution_minimum_cents} cents)")
            reference = (row["reference"] or "").strip()
            if not reference:
                raise InvalidInput("missing_reference", "the platform's reference is empty")
            if len(reference) > ledger.USER_KEY_MAX_CHARS:
                raise InvalidInput("invalid_reference", f"the platform's reference is over {ledger.USER_KEY_MAX_CHARS} characters")
            if reference in seen:
                raise InvalidInput("duplicate_reference", f"reference {reference!r} already on line {seen[reference]}")
            seen[reference] = line
        except ValueError:
            report.errors.append((line, InvalidInput("invalid_household_id", f"household_id {row['household_id']!r} is not a number")))
            continue
        except InvalidInput as error:
            report.errors.append((line, error))
            continue
        good.append((line, household_id, month, amount, reference))
    if report.errors and not skip_errors:
        return report
    for line, household_id, month, amount, reference in good:
        try:
            with session.begin_nested():
                # contribution:import:... : a person's key holds no ':', so none can take it.
                created = _record_contribution(session, household_id=household_id, month=month, amount_cents=amount,
                                               settings=settings, reference=f"contribution:import:{reference}")
        except Conflict as error:
            report.errors.append((line, error))
            continue
        report.imported += created
        report.already += not created
        report.imported_cents += amount if created else 0
    if report.errors and not skip_errors:
        raise Conflict("import_conflict", "; ".join(f"line {n}: {e.detail}" for n, e in report.errors))
    fee = (Decimal(report.imported_cents) * settings.platform_fee_basis_points / 10_000).quantize(Decimal(1), ROUND_HALF_UP)
    if fee > 0:
        digest = hashlib.sha256(content.encode()).hexdigest()[:32]
        month = good[0][2]
        _post_fee(session, amount_cents=int(fee), memo="payment platform fee", reference=f"fee:{Month.parse(month)}:import:{digest}")
        report.fee_cents = int(fee)
    return report


# Matching funds, grants, fees -------------------------------------------------------------------

def record_matching(session: Session, *, month: str, settings: Settings) -> int:
    """The partner adds matching_basis_points of the month's contributions (rounded down). Posts
    only what is still due, so rerunning after late contributions tops it up; returns the amount posted."""
    period = Month.parse(month)
    due = contributed_cents(session, month=str(period)) * settings.matching_basis_points // 10_000
    posted = _ledger_sum(session, f"matching:{period}:%")
    if due <= posted:
        return 0
    count = _count(session, f"matching:{period}:%")
    accounts = _accounts(session)
    _post_once(session, debit=accounts[INCOME_MATCHING], credit=accounts[FUND], amount_cents=due - posted, kind=Kind.MATCHING,
               reference=f"matching:{period}:{count + 1}", memo=f"matching {settings.matching_basis_points / 100}% of {period}")
    return due - posted


def contributed_cents(session: Session, *, month: str) -> int:
    """The month's contributions, less those reversed (caisse.corrections)."""
    return _sum(session, f"SELECT SUM(c.amount_cents) FROM contribution c WHERE c.month = :m AND NOT {reversed_sql('c.reference')}",
                m=month)


def record_grant(session: Session, *, month: str, amount_cents: int, source: str, reference: str) -> bool:
    """A grant received, keyed by a person's reference (ledger.user_reference)."""
    period = Month.parse(month)
    accounts = _accounts(session)
    return _post_once(session, debit=accounts[INCOME_GRANTS], credit=accounts[FUND], amount_cents=amount_cents,
                      kind=Kind.GRANT, reference=ledger.user_reference(f"grant:{period}", reference), memo=source[:300])


def record_fee(session: Session, *, month: str, amount_cents: int, memo: str, reference: str) -> bool:
    """A fee paid, keyed by a person's reference (ledger.user_reference)."""
    period = Month.parse(month)
    return _post_fee(session, amount_cents=amount_cents, memo=memo, reference=ledger.user_reference(f"fee:{period}", reference))


def _post_fee(session: Session, *, amount_cents: int, memo: str, reference: str) -> bool:
    accounts = _accounts(session)
    return _post_once(session, debit=accounts[FUND], credit=accounts[EXPENSE_FEES], amount_cents=amount_cents,
                      kind=Kind.FEE, reference=reference, memo=memo[:300])


# Budget -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Budget:
    month: str
    contributions_cents: int
    matching_cents: int
    grants_cents: int
    fees_cents: int
    allowances_cents: int
    expired_cents: int
    spent_cents: int
    payouts_cents: int
    fund_balance_cents: int  # euros held at the end of the month: all income - fees - payouts so far
    reconciled: bool
    differences: tuple[str, ...]


def budget(session: Session, *, month: str, settings: Settings) -> Budget:
    [result] = budgets(session, months=[month], settings=settings)
    return result


def budgets(session: Session, *, months: Sequence[str], settings: Settings) -> list[Budget]:
    """The budget of each month, in the order given: a few grouped passes whatever the number of
    months (the console's Budget page shows twelve or more), each month exactly as alone."""
    periods = [Month.parse(month) for month in months]
    names = sorted({str(period) for period in periods})
    # A reversed contribution counts neither in the register nor in the ledger (its transfer and
    # its reversal cancel out): both sides are compared without it.
    kept = text(f"NOT {reversed_sql('contribution.reference')}")
    contributions = _rows(session, select(Contribution.month, func.sum(Contribution.amount_cents))
                          .where(Contribution.month.in_(names), kept).group_by(Contribution.month))  # type: ignore[attr-defined]
    ledger_contributions = _rows(session, select(Contribution.month, func.sum(LedgerTransfer.amount_cents))
                                 .join(LedgerTransfer, LedgerTransfer.reference == Contribution.reference)  # type: ignore[arg-type]
                                 .where(Contribution.month.in_(names), kept).group_by(Contribution.month))  # type: ignore[attr-defined]
    reference = _byte_ordered_reference(session)
    matching, grants, fees = (_by_reference_month(session, reference, prefix=f"{p}:", month_first=True)
                              for p in ("matching", "grant", "fee"))
    allowances, expired = (_by_reference_month(session, reference, prefix=f"{p}:", month_first=False) for p in ("allowance", "expiry"))
    reversals = _reversed_entries(session)
    for kind, totals in ((Kind.MATCHING, matching), (Kind.GRANT, grants), (Kind.FEE, fees), (ledger.TransferKind.ALLOWANCE, allowances)):
        for reversed_kind, month, cents in reversals:
            if reversed_kind == kind and month is not None:
                totals[month] = totals.get(month, 0) - cents
    spent = _spent_by_month(session, periods=periods, zone=ZoneInfo(settings.settlement_timezone))
    payouts_by_day = _payouts_by_run_date(session)
    flows = _fund_flows(session) + [(kind, month, cents if kind == Kind.FEE else -cents) for kind, month, cents in reversals
                                    if kind in (Kind.CONTRIBUTION, Kind.GRANT, Kind.FEE)]
    all_payouts = sum(cents for kind, _, cents in flows if kind == ledger.TransferKind.SETTLEMENT)
    journal = sum(cents for kind, _, cents in flows if kind != ledger.TransferKind.SETTLEMENT)
    fund_account = ledger.balance_cents(session, code=FUND)
    fund_now = fund_account - all_payouts
    checks = []
    if journal != fund_account:
        checks.append(f"compte du fonds : {euros(fund_account)} €, journal des entrées et des frais : {euros(journal)} €")
    if all_payouts != (paid := ledger.balance_cents(session, code=ledger.VENDOR_PAID)):
        checks.append(f"compte des virements aux commerçants : {euros(paid)} €, règlements : {euros(all_payouts)} €")
    results = []
    for period in periods:
        m, next_day = str(period), period.next_start.date()
        # Everything the fund received or paid for months after this one, to state the balance at its end.
        later = sum(cents for kind, key, cents in flows if kind != ledger.TransferKind.SETTLEMENT and (key is None or key > m))
        later_payouts = all_payouts - sum(cents for day, cents in payouts_by_day if day < next_day)
        differences = checks.copy()
        if contributions.get(m, 0) != ledger_contributions.get(m, 0):
            differences.insert(0, f"cotisations : {euros(contributions.get(m, 0))} € au registre,"
                                  f" {euros(ledger_contributions.get(m, 0))} € au grand livre")
        results.append(Budget(
            month=m, contributions_cents=contributions.get(m, 0), matching_cents=matching.get(m, 0), grants_cents=grants.get(m, 0),
            fees_cents=fees.get(m, 0), allowances_cents=allowances.get(m, 0), expired_cents=expired.get(m, 0),
            spent_cents=spent.get(m, 0), payouts_cents=sum(c for day, c in payouts_by_day if period.first_day <= day < next_day),
            fund_balance_cents=fund_now - later + later_payouts, reconciled=not differences, differences=tuple(differences)))
    return results


def _rows(session: Session, query: Any) -> dict[str, int]:
    return {key: int(cents) for key, cents in session.execute(query)}


def _byte_ordered_reference(session: Session) -> Any:
    """ledger_transfer.reference compared in byte order, where ranges of prefixes are exact: SQLite's
    BINARY, and on PostgreSQL the database's collation if it is C (the index then serves the
    ranges), else COLLATE "C" (a scan, but never a reference missed by a locale's ordering)."""
    if session.get_bind().dialect.name != "postgresql":
        return LedgerTransfer.reference
    collation = session.execute(text("SELECT datcollate FROM pg_database WHERE datname = current_database()")).scalar_one()
    if collation in ("C", "POSIX", "C.UTF-8", "C.utf8"):
        return LedgerTransfer.reference
    return LedgerTransfer.reference.collate("C")  # type: ignore[attr-defined]


def _by_reference_month(session: Session, reference: Any, *, prefix: str, month_first: bool) -> dict[str, int]:
    """Sums of the transfers referenced `{prefix}{month}:...` (month_first) or `{prefix}...:{month}`, by
    month: in byte order the range [prefix, prefix with its last character + 1) holds exactly the
    references that start with the prefix. The code writes every prefix in lower case, so this is
    what `LIKE` matched, also on SQLite where `LIKE` ignores case."""
    start = len(prefix) + 1
    length = func.length(LedgerTransfer.reference)
    key = func.substr(LedgerTransfer.reference, start, 8) if month_first else func.substr(LedgerTransfer.reference, length - 7)
    rows = session.execute(select(key, func.sum(LedgerTransfer.amount_cents)).where(
        reference >= prefix, reference < prefix[:-1] + chr(ord(prefix[-1]) + 1), length >= len(prefix) + 8).group_by(key))
    # "2026-01:" after the prefix, or ":2026-01" at the end: what LIKE 'prefix2026-01:%' / 'prefix%:2026-01' matched.
    return {(k[:7] if month_first else k[1:]): int(cents) for k, cents in rows
            if (k[7:] == ":" if month_first else k[:1] == ":")}


def _spent_by_month(session: Session, *, periods: list[Month], zone: ZoneInfo) -> dict[str, int]:
    """Members' net spending by month in one pass over the records: a month of taps is a month of local days."""
    bounds = {str(p): (_local_midnight(p.first_day, zone), _local_midnight(p.next_start.date(), zone)) for p in periods}
    if not bounds:
        return {}
    months = list(bounds)
    params: dict[str, object] = {"low": min(s for s, _ in bounds.values()), "high": max(e for _, e in bounds.values())}
    for index, (start, end) in enumerate(bounds.values()):
        params |= {f"s{index}": start, f"e{index}": end}
    which = " ".join(f"WHEN time >= :s{index} AND time < :e{index} THEN {index}" for index in range(len(months)))
    rows = session.execute(text(
        f"SELECT b.month, SUM(b.cents) FROM (SELECT CASE {which} END AS month,"
        " CASE WHEN kind = 1 THEN amount_cents ELSE -amount_cents END AS cents FROM transaction_record"
        " WHERE status = 'accepted' AND time >= :low AND time < :high) b WHERE b.month IS NOT NULL GROUP BY b.month"), params)
    return {months[index]: int(cents) for index, cents in rows}


def _local_midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, time.min, tzinfo=zone).timestamp())


def _payouts_by_run_date(session: Session) -> list[tuple[date, int]]:
    """Settlement transfers by the date of their run (a line's reference names its run and vendor)."""
    rows = session.execute(text(
        "SELECT s.run_date, SUM(t.amount_cents) FROM ledger_transfer t JOIN (SELECT DISTINCT r.run_date,"
        " 'settlement:' || CAST(r.id AS VARCHAR(20)) || ':' || CAST(l.vendor_id AS VARCHAR(20)) AS reference"
        " FROM settlement_run r JOIN settlement_line l ON l.run_id = r.id) s ON s.reference = t.reference"
        " WHERE t.kind = 'settlement' GROUP BY s.run_date"))
    return [(date.fromisoformat(str(day)), int(cents)) for day, cents in rows]


def _fund_flows(session: Session) -> list[tuple[str, str | None, int]]:
    """The fund's journal in one pass: (kind, month it belongs to, cents; fees negative). The month is
    the earliest of the register's month for the reference (contributions) and the month the
    reference names (matching, grants, fees); None for a contribution missing from the register."""
    position = "instr(t.reference, ':')" if session.get_bind().dialect.name == "sqlite" else "strpos(t.reference, ':')"
    rows = session.execute(text(
        f"SELECT t.kind, CASE WHEN t.kind IN ('matching', 'grant', 'fee') THEN substr(t.reference, {position} + 1, 7) END"
        " AS named, c.month, SUM(CASE WHEN t.kind = 'fee' THEN -t.amount_cents ELSE t.amount_cents END)"
        " FROM ledger_transfer t LEFT JOIN contribution c ON c.reference = t.reference"
        " WHERE t.kind IN ('contribution', 'matching', 'grant', 'fee', 'settlement') GROUP BY t.kind, named, c.month"))
    return [(kind, min((m for m in (named, registered) if m is not None), default=None), int(cents))
            for kind, named, registered, cents in rows]


def _reversed_entries(session: Session) -> list[tuple[str, str | None, int]]:
    """Every reversal as (the original's kind, the month the original belongs to, cents): the month
    a contribution was registered for, the one a matching, grant or fee reference names, the one
    ending an `allowance:` reference; None for a credit by hand (`credit:...`), in no month."""
    rows = session.execute(text(
        "SELECT o.kind, o.reference, c.month, o.amount_cents FROM ledger_transfer rv JOIN ledger_transfer o"
        " ON rv.reference = 'reversal:' || CAST(o.id AS VARCHAR(20)) LEFT JOIN contribution c ON c.reference = o.reference"
        " WHERE rv.kind = :reversal"), {"reversal": ledger.TransferKind.REVERSAL})
    entries = []
    for kind, reference, registered, cents in rows:
        assert kind in REVERSIBLE
        month = (registered if kind == Kind.CONTRIBUTION
                 else reference[-7:] if reference.startswith("allowance:")
                 else reference.split(":")[1] if kind in (Kind.MATCHING, Kind.GRANT, Kind.FEE) else None)
        entries.append((kind, month, int(cents)))
    return entries


def _sum(session: Session, sql: str, **params: object) -> int:
    return int(session.execute(text(sql), params).scalar_one() or 0)


def _ledger_sum(session: Session, pattern: str) -> int:
    return int(session.execute(
        select(func.coalesce(func.sum(LedgerTransfer.amount_cents), 0)).where(LedgerTransfer.reference.like(pattern))  # type: ignore[attr-defined]
    ).scalar_one())


def _count(session: Session, pattern: str) -> int:
    return int(session.execute(select(func.count()).select_from(LedgerTransfer).where(LedgerTransfer.reference.like(pattern))).scalar_one())  # type: ignore[attr-defined]
