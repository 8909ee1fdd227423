"""Read-side queries for the people who run the caisse: find a household or a vendor, a
household's payments, allowances and contributions, and how each terminal is doing.

Nothing here writes. Lists are bounded (`limit`) or paged (`*_page`, caisse.reports.search.Page);
searches match a name, a neighbourhood, an id or a card UID, ignoring case and accents, with the
typed text taken literally (`%` and `_` are not wildcards).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, case, cast, func, or_, select
from sqlmodel import Session, col

from caisse.db import folded, parse_row_id, table_of
from caisse.ledger import postings as ledger
from caisse.models import (
    Card,
    CardStatus,
    ConsoleUser,
    Contribution,
    Household,
    LedgerTransfer,
    RecordStatus,
    ReviewStatus,
    SettlementItem,
    SettlementRun,
    Terminal,
    TerminalHealth,
    TransactionRecord,
    Vendor,
)
from caisse.reports.search import Page, bounded, contains_pattern, last_page_at_most
from caisse_common.protocol import Kind

MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class HouseholdRow:
    household: Household
    balance_cents: int
    active_cards: int
    cards: int


@dataclass(frozen=True, slots=True)
class Payment:
    record_id: int
    time_s: int  # the terminal's clock, unix seconds
    vendor_name: str
    terminal_id: int
    seq: int
    is_void: bool
    amount_cents: int
    status: str  # accepted | rejected
    reason: str | None  # why rejected
    review: str | None  # held | released | rejected
    voided: bool


@dataclass(frozen=True, slots=True)
class MonthAmount:
    month: str  # YYYY-MM
    amount_cents: int


@dataclass(frozen=True, slots=True)
class Allowance:
    at: datetime
    month: str | None  # YYYY-MM for a monthly allocation, None for a credit posted by hand
    memo: str | None
    amount_cents: int


@dataclass(frozen=True, slots=True)
class VendorRow:
    vendor: Vendor
    terminals: int
    payable_cents: int


@dataclass(frozen=True, slots=True)
class TerminalRow:
    terminal: Terminal
    vendor_name: str
    unsettled: int  # accepted records no settlement run has paid yet
    held: int  # accepted records waiting for a person's decision (caisse.ingest.review)
    rejected: int  # records stored as rejected (business reasons)
    last_record_at: datetime | None  # when the backend received its latest record
    health: TerminalHealth | None = None  # its last health report (caisse.terminals.health)


@dataclass(frozen=True, slots=True)
class CardRow:
    card: Card
    household_name: str


def search_households(session: Session, *, query: str = "", limit: int = 50) -> list[HouseholdRow]:
    """Households matching `query` (name, neighbourhood, id, or a card UID in hex), newest first."""
    return households_page(session, query=query, per_page=min(limit, MAX_LIMIT)).rows


def households_page(session: Session, *, query: str = "", page: int = 1, per_page: int = 50) -> Page[HouseholdRow]:
    """One page of the households matching `query`, newest first."""
    page, per_page = bounded(page, per_page)
    query = query.strip()
    matching = select(col(Household.id)).where(_household_matches(query)) if query else select(col(Household.id))
    total = _count(session, matching)
    page = last_page_at_most(page, per_page, total)
    cards = (select(col(Card.household_id), func.count().label("cards"),
                    func.sum(case((col(Card.status) == CardStatus.ACTIVE, 1), else_=0)).label("active"))
             .group_by(col(Card.household_id)).subquery())
    statement = (select(Household, func.coalesce(cards.c.cards, 0), func.coalesce(cards.c.active, 0))
                 .outerjoin(cards, cards.c.household_id == col(Household.id)))
    if query:
        statement = statement.where(_household_matches(query))
    rows = session.execute(statement.order_by(col(Household.id).desc())
                           .limit(per_page).offset((page - 1) * per_page)).all()
    balances = ledger.balances_by_code(session, codes=[ledger.member_code(h.id or 0) for h, _, _ in rows])
    return Page(rows=[HouseholdRow(household=h, balance_cents=balances.get(ledger.member_code(h.id or 0), 0),
                                   cards=int(n), active_cards=int(active)) for h, n, active in rows],
                total=total, page=page, per_page=per_page)


def _count(session: Session, statement: Select[Any]) -> int:
    return session.execute(select(func.count()).select_from(statement.subquery())).scalar_one()


def _like(*columns: Any, query: str) -> list[ColumnElement[bool]]:
    pattern = contains_pattern(query)
    return [folded(column).like(pattern, escape="\\") for column in columns]


def _household_matches(query: str) -> ColumnElement[bool]:
    conditions = _like(col(Household.name), col(Household.zone), query=query)
    if (household_id := parse_row_id(query)) is not None:
        conditions.append(col(Household.id) == household_id)
    try:
        uid = bytes.fromhex(query)
    except ValueError:
        uid = b""
    if len(uid) >= 4:
        conditions.append(col(Household.id).in_(select(col(Card.household_id)).where(col(Card.uid) == uid)))
    return or_(*conditions)


def household_payments(session: Session, *, household_id: int, limit: int = 50) -> list[Payment]:
    """The household's records, newest first. (transaction_record.household_id has no index: the
    ingestion hot path pays for every index; a household's page scans the records.)"""
    rows = session.execute(
        select(TransactionRecord, col(Vendor.name))
        .join(Terminal, col(Terminal.id) == col(TransactionRecord.terminal_id))
        .join(Vendor, col(Vendor.id) == col(Terminal.vendor_id))
        .where(col(TransactionRecord.household_id) == household_id)
        .order_by(col(TransactionRecord.time).desc(), col(TransactionRecord.id).desc())
        .limit(min(limit, MAX_LIMIT))
    ).all()
    return [Payment(record_id=r.id or 0, time_s=r.time, vendor_name=name, terminal_id=r.terminal_id, seq=r.seq,
                    is_void=r.kind == Kind.VOID, amount_cents=r.amount_cents, status=r.status, reason=r.reason,
                    review=r.review, voided=r.voided) for r, name in rows]


def household_allowances(session: Session, *, household_id: int, limit: int = 12) -> list[Allowance]:
    """Allowance credits to the household, newest first: the monthly ones (caisse.fund.allowances) and
    those posted by hand (admin.credit_household). ledger_transfer has no index by account (the
    hot path pays for every index), so this scans the transfers: fine for one household's page."""
    account_id = ledger.account_ids(session, codes=[ledger.member_code(household_id)]).get(ledger.member_code(household_id))
    if account_id is None:
        return []
    rows = session.execute(
        select(col(LedgerTransfer.created_at), col(LedgerTransfer.reference), col(LedgerTransfer.memo), col(LedgerTransfer.amount_cents))
        .where(col(LedgerTransfer.credit_account_id) == account_id, col(LedgerTransfer.kind) == ledger.TransferKind.ALLOWANCE)
        .order_by(col(LedgerTransfer.id).desc()).limit(min(limit, MAX_LIMIT))
    ).all()
    monthly = f"allowance:{household_id}:"
    return [Allowance(at=at, month=reference.removeprefix(monthly) if reference.startswith(monthly) else None,
                      memo=memo, amount_cents=amount) for at, reference, memo, amount in rows]


def household_contributions(session: Session, *, household_id: int, limit: int = 12) -> list[MonthAmount]:
    """Contributions summed by month, newest month first."""
    rows = session.execute(
        select(col(Contribution.month), func.sum(col(Contribution.amount_cents)))
        .where(col(Contribution.household_id) == household_id)
        .group_by(col(Contribution.month)).order_by(col(Contribution.month).desc()).limit(min(limit, MAX_LIMIT))
    ).all()
    return [MonthAmount(month=month, amount_cents=int(total)) for month, total in rows]


def search_vendors(session: Session, *, query: str = "", limit: int = 100) -> list[VendorRow]:
    """Vendors matching `query` (name, kind, market, neighbourhood, id), by name."""
    return vendors_page(session, query=query, per_page=min(limit, MAX_LIMIT)).rows


def vendors_page(session: Session, *, query: str = "", convention: str | None = None, page: int = 1,
                 per_page: int = 50) -> Page[VendorRow]:
    """One page of the vendors matching `query` (and in one accreditation status), by name."""
    page, per_page = bounded(page, per_page)
    conditions: list[ColumnElement[bool]] = []
    query = query.strip()
    if query:
        matches = _like(col(Vendor.name), col(Vendor.kind), col(Vendor.market), col(Vendor.zone), query=query)
        if (vendor_id := parse_row_id(query)) is not None:
            matches.append(col(Vendor.id) == vendor_id)
        conditions.append(or_(*matches))
    if convention is not None:
        conditions.append(col(Vendor.convention_status) == convention)
    total = _count(session, select(col(Vendor.id)).where(*conditions))
    page = last_page_at_most(page, per_page, total)
    terminals = select(col(Terminal.vendor_id), func.count().label("n")).group_by(col(Terminal.vendor_id)).subquery()
    statement = (select(Vendor, func.coalesce(terminals.c.n, 0))
                 .outerjoin(terminals, terminals.c.vendor_id == col(Vendor.id)).where(*conditions))
    rows = session.execute(statement.order_by(col(Vendor.name), col(Vendor.id))
                           .limit(per_page).offset((page - 1) * per_page)).all()
    payables = ledger.balances_by_code(session, codes=[ledger.vendor_payable_code(v.id or 0) for v, _ in rows])
    return Page(rows=[VendorRow(vendor=v, terminals=int(n),
                                payable_cents=payables.get(ledger.vendor_payable_code(v.id or 0), 0)) for v, n in rows],
                total=total, page=page, per_page=per_page)


def cards_page(session: Session, *, query: str = "", status: str | None = None, page: int = 1,
               per_page: int = 50) -> Page[CardRow]:
    """One page of the cards whose UID (hex, whole) or household (name, number) matches `query`,
    in one status if given, newest first."""
    page, per_page = bounded(page, per_page)
    conditions: list[ColumnElement[bool]] = []
    query = query.strip()
    if query:
        matches = _like(col(Household.name), query=query)
        if (household_id := parse_row_id(query)) is not None:
            matches.append(col(Card.household_id) == household_id)
        compact = query.replace(" ", "").replace(":", "")
        try:
            matches.append(col(Card.uid) == bytes.fromhex(compact))
        except ValueError:
            pass
        conditions.append(or_(*matches))
    if status is not None:
        conditions.append(col(Card.status) == status)
    statement = select(Card, col(Household.name)).join(Household, col(Household.id) == col(Card.household_id)).where(*conditions)
    total = _count(session, statement.with_only_columns(col(Card.id)))
    page = last_page_at_most(page, per_page, total)
    rows = session.execute(statement.order_by(col(Card.id).desc()).limit(per_page).offset((page - 1) * per_page)).all()
    return Page(rows=[CardRow(card=card, household_name=name) for card, name in rows], total=total, page=page,
                per_page=per_page)


def runs_page(session: Session, *, query: str = "", status: str | None = None, page: int = 1,
              per_page: int = 50) -> Page[SettlementRun]:
    """One page of the settlement runs, newest day first: `query` matches the day as written
    (2026-11, 2026-11-30), the run number, or who prepared or approved it."""
    page, per_page = bounded(page, per_page)
    conditions: list[ColumnElement[bool]] = []
    query = query.strip()
    if query:
        day = cast(col(SettlementRun.run_date), String)  # ISO text on both databases
        matches = _like(day, col(SettlementRun.prepared_by), col(SettlementRun.approved_by), query=query)
        if (run_id := parse_row_id(query)) is not None:
            matches.append(col(SettlementRun.id) == run_id)
        conditions.append(or_(*matches))
    if status is not None:
        conditions.append(col(SettlementRun.status) == status)
    statement = select(SettlementRun).where(*conditions)
    total = _count(session, statement)
    page = last_page_at_most(page, per_page, total)
    rows = session.execute(statement.order_by(col(SettlementRun.run_date).desc())
                           .limit(per_page).offset((page - 1) * per_page)).scalars().all()
    return Page(rows=list(rows), total=total, page=page, per_page=per_page)


def users_page(session: Session, *, query: str = "", role: str | None = None, active: bool | None = None,
               page: int = 1, per_page: int = 50) -> Page[ConsoleUser]:
    """One page of the console accounts, by address."""
    page, per_page = bounded(page, per_page)
    conditions: list[ColumnElement[bool]] = []
    if query.strip():
        conditions.extend(_like(col(ConsoleUser.email), query=query))
    if role is not None:
        conditions.append(col(ConsoleUser.role) == role)
    if active is not None:
        conditions.append(col(ConsoleUser.active).is_(active))
    statement = select(ConsoleUser).where(*conditions)
    total = _count(session, statement)
    page = last_page_at_most(page, per_page, total)
    rows = session.execute(statement.order_by(col(ConsoleUser.email)).limit(per_page).offset((page - 1) * per_page)).scalars().all()
    return Page(rows=list(rows), total=total, page=page, per_page=per_page)


def terminals_page(session: Session, *, query: str = "", status: str | None = None, page: int = 1,
                   per_page: int = 50) -> Page[TerminalRow]:
    """One page of terminal_rows: `query` matches the terminal's number or its vendor's name."""
    page, per_page = bounded(page, per_page)
    conditions: list[ColumnElement[bool]] = []
    query = query.strip()
    if query:
        matches = _like(col(Vendor.name), query=query)
        if (terminal_id := parse_row_id(query)) is not None:
            matches.append(col(Terminal.id) == terminal_id)
        conditions.append(or_(*matches))
    if status is not None:
        conditions.append(col(Terminal.status) == status)
    ids = select(col(Terminal.id)).join(Vendor, col(Vendor.id) == col(Terminal.vendor_id)).where(*conditions)
    total = _count(session, ids)
    page = last_page_at_most(page, per_page, total)
    shown = list(session.execute(ids.order_by(col(Terminal.id)).limit(per_page).offset((page - 1) * per_page)).scalars())
    return Page(rows=terminal_rows(session, terminal_ids=shown) if shown else [], total=total, page=page, per_page=per_page)


def terminal_rows(session: Session, *, vendor_id: int | None = None, status: str | None = None,
                  terminal_ids: list[int] | None = None) -> list[TerminalRow]:
    """Every terminal (of one vendor, in one status, or of these ids) with its record counts, by id."""
    record = table_of(TransactionRecord)
    item = table_of(SettlementItem)
    accepted = record.c.status == str(RecordStatus.ACCEPTED)
    counts = (
        select(
            record.c.terminal_id,
            func.sum(case((and_(accepted, item.c.record_id.is_(None)), 1), else_=0)).label("unsettled"),
            func.sum(case((and_(accepted, record.c.review == str(ReviewStatus.HELD)), 1), else_=0)).label("held"),
            func.sum(case((record.c.status == str(RecordStatus.REJECTED), 1), else_=0)).label("rejected"),
            func.max(record.c.received_at).label("last_record_at"),
        )
        .select_from(record.outerjoin(item, item.c.record_id == record.c.id))
        .group_by(record.c.terminal_id).subquery()
    )
    statement = (select(Terminal, col(Vendor.name), counts.c.unsettled, counts.c.held, counts.c.rejected, counts.c.last_record_at,
                        TerminalHealth)
                 .join(Vendor, col(Vendor.id) == col(Terminal.vendor_id))
                 .outerjoin(counts, counts.c.terminal_id == col(Terminal.id))
                 .outerjoin(TerminalHealth, col(TerminalHealth.terminal_id) == col(Terminal.id)))
    if vendor_id is not None:
        statement = statement.where(col(Terminal.vendor_id) == vendor_id)
    if status is not None:
        statement = statement.where(col(Terminal.status) == status)
    if terminal_ids is not None:
        statement = statement.where(col(Terminal.id).in_(terminal_ids))
    return [TerminalRow(terminal=t, vendor_name=name, unsettled=int(unsettled or 0), held=int(held or 0),
                        rejected=int(rejected or 0), last_record_at=last, health=health)
            for t, name, unsettled, held, rejected, last, health in session.execute(statement.order_by(col(Terminal.id))).all()]
