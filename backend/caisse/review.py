"""Holds and decisions on accepted records (docs/ledger.md, "Holds and review").

A held record stays in the ledger (the member was debited, the vendor's payable credited), but
no settlement pays it until a person decides:

- release: the next settlement run pays it like any other record;
- reject: no run ever pays it. A payment is reversed (vendor_payable -> member, reference
  `reject:{terminal}:{seq}`) in the same transaction and counts as voided from then on, so a
  later void of it is refused instead of refunding the member twice. A payment that was already
  voided is not reversed again: its void refunded the member.

A void is settled together with its payment: while the payment is held or rejected the void is
not settled either (caisse.settlement), so a vendor is never charged back for a payment it was
never paid. Decisions are final: a released or rejected record cannot be held or decided again.

Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select, text
from sqlmodel import Session

from caisse import ledger
from caisse.db import get_by_id
from caisse.errors import Conflict, NotFound
from caisse.models import RecordStatus, ReviewStatus, Terminal, TransactionRecord, utcnow
from caisse.protocol import Kind
from caisse.sync import bump_cards


def hold(session: Session, *, record_ids: Sequence[int], reason: str) -> int:
    """Hold accepted records that no run has settled and nobody has decided on; returns how many.

    Holding again is harmless (the first reason stays), so callers may hold generously."""
    if not record_ids:
        return 0
    result = session.execute(
        text("UPDATE transaction_record SET review = :held, hold_reason = :reason"
             " WHERE id IN :ids AND status = :accepted AND review IS NULL"
             " AND NOT EXISTS (SELECT 1 FROM settlement_item i WHERE i.record_id = transaction_record.id)"
             ).bindparams(bindparam("ids", expanding=True)),
        {"held": str(ReviewStatus.HELD), "reason": reason, "ids": list(record_ids), "accepted": str(RecordStatus.ACCEPTED)},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, *, record_id: int, by: str) -> TransactionRecord:
    """The vendor will be paid by the next settlement run."""
    record = _held(session, record_id=record_id)
    _decide(session, record, ReviewStatus.RELEASED, by=by)
    return record


def reject(session: Session, *, record_id: int, by: str) -> TransactionRecord:
    """The vendor will never be paid for this record; a payment is given back to the member."""
    record = _held(session, record_id=record_id)
    if record.kind == Kind.PAYMENT and not record.voided:
        assert record.household_id is not None, "an accepted payment names its household"
        vendor_id = session.execute(select(Terminal.vendor_id).where(Terminal.id == record.terminal_id)).scalar_one()  # type: ignore[arg-type]
        vendor, member = ledger.vendor_payable_code(vendor_id), ledger.member_code(record.household_id)
        ids = ledger.account_ids(session, codes=(vendor, member))
        ledger.post_transfer(session, debit=ids[vendor], credit=ids[member], amount_cents=record.amount_cents,
                             kind=ledger.TransferKind.REJECT, reference=ledger.reject_reference(record.terminal_id, record.seq))
        record.voided = True
        bump_cards(session, household_ids=[record.household_id])
    _decide(session, record, ReviewStatus.REJECTED, by=by)
    return record


def _held(session: Session, *, record_id: int) -> TransactionRecord:
    """The held record, its row locked until the caller commits: two people deciding at once
    queue, and the second sees the first decision (record_not_held) instead of overwriting it."""
    record = get_by_id(session, TransactionRecord, record_id, for_update=True)
    if record is None:
        raise NotFound("record_not_found", f"no record {record_id}")
    if record.review != ReviewStatus.HELD:
        state = record.review or "not held"
        raise Conflict("record_not_held", f"record {record_id} is {state}: only a held record can be decided")
    return record


def _decide(session: Session, record: TransactionRecord, decision: ReviewStatus, *, by: str) -> None:
    """Record the decision on the row _held locked: no one else can have decided meanwhile."""
    record.review, record.reviewed_by, record.reviewed_at = str(decision), by, utcnow()
    session.flush()
