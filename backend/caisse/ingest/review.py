"""Holds and decisions on accepted records (docs/ledger.md, "Holds and review").

A held record's money waits in the vendor's held account (`vendor_held:{v}`) until a person
decides; settlement pays only from `vendor_payable:{v}`, so a held record is never paid:

- a payment held when it arrives is posted member -> vendor_held; held later (`hold`), its money
  moves vendor_payable -> vendor_held (`hold:{t}:{s}`). Released, vendor_held -> vendor_payable
  (`release:{t}:{s}`): the next run pays it. Rejected, vendor_held -> member (`reject:{t}:{s}`)
  and it counts as voided, so a later void of it is refused instead of refunding twice;
- a void of a payment that is held and undecided is posted vendor_held -> member and follows its
  payment: the two are held and decided together, and the decision moves no more money (the
  pair's money went back to the member already, whatever is decided);
- a void held on its own (its payment not held) is posted vendor_payable -> vendor_held: the
  vendor is charged, the member not refunded yet. Released, vendor_held -> member; rejected,
  vendor_held -> vendor_payable (the payment stands and is paid). Its payment waits for it.

Decisions are final and made by a person, one record at a time or every held record of a
terminal or a vendor; each decided record gets an audit entry, in the caller's transaction.

Locks (docs/ledger.md, "Concurrency"): the terminal rows first, in ascending id order, as an
upload does; on PostgreSQL then the records table in ROW EXCLUSIVE mode (so a settlement run
preparing now is waited for, and waits for us), then the accounts, then the cards counter.
Everyone who changes a record's review state or voided flag holds its terminal's row, so what
is read after the lock stays true until commit. Nothing here commits: the caller owns the
transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import bindparam, select, text, update
from sqlmodel import Session

from caisse import audit
from caisse.cards.versions import bump_cards
from caisse.db import column_in, get_or_not_found, is_postgresql, table_of
from caisse.errors import Conflict, InvalidInput
from caisse.ledger import postings as ledger
from caisse.models import RecordStatus, ReviewStatus, Terminal, TransactionRecord, Vendor, utcnow
from caisse.staff import accounts
from caisse_common.protocol import Kind

# Hold reasons, in French for the person deciding.
HOLD_SUSPECT = "terminal signalé suspect (numéro répété ou chaîne rompue) : en attente d'une décision"
HOLD_REVOKED = "terminal révoqué : en attente d'une décision (à libérer si ce n'était qu'un remplacement)"
FOLLOWS_PAYMENT = "annulation d'un paiement retenu : suit la décision sur ce paiement"


class Decision(enum.StrEnum):
    """A person's decision on a held record (its audit action is record.<decision>)."""
    RELEASE = "release"
    REJECT = "reject"


_record = table_of(TransactionRecord)
_terminal = table_of(Terminal)
_HELD = str(ReviewStatus.HELD)


@dataclass(slots=True)
class _Row:
    """What holds and decisions need of a record, read after its terminal was locked."""

    id: int
    terminal_id: int
    seq: int
    kind: int
    ref_seq: int
    amount_cents: int
    household_id: int | None
    voided: bool
    review: str | None
    hold_reason: str | None
    vendor_id: int
    settled: bool


_ROW_COLUMNS = ("SELECT r.id, r.terminal_id, r.seq, r.kind, r.ref_seq, r.amount_cents, r.household_id, r.voided,"
                " r.review, r.hold_reason, t.vendor_id,"
                " EXISTS (SELECT 1 FROM settlement_item i WHERE i.record_id = r.id)"
                " FROM transaction_record r JOIN terminal t ON t.id = r.terminal_id WHERE r.status = 'accepted'")


# A void (r) and its payment (p), as the decisions here leave them (docs/ledger.md, "Holds and review"):
# held on its own while its payment is not held, the void has refunded nobody yet; a void refunds
# its household unless it or its payment was rejected, or while it is held on its own.
VOID_HELD_ALONE_SQL = "(COALESCE(r.review, '') = 'held' AND COALESCE(p.review, '') <> 'held')"
VOID_REFUNDED_SQL = f"(COALESCE(r.review, p.review, '') <> 'rejected' AND NOT {VOID_HELD_ALONE_SQL})"


def _rows(session: Session, where: str, **params: object) -> list[_Row]:
    statement = text(f"{_ROW_COLUMNS} AND {where} ORDER BY r.id")
    for name, value in params.items():
        if isinstance(value, list):
            statement = statement.bindparams(bindparam(name, expanding=True))
    return [_Row(*row[:11], settled=bool(row[11])) for row in session.execute(statement, params)]


def lock_terminals(session: Session, terminal_ids: Iterable[int]) -> None:
    """The lock order of every writer of records (docs/ledger.md): terminals in ascending id
    order, then (PostgreSQL) the records table, which a preparing settlement run holds in SHARE."""
    ids = sorted(set(terminal_ids))
    if ids:
        session.execute(select(_terminal.c.id).where(_terminal.c.id.in_(ids)).order_by(_terminal.c.id)
                        .with_for_update(key_share=True)).all()
    if is_postgresql(session):
        session.execute(text("LOCK TABLE transaction_record IN ROW EXCLUSIVE MODE"))


def _partners(session: Session, rows: Sequence[_Row]) -> dict[tuple[int, int], _Row]:
    """The other half of each voided pair among `rows`, keyed by (terminal, seq): the payment of
    each void, the accepted void of each voided payment."""
    found: dict[tuple[int, int], _Row] = {}
    by_terminal: dict[int, tuple[set[int], set[int]]] = {}
    for row in rows:
        payments, voided = by_terminal.setdefault(row.terminal_id, (set(), set()))
        if row.kind == Kind.VOID:
            payments.add(row.ref_seq)
        elif row.voided:
            voided.add(row.seq)
    for terminal_id, (payments, voided) in sorted(by_terminal.items()):
        if payments:
            for row in _rows(session, "r.terminal_id = :t AND r.seq IN :seqs", t=terminal_id, seqs=sorted(payments)):
                found[(terminal_id, row.seq)] = row
        if voided:
            # Voids come after their payment: the scan starts at the first voided payment.
            for row in _rows(session, "r.terminal_id = :t AND r.seq > :first AND r.kind = 2 AND r.ref_seq IN :seqs",
                             t=terminal_id, first=min(voided), seqs=sorted(voided)):
                found[(terminal_id, row.seq)] = row
    return found


def _payment_of(row: _Row, partners: Mapping[tuple[int, int], _Row]) -> _Row | None:
    return partners.get((row.terminal_id, row.ref_seq)) if row.kind == Kind.VOID else None


def _void_of(row: _Row, partners: Mapping[tuple[int, int], _Row]) -> _Row | None:
    if row.kind != Kind.PAYMENT or not row.voided:
        return None
    # A void rejected on its own voided nothing: its payment may have been voided again since.
    return next((p for p in partners.values() if p.terminal_id == row.terminal_id and p.kind == Kind.VOID
                 and p.ref_seq == row.seq and p.review != str(ReviewStatus.REJECTED)), None)


# Holding -----------------------------------------------------------------------------------------

def hold(session: Session, *, record_ids: Sequence[int], reason: str) -> int:
    """Hold accepted records that no run has settled and nobody has decided on; returns how many
    were held. Holding again is harmless (the first reason stays), so callers may hold generously.

    A payment's money moves vendor_payable -> vendor_held. A voided payment and its void are held
    together and move nothing (the void gave the money back already); a void accepted without a
    hold refunded the member at once, so it is held only together with its payment, when that one
    is still unsettled and undecided, and otherwise not at all."""
    if not record_ids:
        return 0
    terminal_ids = session.execute(
        select(_record.c.terminal_id).distinct().where(column_in(session, _record.c.id, sorted(set(record_ids))))
    ).scalars().all()
    lock_terminals(session, terminal_ids)
    return _hold_rows(session, _rows(session, "r.id IN :ids", ids=sorted(set(record_ids))), reason=reason)


def hold_terminal(session: Session, *, terminal_id: int, reason: str) -> int:
    """Hold every accepted record of the terminal that no run has settled and nobody has decided
    on (a suspect or revoked terminal: caisse.terminals.registry, caisse.ingest.upload)."""
    lock_terminals(session, [terminal_id])
    rows = _rows(session, "r.terminal_id = :t AND r.review IS NULL"
                 " AND NOT EXISTS (SELECT 1 FROM settlement_item i WHERE i.record_id = r.id)", t=terminal_id)
    return _hold_rows(session, rows, reason=reason)


def _holdable(row: _Row | None) -> bool:
    return row is not None and row.review is None and not row.settled


def _hold_rows(session: Session, rows: Sequence[_Row], *, reason: str) -> int:
    partners = _partners(session, rows)
    held: dict[int, _Row] = {}
    moves: list[_Move] = []
    for row in rows:
        if not _holdable(row) or row.id in held:
            continue
        partner = _payment_of(row, partners) or _void_of(row, partners)
        if row.kind == Kind.PAYMENT and partner is None and not row.voided:
            held[row.id] = row
            moves.append(_Move(ledger.vendor_payable_code(row.vendor_id), ledger.vendor_held_code(row.vendor_id),
                               row.amount_cents, ledger.TransferKind.HOLD, ledger.hold_reference(row.terminal_id, row.seq)))
        elif partner is not None and _holdable(partner):
            held[row.id], held[partner.id] = row, partner
    _post(session, moves)
    _set_review(session, list(held), review=_HELD, hold_reason=reason[:200])
    return len(held)


def mark_held_at_ingestion(session: Session, *, terminal_id: int, holds: Mapping[int, str]) -> None:
    """Mark the batch's new records held (seq -> reason). caisse.ingest.upload posted their money
    straight to vendor_held, or for a void of a held payment from there to the member."""
    by_reason: dict[str, list[int]] = {}
    for seq, reason in holds.items():
        by_reason.setdefault(reason[:200], []).append(seq)
    for reason, seqs in sorted(by_reason.items()):
        session.execute(update(_record).where(_record.c.terminal_id == terminal_id,
                                              column_in(session, _record.c.seq, sorted(seqs)),
                                              _record.c.status == RecordStatus.ACCEPTED, _record.c.review.is_(None))
                        .values(review=_HELD, hold_reason=reason))


# Deciding ----------------------------------------------------------------------------------------

def release(session: Session, *, record_id: int, by: str, os_user: str | None = None) -> TransactionRecord:
    """The vendor will be paid by the next settlement run (a void: the member is refunded)."""
    return _decide_one(session, record_id=record_id, decision=Decision.RELEASE, by=by, os_user=os_user)


def reject(session: Session, *, record_id: int, by: str, os_user: str | None = None) -> TransactionRecord:
    """The vendor will never be paid for this payment, given back to the member; a rejected void
    gives nothing back and its payment stands."""
    return _decide_one(session, record_id=record_id, decision=Decision.REJECT, by=by, os_user=os_user)


def decide_all(session: Session, *, decision: Decision, by: str, terminal_id: int | None = None,
               vendor_id: int | None = None, os_user: str | None = None) -> list[int]:
    """Release or reject every held record of a terminal or of a vendor's terminals; the ids
    decided, in ascending order (each one audited)."""
    if decision not in tuple(Decision) or (terminal_id is None) == (vendor_id is None):
        raise InvalidInput("invalid_decision", "release or reject, for one terminal or one vendor")
    by = _decider(session, by)
    if terminal_id is not None:
        get_or_not_found(session, Terminal, terminal_id, code="terminal_not_found")
        terminals = [terminal_id]
    else:
        assert vendor_id is not None
        get_or_not_found(session, Vendor, vendor_id, code="vendor_not_found")
        terminals = list(session.execute(select(_terminal.c.id).where(_terminal.c.vendor_id == vendor_id)).scalars())
    if not terminals:
        return []
    lock_terminals(session, terminals)
    rows = _rows(session, "r.review = :held AND r.terminal_id IN :terminals", held=_HELD, terminals=sorted(terminals))
    return _decide(session, rows, decision=decision, by=by, os_user=os_user)


def _decide_one(session: Session, *, record_id: int, decision: Decision, by: str, os_user: str | None) -> TransactionRecord:
    by = _decider(session, by)
    record = get_or_not_found(session, TransactionRecord, record_id, code="record_not_found")
    lock_terminals(session, [record.terminal_id])
    # Read again under the lock: a decision that committed meanwhile is seen here.
    rows = _rows(session, "r.id = :id", id=record_id)
    if not rows or rows[0].review != _HELD:
        state = rows[0].review if rows else None
        raise Conflict("record_not_held", f"record {record_id} is {state or 'not held'}: only a held record can be decided")
    _decide(session, rows, decision=decision, by=by, os_user=os_user)
    refreshed = session.get(TransactionRecord, record_id, populate_existing=True)
    assert refreshed is not None
    return refreshed


def _decider(session: Session, by: str) -> str:
    """A decision is a person's: an active console account, never the system."""
    if not by or not by.strip():
        raise InvalidInput("invalid_decided_by", "say who decides")
    return accounts.active_user(session, email=by).email


def _decide(session: Session, rows: Sequence[_Row], *, decision: Decision, by: str, os_user: str | None = None) -> list[int]:
    """Decide held records: a void following its payment and that payment as one. Money moves
    for a lone record only: a pair's money went back to the member when the void arrived."""
    partners = _partners(session, rows)
    decided: dict[int, _Row] = {}
    moves: list[_Move] = []
    unvoid: list[int] = []  # payments whose void was rejected: they stand again
    households: set[int] = set()
    for row in rows:
        if row.id in decided or row.review != _HELD:
            continue
        payment, void = _payment_of(row, partners), _void_of(row, partners)
        pair = (payment if payment is not None and payment.review == _HELD else
                void if void is not None and void.review in (_HELD, None) else None)
        decided[row.id] = row
        if pair is not None:
            decided[pair.id] = pair
            continue
        held, payable = ledger.vendor_held_code(row.vendor_id), ledger.vendor_payable_code(row.vendor_id)
        if row.kind == Kind.PAYMENT:
            assert row.household_id is not None, "an accepted payment names its household"
            member, household = ledger.member_code(row.household_id), row.household_id
        else:
            assert payment is not None and payment.household_id is not None, "a void's payment is stored"
            member, household = ledger.member_code(payment.household_id), payment.household_id
        reference = (ledger.release_reference if decision == Decision.RELEASE else ledger.reject_reference)(row.terminal_id, row.seq)
        kind = ledger.TransferKind.RELEASE if decision == Decision.RELEASE else ledger.TransferKind.REJECT
        # Release: a payment to the vendor's payable, a void's refund to the member; reject: the reverse.
        to_member = (row.kind == Kind.PAYMENT) == (decision == Decision.REJECT)
        moves.append(_Move(held, member if to_member else payable, row.amount_cents, kind, reference))
        if to_member:
            households.add(household)
        if row.kind == Kind.PAYMENT and decision == Decision.REJECT:
            session.execute(update(_record).where(_record.c.id == row.id).values(voided=True))
        if row.kind == Kind.VOID and decision == Decision.REJECT and payment is not None:
            unvoid.append(payment.id)
    if unvoid:
        session.execute(update(_record).where(column_in(session, _record.c.id, unvoid)).values(voided=False))
    _post(session, moves)
    ids = sorted(decided)
    review = str(ReviewStatus.RELEASED if decision == Decision.RELEASE else ReviewStatus.REJECTED)
    _set_review(session, ids, review=review, reviewed_by=by, reviewed_at=utcnow())
    for record_id in ids:
        row = decided[record_id]
        audit.record(session, actor=by, action=f"record.{decision}", subject=f"record:{record_id}",
                     detail={"terminal_id": row.terminal_id, "seq": row.seq, "kind": row.kind,
                             "amount_cents": row.amount_cents, "hold_reason": row.hold_reason}, os_user=os_user)
    bump_cards(session, household_ids=households)
    return ids


class _Move(NamedTuple):
    debit_code: str
    credit_code: str
    amount_cents: int
    kind: ledger.TransferKind
    reference: str


def _post(session: Session, moves: Sequence[_Move]) -> None:
    """Post the moves in one call."""
    if not moves:
        return
    ids = ledger.account_ids(session, codes=[code for move in moves for code in (move.debit_code, move.credit_code)])
    for move in moves:
        for code in (move.debit_code, move.credit_code):
            if code not in ids:  # made with their vendor (migration 0012 for older ones): a safety net
                ids[code] = ledger.ensure_account(session, code=code, kind=ledger.account_kind(code))
    ledger.post_transfers(session, transfers=[
        ledger.Transfer(ids[move.debit_code], ids[move.credit_code], move.amount_cents, move.kind, move.reference)
        for move in moves])


def _set_review(session: Session, ids: list[int], **values: object) -> None:
    if ids:
        session.execute(update(_record).where(column_in(session, _record.c.id, ids)).values(**values))
