"""Contributions and the euro fund (docs/settlement.md): contributions, matching funds, grants,
fees, and the monthly budget reconciled with the ledger.

The euros the caisse holds are the `fund` account. Money comes in from `income:*` accounts
(debited, so their balance is minus what they brought) and goes out to `expense:fees` and, for
vendors, through settlement to `vendor_paid`. Every posting has a reference with its month, so a
month's budget is read from the journal itself. What staff enter is audited as `by`
(caisse.staff.accounts.staff_actor) in the caller's transaction. Nothing here commits: the caller does.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import DateTime, bindparam, func, select, text
from sqlmodel import Session, col

from caisse import audit
from caisse.config import Settings
from caisse.db import get_by_id
from caisse.errors import CaisseError, Conflict, InvalidInput
from caisse.fund.allowances import contributed_cents, first_open_month
from caisse.ingest.review import VOID_HELD_ALONE_SQL, VOID_REFUNDED_SQL
from caisse.ledger import postings as ledger
from caisse.ledger.postings import Account
from caisse.models import AllowanceMonth, Contribution, Household, LedgerTransfer
from caisse.money import MAX_AMOUNT_CENTS, euros, parse_euros
from caisse.months import Month
from caisse.settlement.runs import payable_differences
from caisse.spreadsheet import Column, read_table
from caisse.staff.accounts import SYSTEM, staff_actor
from caisse_common import protocol

# The platform's export or a sheet staff typed: English codes or French headers.
CSV_COLUMNS = (Column("household_id", ("foyer", "numéro de foyer", "n° foyer")), Column("month", ("mois",)),
               Column("amount_eur", ("montant", "montant en euros")), Column("reference", ("référence", "réf")))


def suggested_contribution_cents(*, income_cents: int, settings: Settings) -> int:
    """The contribution suggested for a monthly household income, never below the minimum."""
    for income_up_to, suggested in sorted(settings.contribution_brackets):
        if income_cents <= income_up_to:
            return max(suggested, settings.contribution_minimum_cents)
    return max(settings.contribution_above_brackets_cents, settings.contribution_minimum_cents)


def _accounts(session: Session) -> dict[str, int]:
    return {code: ledger.ensure_account(session, code=code, kind=ledger.account_kind(code))
            for code in (Account.FUND, Account.INCOME_CONTRIBUTIONS, Account.INCOME_MATCHING, Account.INCOME_GRANTS,
                         Account.EXPENSE_FEES)}


def _post_once(session: Session, *, debit: int, credit: int, amount_cents: int, kind: ledger.TransferKind, reference: str, memo: str | None) -> bool:
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
    session: Session, *, household_id: int, month: str, amount_cents: int, settings: Settings, reference: str | None = None,
    by: str = SYSTEM, os_user: str | None = None,
) -> bool:
    """A household's contribution for a month, keyed by a person's reference (a receipt number;
    ledger.user_reference). Returns False if this reference was recorded already."""
    by = staff_actor(session, by=by, os_user=os_user)
    posted_as = ledger.user_reference("contribution", reference or str(uuid.uuid4()))
    created = _record_contribution(session, household_id=household_id, month=month, amount_cents=amount_cents,
                                   settings=settings, reference=posted_as)
    if created:
        audit.record(session, actor=by, action="contribution.record", subject=f"household:{household_id}",
                     detail={"month": str(Month.parse(month)), "amount_cents": amount_cents, "reference": posted_as},
                     os_user=os_user)
    return created


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
    # A closed month's figures (and its matching claim) are final: a contribution for it arriving
    # later is counted in the first open month after it.
    counted = first_open_month(session, month=str(period))
    existing = session.execute(select(Contribution).where(col(Contribution.reference) == reference)).scalar_one_or_none()
    if existing is not None:
        if ((existing.household_id, existing.amount_cents) != (household_id, amount_cents)
                or existing.month not in (str(period), str(counted))):
            raise Conflict("reference_reused", f"reference {reference!r} was recorded with a different body")
        return False
    accounts = _accounts(session)
    session.add(Contribution(household_id=household_id, month=str(counted), amount_cents=amount_cents, reference=reference))
    session.flush()
    late = "" if counted == period else f" (for {period}, closed)"
    _post_once(session, debit=accounts[Account.INCOME_CONTRIBUTIONS], credit=accounts[Account.FUND],
               amount_cents=amount_cents, kind=ledger.TransferKind.CONTRIBUTION, reference=reference,
               memo=f"household {household_id} {counted}{late}")
    return True


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    already: int = 0
    imported_cents: int = 0
    fee_cents: int = 0
    errors: list[tuple[int, CaisseError]] = field(default_factory=list)  # (line number, what is wrong)


def import_contributions(session: Session, *, content: str | bytes, settings: Settings, skip_errors: bool = False,
                         by: str = SYSTEM, os_user: str | None = None) -> ImportReport:
    """CSV from the payment platform or a staff sheet (caisse.spreadsheet: encodings, separators,
    French headers): columns household_id, month (YYYY-MM), amount_eur, reference. Every line is checked first; with any error nothing
    is imported unless skip_errors, and then only the good lines are. The platform's fee
    (platform_fee_basis_points of what was imported) is posted once per file."""
    by = staff_actor(session, by=by, os_user=os_user)
    report = ImportReport()
    raw = content.encode() if isinstance(content, str) else content  # what identifies the file: its bytes
    rows = read_table(content, CSV_COLUMNS)
    good: list[tuple[int, int, str, int, str]] = []
    seen: dict[str, int] = {}
    households = set(session.execute(select(col(Household.id))).scalars())
    for row in rows:
        line = row.line
        try:
            household_id = int(row["household_id"])
            if household_id not in households:
                raise InvalidInput("household_not_found", f"no household {household_id}")
            month = str(Month.parse(row["month"]))
            amount = parse_euros(row["amount_eur"])
            if amount < settings.contribution_minimum_cents:
                raise InvalidInput("below_minimum", f"below the minimum contribution ({settings.contribution_minimum_cents} cents)")
            reference = row["reference"]
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
        digest = hashlib.sha256(raw).hexdigest()[:32]
        month = good[0][2]
        _post_fee(session, amount_cents=int(fee), memo="payment platform fee", reference=f"fee:{Month.parse(month)}:import:{digest}")
        report.fee_cents = int(fee)
    if report.imported:
        audit.record(session, actor=by, action="contribution.import",
                     subject=f"contribution_file:{hashlib.sha256(raw).hexdigest()[:16]}",
                     detail={"imported": report.imported, "imported_cents": report.imported_cents, "already": report.already,
                             "fee_cents": report.fee_cents, "skipped_lines": [line for line, _ in report.errors]},
                     os_user=os_user)
    return report


# Matching funds, grants, fees -------------------------------------------------------------------

def record_matching(session: Session, *, month: str, settings: Settings, by: str = SYSTEM, os_user: str | None = None) -> int:
    """The partner adds matching_basis_points of the month's contributions (rounded down). Posts
    only what is still due, so rerunning after late contributions tops it up; returns the amount posted."""
    by = staff_actor(session, by=by, os_user=os_user)
    period = Month.parse(month)
    due = contributed_cents(session, month=str(period)) * settings.matching_basis_points // 10_000
    posted = _ledger_sum(session, f"matching:{period}:%")
    if due <= posted:
        return 0
    count = _count(session, f"matching:{period}:%")
    accounts = _accounts(session)
    _post_once(session, debit=accounts[Account.INCOME_MATCHING], credit=accounts[Account.FUND], amount_cents=due - posted,
               kind=ledger.TransferKind.MATCHING, reference=f"matching:{period}:{count + 1}",
               memo=f"matching {settings.matching_basis_points / 100}% of {period}")
    audit.record(session, actor=by, action="fund.matching", subject=f"month:{period}",
                 detail={"amount_cents": due - posted, "reference": f"matching:{period}:{count + 1}"}, os_user=os_user)
    return due - posted


def record_grant(session: Session, *, month: str, amount_cents: int, source: str, reference: str, by: str = SYSTEM,
                 os_user: str | None = None) -> bool:
    """A grant received, keyed by a person's reference (ledger.user_reference)."""
    by = staff_actor(session, by=by, os_user=os_user)
    period = Month.parse(month)
    accounts = _accounts(session)
    posted_as = ledger.user_reference(f"grant:{period}", reference)
    created = _post_once(session, debit=accounts[Account.INCOME_GRANTS], credit=accounts[Account.FUND],
                         amount_cents=amount_cents, kind=ledger.TransferKind.GRANT, reference=posted_as, memo=source[:300])
    if created:
        audit.record(session, actor=by, action="fund.grant", subject=f"month:{period}",
                     detail={"amount_cents": amount_cents, "source": source[:300], "reference": posted_as}, os_user=os_user)
    return created


def record_fee(session: Session, *, month: str, amount_cents: int, memo: str, reference: str, by: str = SYSTEM,
               os_user: str | None = None) -> bool:
    """A fee paid, keyed by a person's reference (ledger.user_reference)."""
    by = staff_actor(session, by=by, os_user=os_user)
    period = Month.parse(month)
    posted_as = ledger.user_reference(f"fee:{period}", reference)
    created = _post_fee(session, amount_cents=amount_cents, memo=memo, reference=posted_as)
    if created:
        audit.record(session, actor=by, action="fund.fee", subject=f"month:{period}",
                     detail={"amount_cents": amount_cents, "memo": memo[:300], "reference": posted_as}, os_user=os_user)
    return created


def _post_fee(session: Session, *, amount_cents: int, memo: str, reference: str) -> bool:
    accounts = _accounts(session)
    return _post_once(session, debit=accounts[Account.FUND], credit=accounts[Account.EXPENSE_FEES],
                      amount_cents=amount_cents, kind=ledger.TransferKind.FEE, reference=reference, memo=memo[:300])


# Budget -----------------------------------------------------------------------------------------
#
# Rebuilt from the ledger's transfers by kind (docs/settlement.md, "Budget: the reconciliation
# identity"). Every transfer belongs to one month: the month its reference names (allowances,
# expiries, matching, grants, fees), the contribution register's month, the local month of the tap
# for payments and of the voided or rejected payment for voids and rejections (a void never makes
# a month's spending negative), the run's date for payouts, the local day it was posted for a
# manual credit. The closing balances of a month are the sums of the months up to it; summed over
# every month they must equal what the accounts hold today, the records say and the register
# says. Any difference is listed; `reconciled` only when there is none.

# A monthly allowance's reference (caisse.fund.allowances.allowance_reference); any other allowance
# transfer is a manual credit.
_MONTHLY_SQL = "reference LIKE :monthly"
_MONTHLY_PATTERN = {"monthly": "allowance:%:____-__"}
_MONTH_KEY = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_BUCKET_S = 900  # voids are summed by quarter hour of their payment: every time zone's offset is a multiple of it
# Where payments before and after the months asked for are summed: they sort before and after every month.
_BEFORE, _AFTER = "0000-00", "~"


@dataclass(frozen=True, slots=True)
class Budget:
    month: str
    contributions_cents: int
    matching_cents: int
    grants_cents: int
    fees_cents: int
    allowances_cents: int  # monthly allowances (allowance:{h}:{month})
    credits_cents: int  # manual credits to households (admin API, console)
    expired_cents: int  # unspent allowance returned to the allowance fund
    payments_cents: int  # accepted payments tapped this month
    voids_cents: int  # their voids, whenever they came
    rejected_cents: int  # payments of the month a reviewer rejected: given back to the household
    spent_cents: int  # payments - voids - rejected
    held_cents: int  # part of spent_cents still held for review (not payable until a person decides)
    payouts_cents: int  # paid to vendors by the runs of the month
    fund_balance_cents: int  # euros held at the end of the month: income - fees - payouts up to it
    members_balance_cents: int  # what households hold at the end of the month
    vendors_owed_cents: int  # spent - paid out up to the end of the month: owed to (or held for) vendors
    reconciled: bool
    differences: tuple[str, ...]


@dataclass(slots=True)
class _Flows:
    """One month's flows, in cents, by budget line."""

    contributions: int = 0
    matching: int = 0
    grants: int = 0
    fees: int = 0
    allowances: int = 0
    credits: int = 0
    expired: int = 0
    payments: int = 0
    voids: int = 0
    rejected: int = 0
    held: int = 0
    payouts: int = 0

    @property
    def spent(self) -> int:
        return self.payments - self.voids - self.rejected

    @property
    def fund(self) -> int:
        return self.contributions + self.matching + self.grants - self.fees - self.payouts

    @property
    def members(self) -> int:
        return self.allowances + self.credits - self.expired - self.spent

    @property
    def vendors(self) -> int:
        return self.spent - self.payouts


def budget_lines(result: Budget) -> list[tuple[str, int]]:
    """The budget's figures in the order people read them, with their French labels."""
    return [
        ("cotisations", result.contributions_cents), ("abondement", result.matching_cents),
        ("subventions", result.grants_cents), ("frais", result.fees_cents),
        ("allocations mensuelles créditées", result.allowances_cents), ("crédits manuels aux foyers", result.credits_cents),
        ("reliquats rendus", result.expired_cents), ("paiements des foyers", result.payments_cents),
        ("  annulés", result.voids_cents), ("  rejetés après vérification", result.rejected_cents),
        ("dépenses des foyers", result.spent_cents), ("  dont retenues pour vérification", result.held_cents),
        ("virements aux commerçants", result.payouts_cents),
        ("solde des foyers en fin de mois", result.members_balance_cents),
        ("dû aux commerçants en fin de mois", result.vendors_owed_cents),
        ("solde du fonds en fin de mois", result.fund_balance_cents),
    ]


def budget(session: Session, *, month: str, settings: Settings) -> Budget:
    [result] = budgets(session, months=[month], settings=settings)
    return result


def budgets(session: Session, *, months: Sequence[str], settings: Settings) -> list[Budget]:
    """The budget of each month, in the order given, and the differences with the ledger: a few
    grouped passes over the journal and the records whatever the number of months."""
    periods = [str(Month.parse(month)) for month in months]
    book = _Book.read(session, zone=ZoneInfo(settings.settlement_timezone), periods=periods)
    differences = tuple(book.differences())
    results = []
    for month in periods:
        flows, closing = book.months.get(month, _Flows()), book.up_to(month)
        results.append(Budget(
            month=month, contributions_cents=flows.contributions, matching_cents=flows.matching, grants_cents=flows.grants,
            fees_cents=flows.fees, allowances_cents=flows.allowances, credits_cents=flows.credits,
            expired_cents=flows.expired, payments_cents=flows.payments, voids_cents=flows.voids,
            rejected_cents=flows.rejected, spent_cents=flows.spent, held_cents=flows.held, payouts_cents=flows.payouts,
            fund_balance_cents=closing.fund, members_balance_cents=closing.members, vendors_owed_cents=closing.vendors,
            reconciled=not differences, differences=differences))
    return results


class _Book:
    """Every month's flows read from the journal, and what they are checked against."""

    def __init__(self) -> None:
        self.months: dict[str, _Flows] = {}
        self.unplaced: list[str] = []  # transfers no month could be given, in French
        self.journal: dict[str, int] = {}  # Σ transfers by kind
        self.accounts: dict[str, int] = {}  # Σ balances by purpose: member, vendor, and single accounts by code
        self.records: dict[str, int] = {}  # Σ of the records: payments, voids, rejected payments not voided
        self.register: dict[str, int] = {}  # contributions register by month, reversed ones left out
        self.reversed: dict[str, int] = {}  # Σ reversals (caisse.ledger.corrections) by the kind of the entry they take back
        self.vendor_accounts: list[str] = []  # vendor accounts that disagree with their records (caisse.settlement.runs)
        self.exported_items = 0  # what exported runs paid (items, and returns paid again), less what the bank gave back

    def at(self, month: str) -> _Flows:
        return self.months.setdefault(month, _Flows())

    def up_to(self, month: str | None = None) -> _Flows:
        """The sum of the months up to `month` (every month when None)."""
        total = _Flows()
        for key, flows in self.months.items():
            if month is None or key <= month:
                for name in _Flows.__dataclass_fields__:
                    setattr(total, name, getattr(total, name) + getattr(flows, name))
        return total

    @classmethod
    def read(cls, session: Session, *, zone: ZoneInfo, periods: Sequence[str]) -> _Book:
        book = cls()
        book._read_journal(session, zone)
        book._read_records(session, zone, periods)
        book._read_payouts(session, zone)
        book._read_checks(session)
        book._read_reversals(session, zone)
        return book

    def _read_journal(self, session: Session, zone: ZoneInfo) -> None:
        """The journal by kind, with the month named by the reference of
        allowances, expiries, matching, grants and fees; then, only when there are any,
        contributions by the register's month and manual credits by the day they were posted."""
        position = "instr(reference, ':')" if session.get_bind().dialect.name == "sqlite" else "strpos(reference, ':')"
        named = "kind IN ('allowance', 'allowance_expiry', 'matching', 'grant', 'fee')"
        rows = session.execute(text(
            f"SELECT kind, CASE WHEN {named} THEN substr(reference, 1, {position}) END AS prefix,"
            f" CASE WHEN kind IN ('matching', 'grant', 'fee') THEN substr(reference, {position} + 1, 8)"
            f" WHEN kind IN ('allowance', 'allowance_expiry') AND substr(reference, 1, 10) = 'allowance:'"
            f" OR kind = 'allowance_expiry' THEN substr(reference, length(reference) - 7) END AS month_key,"
            " SUM(amount_cents) FROM ledger_transfer WHERE kind NOT IN ('payment', 'void') GROUP BY kind, prefix, month_key")).all()
        # Payments and voids, most of the journal, summed without grouping (a sort of every row).
        payments, voids = session.execute(text(
            "SELECT SUM(CASE WHEN kind = 'payment' THEN amount_cents END), SUM(CASE WHEN kind = 'void' THEN amount_cents END)"
            " FROM ledger_transfer")).one()
        self.journal |= {kind: int(cents) for kind, cents in (("payment", payments), ("void", voids)) if cents is not None}
        lines = {"allowance": "allowances", "allowance_expiry": "expired", "matching": "matching", "grant": "grants", "fee": "fees"}
        prefixes = {"allowance": "allowance:", "allowance_expiry": "expiry:", "matching": "matching:", "grant": "grant:", "fee": "fee:"}
        for kind, prefix, key, cents in rows:
            self.journal[kind] = self.journal.get(kind, 0) + int(cents)
            if kind not in lines or (kind == ledger.TransferKind.ALLOWANCE and prefix != "allowance:"):
                continue  # by records, rejections and runs below; manual credits below
            month = key[:7] if kind in ("matching", "grant", "fee") and key[7:] == ":" else key[1:] if key[:1] == ":" else ""
            if prefix != prefixes[kind] or not _MONTH_KEY.match(month):
                self.unplaced.append(f"écritures « {kind} » sans mois lisible dans leur référence ({prefix}…) :"
                                     f" {euros(int(cents))} €")
                continue
            flows = self.at(month)
            setattr(flows, lines[kind], getattr(flows, lines[kind]) + int(cents))
        monthly = sum(int(cents) for kind, prefix, _, cents in rows if kind == ledger.TransferKind.ALLOWANCE and prefix == "allowance:")
        if self.journal.get(ledger.TransferKind.ALLOWANCE, 0) > monthly:
            for cents, created_at in session.execute(select(col(LedgerTransfer.amount_cents), col(LedgerTransfer.created_at)).where(
                    col(LedgerTransfer.kind) == ledger.TransferKind.ALLOWANCE,
                    func.substr(col(LedgerTransfer.reference), 1, 10) != "allowance:")).all():
                self.at(_local_month(created_at, zone)).credits += int(cents)
        # A departed household's balance back to the fund (caisse.members.service) counts as unspent money
        # returned, in the Paris month it moved; a cover of a late record takes it back.
        departures = {ledger.TransferKind.DEPARTURE: 1, ledger.TransferKind.DEPARTURE_COVER: -1}
        if any(self.journal.get(kind) for kind in departures):
            for kind, cents, created_at in session.execute(select(col(LedgerTransfer.kind), col(LedgerTransfer.amount_cents),
                                                                  col(LedgerTransfer.created_at))
                                                           .where(col(LedgerTransfer.kind).in_(list(departures)))).all():
                self.at(_local_month(created_at, zone)).expired += departures[kind] * int(cents)
        if self.journal.get("contribution"):
            for month, cents in session.execute(text(
                    "SELECT c.month, SUM(t.amount_cents) FROM ledger_transfer t LEFT JOIN contribution c ON c.reference = t.reference"
                    " WHERE t.kind = 'contribution' GROUP BY c.month")).all():
                if month is None:
                    self.unplaced.append(f"cotisations au grand livre absentes du registre : {euros(int(cents))} €")
                else:
                    self.at(month).contributions += int(cents)

    def _read_records(self, session: Session, zone: ZoneInfo, periods: Sequence[str]) -> None:
        """Accepted payments by the local month of the tap, in one scan: each month from the first
        to the last asked for by its local bounds, the rest before or after them (enough for the
        closing balances and the totals). Voids, few, by their payment's month, read in Python.
        A record that arrived after that month was closed is counted in the month it arrived
        (`_read_late_records`), so a closed month's figures never change."""
        late = _LateRecords.closings(session, zone)
        span = _month_span(periods)
        bounds = [(_local_midnight(m.first_day, zone), _local_midnight(m.next_start.date(), zone)) for m in span]
        params: dict[str, object] = {f"s{i}": start for i, (start, _) in enumerate(bounds)}
        params |= {f"e{i}": end for i, (_, end) in enumerate(bounds)}
        which = " ".join(f"WHEN time >= :s{i} AND time < :e{i} THEN {i}" for i in range(len(bounds)))
        if bounds:
            params |= {"low": bounds[0][0]}
            which = f"CASE {which} WHEN time < :low THEN -1 ELSE -2 END"
        else:
            which = "-1"
        for index, cents, held, rejected in session.execute(text(
                f"SELECT {which} AS month_index, SUM(amount_cents),"
                " SUM(CASE WHEN review = 'held' AND NOT voided THEN amount_cents ELSE 0 END),"
                " SUM(CASE WHEN review = 'rejected' THEN amount_cents ELSE 0 END) FROM transaction_record"
                f" WHERE status = 'accepted' AND kind = 1{late.excluded('time', 'received_at')} GROUP BY month_index")
                .bindparams(*late.parameters()), params).all():
            flows = self.at(str(span[index]) if index >= 0 else _BEFORE if index == -1 else _AFTER)
            flows.payments += int(cents)
            flows.held += int(held)
            flows.rejected += int(rejected)
            self.records["payments"] = self.records.get("payments", 0) + int(cents)
        months: dict[int, str] = {}
        orphans = 0
        # A void gives the money back unless it or its payment was rejected, or it is held on its
        # own (its payment not held): then the refund waits for the decision (docs/ledger.md,
        # "Holds and review"), and its money waits in the vendor's held account.
        for slot, cents, refunded, alone, orphan in session.execute(text(
                "SELECT COALESCE(p.time, r.time) / :bucket AS slot, SUM(r.amount_cents),"
                f" SUM(CASE WHEN {VOID_REFUNDED_SQL} THEN r.amount_cents ELSE 0 END),"
                f" SUM(CASE WHEN {VOID_HELD_ALONE_SQL} THEN r.amount_cents ELSE 0 END),"
                " SUM(CASE WHEN p.id IS NULL THEN r.amount_cents ELSE 0 END)"
                " FROM transaction_record r LEFT JOIN transaction_record p ON p.terminal_id = r.terminal_id AND p.seq = r.ref_seq"
                f" WHERE r.status = 'accepted' AND r.kind = 2{late.excluded('COALESCE(p.time, r.time)', 'r.received_at')}"
                " GROUP BY slot").bindparams(*late.parameters()), {"bucket": _BUCKET_S}).all():
            month = months.get(slot) or months.setdefault(slot, datetime.fromtimestamp(int(slot) * _BUCKET_S, zone).strftime("%Y-%m"))
            flows = self.at(month)
            flows.voids += int(refunded)
            flows.held += int(alone)
            self.records["voids"] = self.records.get("voids", 0) + int(cents)
            orphans += int(orphan)
        if orphans:
            self.unplaced.append(f"annulations acceptées dont le paiement manque : {euros(orphans)} €")
        if late:
            self._read_late_records(session, late)

    def _read_late_records(self, session: Session, late: _LateRecords) -> None:
        """Records that arrived after their month (the tap's, or a void's payment's) was closed:
        in the local month they arrived, or the first month after it not closed when they did."""
        for kind, arrived, cents, held, rejected, refunded, alone, orphan in session.execute(text(
                "SELECT r.kind, r.received_at AS received_at, r.amount_cents,"
                " CASE WHEN r.kind = 1 AND r.review = 'held' AND NOT r.voided THEN r.amount_cents ELSE 0 END,"
                " CASE WHEN r.kind = 1 AND r.review = 'rejected' THEN r.amount_cents ELSE 0 END,"
                f" CASE WHEN r.kind = 2 AND {VOID_REFUNDED_SQL} THEN r.amount_cents ELSE 0 END,"
                f" CASE WHEN r.kind = 2 AND {VOID_HELD_ALONE_SQL} THEN r.amount_cents ELSE 0 END,"
                " CASE WHEN r.kind = 2 AND p.id IS NULL THEN r.amount_cents ELSE 0 END"
                " FROM transaction_record r LEFT JOIN transaction_record p"
                " ON r.kind = 2 AND p.terminal_id = r.terminal_id AND p.seq = r.ref_seq"
                " WHERE r.status = 'accepted' AND r.kind IN (1, 2)"
                f" AND ({late.condition('CASE WHEN r.kind = 1 THEN r.time ELSE COALESCE(p.time, r.time) END', 'r.received_at')})")
                .bindparams(*late.parameters()).columns(received_at=DateTime(timezone=True))).all():
            flows = self.at(late.counted_in(arrived))
            if kind == protocol.Kind.PAYMENT:
                flows.payments += int(cents)
                flows.held += int(held)
                flows.rejected += int(rejected)
                self.records["payments"] = self.records.get("payments", 0) + int(cents)
            else:
                flows.voids += int(refunded)
                flows.held += int(alone)
                self.records["voids"] = self.records.get("voids", 0) + int(cents)
                if orphan:
                    self.unplaced.append(f"annulations acceptées dont le paiement manque : {euros(int(orphan))} €")

    def _read_reversals(self, session: Session, zone: ZoneInfo) -> None:
        """A staff entry taken back (`reversal:{id}`) is netted out of the month of the entry, in
        the budget and in the register: as if it had never been made."""
        if not self.journal.get(ledger.TransferKind.REVERSAL):
            return
        reversals = session.execute(select(col(LedgerTransfer.reference), col(LedgerTransfer.amount_cents))
                                    .where(col(LedgerTransfer.kind) == ledger.TransferKind.REVERSAL)).all()
        named = {int(reference.split(":")[1]): (reference, int(cents)) for reference, cents in reversals
                 if reference.count(":") == 1 and reference.startswith("reversal:") and reference.split(":")[1].isdigit()}
        self.unplaced += [f"contre-passation {reference} sans écriture nommée : {euros(int(cents))} €"
                          for reference, cents in reversals if reference not in {r for r, _ in named.values()}]
        originals = {row[0]: row[1:] for row in session.execute(
            select(col(LedgerTransfer.id), col(LedgerTransfer.kind), col(LedgerTransfer.reference), col(LedgerTransfer.created_at),
                   col(Contribution.month))
            .outerjoin(Contribution, col(Contribution.reference) == col(LedgerTransfer.reference))
            .where(col(LedgerTransfer.id).in_(list(named)))).all()}
        for original_id, (reference, cents) in sorted(named.items()):
            kind, original, created_at, registered = originals.get(original_id, (None, "", None, None))
            parts = original.split(":")
            if kind == ledger.TransferKind.ALLOWANCE and original[:10] == "allowance:":
                month, line = original[-7:], "allowances"
            elif kind == ledger.TransferKind.ALLOWANCE:
                month, line = _local_month(created_at, zone), "credits"
            elif kind == ledger.TransferKind.CONTRIBUTION and registered is not None:
                month, line = registered, "contributions"
                self.register[month] = self.register.get(month, 0) - cents
            elif kind in (ledger.TransferKind.GRANT, ledger.TransferKind.FEE) and len(parts) > 1:
                month, line = parts[1], "grants" if kind == ledger.TransferKind.GRANT else "fees"
            else:
                self.unplaced.append(f"contre-passation {reference} d'une écriture que le budget ne sait pas placer"
                                     f" ({kind or 'introuvable'}) : {euros(cents)} €")
                continue
            flows = self.at(month)
            setattr(flows, line, getattr(flows, line) - cents)
            self.reversed[kind] = self.reversed.get(kind, 0) + cents

    def _read_payouts(self, session: Session, zone: ZoneInfo) -> None:
        """Payouts by their run's date; a transfer the bank gave back (caisse.settlement.bank_returns) comes off the
        payouts of the month it came back."""
        for day, cents in _payouts_by_run_date(session):
            self.at(day.strftime("%Y-%m")).payouts += cents
        if self.journal.get(ledger.TransferKind.BANK_RETURN):
            for cents, created_at in session.execute(select(col(LedgerTransfer.amount_cents), col(LedgerTransfer.created_at)).where(
                    col(LedgerTransfer.kind) == ledger.TransferKind.BANK_RETURN)).all():
                self.at(_local_month(created_at, zone)).payouts -= int(cents)

    def _read_checks(self, session: Session) -> None:
        self.vendor_accounts = [difference.french() for difference in payable_differences(session)]
        self.accounts = {purpose: int(cents) for purpose, cents in session.execute(text(
            "SELECT CASE WHEN substr(code, 1, 7) = 'member:' THEN 'member'"
            " WHEN substr(code, 1, 15) = 'vendor_payable:' OR substr(code, 1, 12) = 'vendor_held:' THEN 'vendor' ELSE code END AS purpose,"
            " SUM(credits_posted_cents - debits_posted_cents) FROM ledger_account GROUP BY purpose")).all()}
        self.register = _rows(session, select(col(Contribution.month), func.sum(col(Contribution.amount_cents))).group_by(col(Contribution.month)))
        self.exported_items = int(session.execute(text(
            "SELECT COALESCE(SUM(i.amount_cents), 0) FROM settlement_item i JOIN settlement_run r ON r.id = i.run_id"
            " WHERE r.status = 'exported'")).scalar_one())
        # Bank returns (caisse.settlement.bank_returns): given back, and paid again by a later exported run.
        self.exported_items += int(session.execute(text(
            "SELECT COALESCE(SUM(b.amount_cents), 0) FROM bank_return b JOIN settlement_run r ON r.id = b.repaid_run_id"
            " WHERE r.status = 'exported'")).scalar_one())
        self.exported_items -= int(session.execute(text("SELECT COALESCE(SUM(amount_cents), 0) FROM bank_return")).scalar_one())

    def differences(self) -> list[str]:
        """Every identity of docs/settlement.md that does not hold, in French with both amounts."""
        total = self.up_to()
        journal, accounts, kinds = self.journal, self.accounts, ledger.TransferKind
        identities = [
            # The budget's lines, summed over every month, against the journal by kind (less what was reversed).
            ("allocations et crédits manuels", total.allowances + total.credits,
             journal.get(kinds.ALLOWANCE, 0) - self.reversed.get(kinds.ALLOWANCE, 0), "au grand livre, contre-passations déduites"),
            ("reliquats rendus", total.expired, journal.get(kinds.EXPIRY, 0) + journal.get(kinds.DEPARTURE, 0)
             - journal.get(kinds.DEPARTURE_COVER, 0), "au grand livre, départs compris"),
            ("cotisations", total.contributions, journal.get("contribution", 0) - self.reversed.get("contribution", 0),
             "au grand livre, contre-passations déduites"),
            ("abondements", total.matching, journal.get("matching", 0), "au grand livre"),
            ("subventions", total.grants, journal.get("grant", 0) - self.reversed.get("grant", 0),
             "au grand livre, contre-passations déduites"),
            ("frais", total.fees, journal.get("fee", 0) - self.reversed.get("fee", 0), "au grand livre, contre-passations déduites"),
            ("contre-passations", sum(self.reversed.values()), journal.get(kinds.REVERSAL, 0), "au grand livre"),
            ("paiements acceptés", total.payments, journal.get(kinds.PAYMENT, 0), "au grand livre"),
            ("paiements acceptés", total.payments, self.records.get("payments", 0), "aux enregistrements"),
            ("annulations acceptées", self.records.get("voids", 0), journal.get(kinds.VOID, 0), "au grand livre"),
            ("virements aux commerçants", total.payouts, journal.get(kinds.SETTLEMENT, 0) - journal.get(kinds.BANK_RETURN, 0),
             "au grand livre, retours de la banque déduits"),
            ("virements aux commerçants", total.payouts, self.exported_items,
             "dans les règlements exportés, retours de la banque déduits"),
            # What the accounts hold today is what the months add up to.
            ("soldes des foyers", total.members, accounts.get("member", 0), "sur leurs comptes"),
            ("fonds des allocations", total.expired - total.allowances - total.credits, accounts.get(Account.ALLOWANCE_FUND, 0),
             "sur son compte"),
            ("dû aux commerçants, retenu compris", total.vendors, accounts.get("vendor", 0), "sur leurs comptes"),
            ("payé aux commerçants", total.payouts, accounts.get(Account.VENDOR_PAID, 0), "sur son compte"),
            ("fonds en euros avant virements", total.fund + total.payouts, accounts.get(Account.FUND, 0), "sur son compte"),
            ("cotisations reçues", -total.contributions, accounts.get(Account.INCOME_CONTRIBUTIONS, 0), "sur leur compte"),
            ("abondements reçus", -total.matching, accounts.get(Account.INCOME_MATCHING, 0), "sur leur compte"),
            ("subventions reçues", -total.grants, accounts.get(Account.INCOME_GRANTS, 0), "sur leur compte"),
            ("frais payés", total.fees, accounts.get(Account.EXPENSE_FEES, 0), "sur leur compte"),
        ]
        found = [f"{label} : {euros(figured)} € au budget, {euros(actual)} € {where} (écart {euros(actual - figured)} €)"
                 for label, figured, actual, where in identities if figured != actual]
        for month in sorted(self.register.keys() | {m for m, f in self.months.items() if f.contributions}):
            registered, posted = self.register.get(month, 0), self.months.get(month, _Flows()).contributions
            if registered != posted:
                found.append(f"cotisations de {month} : {euros(registered)} € au registre, {euros(posted)} € au grand livre")
        known = {kinds.ALLOWANCE, kinds.EXPIRY, kinds.PAYMENT, kinds.VOID, kinds.HOLD, kinds.RELEASE, kinds.REJECT,
                 kinds.SETTLEMENT, kinds.REVERSAL, kinds.BANK_RETURN, kinds.DEPARTURE, kinds.DEPARTURE_COVER,
                 "contribution", "matching", "grant", "fee"}
        found += [f"écritures de nature « {kind} » hors budget : {euros(cents)} €"
                  for kind, cents in sorted(journal.items()) if kind not in known]
        return self.unplaced + found + self.vendor_accounts


class _LateRecords:
    """The closed months (their local bounds in unix seconds, and when they were closed), and the
    SQL that tells a record that arrived after its month was closed."""

    def __init__(self, zone: ZoneInfo, closed: list[tuple[Month, datetime]]) -> None:
        self.zone = zone
        self.closed = [(month, int(month.starts_at(zone).timestamp()), int(month.ends_at(zone).timestamp()),
                        _at_utc(closed_at)) for month, closed_at in closed]

    @classmethod
    def closings(cls, session: Session, zone: ZoneInfo) -> _LateRecords:
        rows = session.execute(select(col(AllowanceMonth.month), col(AllowanceMonth.closed_at))
                               .where(col(AllowanceMonth.closed_at).is_not(None))).all()
        return cls(zone, [(Month.parse(month), closed_at) for month, closed_at in rows])

    def __bool__(self) -> bool:
        return bool(self.closed)

    def condition(self, time: str, received: str) -> str:
        # Most records arrived before the first closing: one comparison rules them out.
        months = " OR ".join(f"({time} >= :late_s{i} AND {time} < :late_e{i} AND {received} > :late_c{i})"
                             for i in range(len(self.closed)))
        return f"{received} > :late_first AND ({months})"

    def excluded(self, time: str, received: str) -> str:
        """` AND NOT (...)` for a query of the records counted in their own month ('' with no month closed)."""
        return f" AND NOT ({self.condition(time, received)})" if self.closed else ""

    def parameters(self) -> list[Any]:
        # Typed, so SQLite compares the stored text with the same format (UTC, as every time is stored).
        if not self.closed:
            return []
        first = min(closed_at for *_, closed_at in self.closed)
        return [bindparam("late_first", first, type_=DateTime(timezone=True))] + [
            parameter for i, (_, start, end, closed_at) in enumerate(self.closed) for parameter in (
                bindparam(f"late_s{i}", start), bindparam(f"late_e{i}", end),
                bindparam(f"late_c{i}", closed_at, type_=DateTime(timezone=True)))]

    def counted_in(self, arrived: datetime) -> str:
        arrived = _at_utc(arrived)
        month = Month.of(arrived, self.zone)
        closed_then = {m for m, _, _, closed_at in self.closed if closed_at < arrived}
        while month in closed_then:
            month = month.shifted(1)
        return str(month)


def _at_utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _month_span(periods: Sequence[str]) -> list[Month]:
    """Every month from the first to the last of `periods` (YYYY-MM), in order."""
    if not periods:
        return []
    first, last = Month.parse(min(periods)), Month.parse(max(periods))
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return [Month(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1) for i in range(count)]


def _local_midnight(day: date, zone: ZoneInfo) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=zone).timestamp())


def _local_month(moment: datetime, zone: ZoneInfo) -> str:
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime("%Y-%m")


def _rows(session: Session, query: Any) -> dict[str, int]:
    return {key: int(cents) for key, cents in session.execute(query)}


def _payouts_by_run_date(session: Session) -> list[tuple[date, int]]:
    """Settlement transfers by the date of their run (a line's reference names its run and vendor)."""
    rows = session.execute(text(
        "SELECT s.run_date, SUM(t.amount_cents) FROM ledger_transfer t JOIN (SELECT DISTINCT r.run_date,"
        " 'settlement:' || CAST(r.id AS VARCHAR(20)) || ':' || CAST(l.vendor_id AS VARCHAR(20)) AS reference"
        " FROM settlement_run r JOIN settlement_line l ON l.run_id = r.id) s ON s.reference = t.reference"
        " WHERE t.kind = 'settlement' GROUP BY s.run_date"))
    return [(date.fromisoformat(str(day)), int(cents)) for day, cents in rows]


def _sum(session: Session, sql: str, **params: object) -> int:
    return int(session.execute(text(sql), params).scalar_one() or 0)


def _ledger_sum(session: Session, pattern: str) -> int:
    return int(session.execute(
        select(func.coalesce(func.sum(col(LedgerTransfer.amount_cents)), 0)).where(col(LedgerTransfer.reference).like(pattern))
    ).scalar_one())


def _count(session: Session, pattern: str) -> int:
    return int(session.execute(select(func.count()).select_from(LedgerTransfer).where(col(LedgerTransfer.reference).like(pattern))).scalar_one())
