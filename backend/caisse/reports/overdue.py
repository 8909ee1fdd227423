"""What waits for a person longer than the caisse allows (docs/operations.md, "Nothing waits
forever"): records held for review, households below zero, cards blocked as copied and vendors
whose payable is below zero, each older than `overdue_after_days`. Listed by `caisse
verify` and on the console's home page, oldest first, in French. Reads only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlmodel import Session, col

from caisse.config import Settings
from caisse.db import column_in, table_of
from caisse.fund import overdrafts
from caisse.models import BlockReason, Card, CardStatus, LedgerAccount, LedgerTransfer, ReviewStatus, Terminal, TransactionRecord
from caisse.money import euros
from caisse_common import protocol


class WaitingKind(enum.StrEnum):
    HELD_RECORD = "held_record"
    NEGATIVE_HOUSEHOLD = "negative_household"
    FLAGGED_CARD = "flagged_card"
    NEGATIVE_PAYABLE = "negative_payable"


@dataclass(frozen=True, slots=True)
class Waiting:
    kind: WaitingKind
    subject: str  # record:4711, household:12, card:04a1b2c3d4e5f6, vendor:3
    since: datetime  # UTC: since when it waits
    amount_cents: int | None
    text: str  # French, with the amount, the date and what to do


def overdue(session: Session, *, settings: Settings, now: datetime | None = None) -> list[Waiting]:
    """Everything waiting since before now - overdue_after_days, oldest first."""
    now = now or datetime.now(UTC)
    before = now - timedelta(days=settings.overdue_after_days)
    zone = ZoneInfo(settings.settlement_timezone)
    found = [*_held_records(session, before, zone), *_flagged_cards(session, before, zone),
             *_overdrawn_households(session, before, zone), *_negative_payables(session, before, zone)]
    return sorted(found, key=lambda w: (w.since, w.kind, w.subject))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite hands back naive UTC


def _day(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%d/%m/%Y")


def _held_records(session: Session, before: datetime, zone: ZoneInfo) -> list[Waiting]:
    record = TransactionRecord
    rows = session.execute(
        select(col(record.id), col(record.terminal_id), col(record.seq), col(record.kind), col(record.amount_cents),
               col(record.received_at), col(record.hold_reason), col(Terminal.vendor_id))
        .join(Terminal, col(Terminal.id) == col(record.terminal_id))
        .where(col(record.review) == str(ReviewStatus.HELD), col(record.received_at) < before)
    ).all()
    waiting = []
    for record_id, terminal_id, seq, kind, amount, received_at, reason, vendor_id in rows:
        since = _utc(received_at)
        what = "paiement" if kind == protocol.Kind.PAYMENT else "annulation"
        waiting.append(Waiting(WaitingKind.HELD_RECORD, f"record:{record_id}", since, amount, (
            f"enregistrement {record_id} ({what} de {euros(amount)} €, terminal {terminal_id} numéro {seq}, commerçant"
            f" {vendor_id}) retenu pour vérification depuis le {_day(since, zone)} : {reason or 'sans motif'} ;"
            f" décider avec « caisse review release|reject {record_id} »")))
    return waiting


def _flagged_cards(session: Session, before: datetime, zone: ZoneInfo) -> list[Waiting]:
    """A card blocked as copied (a genuine SUN counter claimed twice) waits for someone to replace
    it: it is listed until it is returned (`caisse card return`) or issued again. A card only
    flagged (a payment of it held) stays active: its held payment is what waits."""
    rows = session.execute(select(col(Card.uid), col(Card.household_id), col(Card.blocked_at), col(Card.flag_reason)).where(
        col(Card.status) == CardStatus.BLOCKED, col(Card.block_reason) == BlockReason.FLAGGED,
        col(Card.blocked_at) < before)).all()
    waiting = []
    for uid, household_id, blocked_at, reason in rows:
        since = _utc(blocked_at)
        waiting.append(Waiting(WaitingKind.FLAGGED_CARD, f"card:{bytes(uid).hex()}", since, None, (
            f"carte {bytes(uid).hex()} du foyer {household_id} bloquée comme copie depuis le {_day(since, zone)} :"
            f" {reason or 'sans motif'} ; la remplacer, puis « caisse card return {bytes(uid).hex()} --by <compte> »")))
    return waiting


def _overdrawn_households(session: Session, before: datetime, zone: ZoneInfo) -> list[Waiting]:
    """Households below zero since before the delay (caisse.fund.overdrafts keeps `overdrawn_since`)."""
    waiting = []
    for overdraft in overdrafts.overdrawn_households(session, limit=1_000_000):
        if overdraft.since is None or _utc(overdraft.since) >= before:
            continue
        since = _utc(overdraft.since)
        waiting.append(Waiting(WaitingKind.NEGATIVE_HOUSEHOLD, f"household:{overdraft.household_id}", since, overdraft.balance_cents, (
            f"foyer {overdraft.household_id} : solde de {euros(overdraft.balance_cents)} € depuis le {_day(since, zone)} ;"
            " ses prochaines allocations le couvrent d'abord, au-delà à régler avec le foyer")))
    return waiting


def _negative_payables(session: Session, before: datetime, zone: ZoneInfo) -> list[Waiting]:
    """Vendor payables below zero (voids after a payout), since the transfer that last took them
    there: the journal of those accounts only (few), replayed in posting order."""
    negative = {account_id: (code, int(balance)) for account_id, code, balance in session.execute(
        select(col(LedgerAccount.id), col(LedgerAccount.code), col(LedgerAccount.credits_posted_cents) - col(LedgerAccount.debits_posted_cents))
        .where(col(LedgerAccount.credits_posted_cents) < col(LedgerAccount.debits_posted_cents))
        .where(col(LedgerAccount.code).startswith("vendor_payable:"))
    ).all()}
    if not negative:
        return []
    running = dict.fromkeys(negative, 0)
    since: dict[int, datetime] = {}
    ids = list(negative)
    transfers = session.execute(
        select(col(LedgerTransfer.debit_account_id), col(LedgerTransfer.credit_account_id), col(LedgerTransfer.amount_cents),
               col(LedgerTransfer.created_at))
        .where(or_(column_in(session, table_of(LedgerTransfer).c.debit_account_id, ids),
                   column_in(session, table_of(LedgerTransfer).c.credit_account_id, ids)))
        .order_by(col(LedgerTransfer.id))).all()
    for debit, credit, amount, created_at in transfers:
        for account_id, delta in ((debit, -amount), (credit, amount)):
            if account_id in running:
                was = running[account_id]
                running[account_id] = was + delta
                if was >= 0 > running[account_id]:
                    since[account_id] = _utc(created_at)
    waiting = []
    for account_id, (code, balance) in negative.items():
        start = since.get(account_id)
        if start is None or start >= before:
            continue
        vendor_id = code.split(":", 1)[1]
        waiting.append(Waiting(WaitingKind.NEGATIVE_PAYABLE, f"vendor:{vendor_id}", start, balance, (
            f"commerçant {vendor_id} : solde à payer de {euros(balance)} € depuis le {_day(start, zone)} (ses annulations"
            f" dépassent ses paiements) ; à régler avec le commerçant")))
    return waiting
