"""Stored terminal records as staff look them up (the console's transactions page): filtered by
day, vendor, card and status, newest first, a page at a time. Nothing here writes.

The card filter scans the period's records: transaction_record.card_uid has no index on purpose
(every index costs each insert on the ingestion hot path), so narrow it with days on large
databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, select
from sqlmodel import Session

from caisse.db import table_of
from caisse.models import RecordStatus, ReviewStatus, Terminal, TransactionRecord, Vendor
from caisse_common.protocol import Kind

MAX_PAGE = 200
_record = table_of(TransactionRecord)
_terminal = table_of(Terminal)
_vendor = table_of(Vendor)

# The status filter, a closed set: key -> (French label, condition).
STATUS_FILTERS: dict[str, tuple[str, ColumnElement[bool]]] = {
    "accepted": ("acceptés", _record.c.status == str(RecordStatus.ACCEPTED)),
    "refused": ("refusés par le serveur", _record.c.status == str(RecordStatus.REJECTED)),
    "held": ("retenus, en attente de décision", _record.c.review == str(ReviewStatus.HELD)),
    "released": ("libérés après vérification", _record.c.review == str(ReviewStatus.RELEASED)),
    "rejected": ("rejetés après vérification", _record.c.review == str(ReviewStatus.REJECTED)),
    "voided": ("annulés", and_(_record.c.voided.is_(True), _record.c.kind == Kind.PAYMENT)),
}


@dataclass(frozen=True, slots=True)
class RecordRow:
    id: int
    terminal_id: int
    seq: int
    time: int  # unix seconds, terminal clock
    kind: int  # 1 payment, 2 void
    ref_seq: int  # the voided payment's seq, for a void
    amount_cents: int
    card_uid_hex: str
    household_id: int | None
    vendor_id: int
    vendor_name: str
    status: str
    reason: str | None
    voided: bool
    review: str | None
    hold_reason: str | None


@dataclass(frozen=True, slots=True)
class RecordFilter:
    first_day: date | None = None
    last_day: date | None = None  # inclusive
    vendor_id: int | None = None
    card_uid: bytes | None = None
    status: str | None = None  # a key of STATUS_FILTERS


def search(session: Session, *, where: RecordFilter, timezone: str, page: int = 0, page_size: int = 50) -> list[RecordRow]:
    """One page of matching records, newest terminal time first."""
    assert where.status is None or where.status in STATUS_FILTERS, where.status
    assert 1 <= page_size <= MAX_PAGE and page >= 0
    query = (
        select(_record.c.id, _record.c.terminal_id, _record.c.seq, _record.c.time, _record.c.kind, _record.c.ref_seq, _record.c.amount_cents,
               _record.c.card_uid, _record.c.household_id, _vendor.c.id, _vendor.c.name, _record.c.status, _record.c.reason,
               _record.c.voided, _record.c.review, _record.c.hold_reason)
        .select_from(_record.join(_terminal, _terminal.c.id == _record.c.terminal_id).join(_vendor, _vendor.c.id == _terminal.c.vendor_id))
        .where(*_conditions(where, timezone=timezone))
        .order_by(_record.c.time.desc(), _record.c.id.desc())
        .limit(page_size).offset(page * page_size)
    )
    return [RecordRow(id=r[0], terminal_id=r[1], seq=r[2], time=r[3], kind=r[4], ref_seq=r[5], amount_cents=r[6],
                      card_uid_hex=bytes(r[7]).hex(), household_id=r[8], vendor_id=r[9], vendor_name=r[10], status=r[11],
                      reason=r[12], voided=bool(r[13]), review=r[14], hold_reason=r[15])
            for r in session.execute(query)]


def _conditions(where: RecordFilter, *, timezone: str) -> list[ColumnElement[bool]]:
    zone = ZoneInfo(timezone)
    conditions: list[ColumnElement[bool]] = []
    if where.first_day is not None:
        conditions.append(_record.c.time >= int(datetime.combine(where.first_day, time.min, tzinfo=zone).timestamp()))
    if where.last_day is not None and where.last_day < date.max:  # the day after date.max overflows
        end = datetime.combine(where.last_day + timedelta(days=1), time.min, tzinfo=zone)
        conditions.append(_record.c.time < int(end.timestamp()))
    if where.vendor_id is not None:
        conditions.append(_terminal.c.vendor_id == where.vendor_id)
    if where.card_uid is not None:
        conditions.append(_record.c.card_uid == where.card_uid)
    if where.status is not None:
        conditions.append(STATUS_FILTERS[where.status][1])
    return conditions
