"""Ingestion of signed transaction records (docs/protocol.md#upload).

One call = one batch = one database transaction, owned by the caller: either everything a batch
decides is committed (stored records, rejection log, ledger transfers, terminal state) or nothing.

The hot path is built for throughput: signature checks are the only per-record cost that
cannot be avoided, so the database work is a fixed handful of statements per batch (one read of
the terminal, one of the neighbouring seqs, one of the cards, bulk inserts, one UPDATE per
touched account) whatever the batch size.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from caisse.cards import authentication as card_auth
from caisse.cards.versions import bump_cards
from caisse.config import Settings
from caisse.db import bind_value, bulk_insert, column_in, insert_tuples, is_postgresql, table_of
from caisse.ingest import review
from caisse.ledger import postings as ledger
from caisse.models import (
    AccreditationState,
    Card,
    CardStatus,
    ConventionStatus,
    RecordStatus,
    RejectedUpload,
    RejectionBudget,
    ReviewStatus,
    Terminal,
    TerminalStatus,
    TransactionRecord,
    unix_s,
    utcnow,
)
from caisse.terminals import offline_limits
from caisse.terminals.service import lock_terminal, terminal_public_key
from caisse.vendors import accreditation
from caisse_common import protocol
from caisse_common.protocol import Kind, MalformedRecord, Record

MAX_RECORDS_PER_BATCH = 256
MAX_BATCH_BODY_BYTES = 64 * 1024
# Rejection log rows a minute: per terminal, and for all terminals together (docs/security.md,
# "Attacks and their bounds"). Beyond them a rejection is still answered, only counted.
REJECTIONS_PER_SOURCE_PER_MINUTE = 32
REJECTIONS_PER_MINUTE = 128
ALL_SOURCES = "all"
_ACKED_SCAN_ROWS = 1024
_MAX_KEY_HINTS = 10_000

# terminal_id -> the public key this process last read for it under the row lock. A hint only:
# signatures checked with it before the transaction are trusted only if the locked row holds the
# same key (it does unless the process talks to several databases, as the tests do).
_key_hints: dict[int, bytes] = {}

_record = table_of(TransactionRecord)
_rejected = table_of(RejectedUpload)
_budget = table_of(RejectionBudget)
_card = table_of(Card)
_terminal = table_of(Terminal)
_accreditation = table_of(AccreditationState)


class Reason(enum.StrEnum):
    """Closed set, in order of precedence (docs/protocol.md). The first five are not stored."""

    MALFORMED = "malformed"
    WRONG_TERMINAL = "wrong_terminal"
    BAD_SIGNATURE = "bad_signature"
    SEQ_CONFLICT = "seq_conflict"
    BAD_CHAIN = "bad_chain"
    OVER_LIMIT = "over_limit"
    UNKNOWN_CARD = "unknown_card"
    CARD_BLOCKED = "card_blocked"
    UNKNOWN_PAYMENT = "unknown_payment"


class TimeBound(enum.StrEnum):
    """A bound on a record's time that, broken, holds the record for review (docs/protocol.md,
    "Bounds on what a record says"). The value closes its French hold reason, in brackets."""

    IN_FUTURE = "time_in_future"
    VOID_OUTSIDE_WINDOW = "void_outside_window"


HOLD_REASONS = {
    TimeBound.IN_FUTURE: "heure du terminal en avance sur la réception : horloge déréglée ou falsifiée",
    TimeBound.VOID_OUTSIDE_WINDOW: "annulation hors du délai d'annulation du paiement qu'elle annule",
}


def hold_reason(bound: TimeBound) -> str:
    return f"{HOLD_REASONS[bound]} ({bound.value})"


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a few times more to build, once per record
class RecordResult:
    index: int
    seq: int | None
    status: Outcome
    reason: Reason | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: list[RecordResult]
    acked_seq: int
    terminal_flagged_suspect: bool = False


@dataclass(slots=True)
class _Stored:
    """What ingestion needs to know of a stored record, loaded or created in this batch."""

    raw: bytes
    digest: bytes
    prev_hash: bytes
    kind: int
    status: str
    card_uid: bytes
    amount_cents: int
    household_id: int | None
    chain_verified: bool
    voided: bool
    time: int  # as the terminal stamped it
    flags: int
    review: str | None = None  # caisse.ingest.review's state of a stored record; None for a new one
    new_row: list | None = None  # set when inserted by this batch (in _RECORD_COLUMNS order)


class _Candidate(NamedTuple):
    """A well-formed record of the batch's terminal, waiting for its verdict."""
    position: int  # in the uploaded batch
    raw: bytes
    record: Record
    digest: bytes


class _Accepted(NamedTuple):
    kind: Kind
    seq: int
    ref_seq: int  # 0 for a payment
    household_id: int
    amount_cents: int


class _Posting(NamedTuple):
    debit_code: str
    credit_code: str
    amount_cents: int
    kind: ledger.TransferKind
    reference: str


class _CardRow(NamedTuple):
    household_id: int
    status: str
    blocked_at_s: int | None
    card_id: int
    secure: bool
    blocked_version: int | None
    block_reason: str | None


@dataclass(slots=True)
class _Batch:
    """Everything the batch will write, gathered first and written in bulk at the end."""

    terminal_id: int
    new_rows: list[list] = field(default_factory=list)
    rejections: list[dict] = field(default_factory=list)
    voided_seqs: set[int] = field(default_factory=set)
    verified_seqs: set[int] = field(default_factory=set)
    # Each accepted record's money: the accounts are chosen when the batch is written, once every
    # hold is known (_postings).
    postings: list[_Accepted] = field(default_factory=list)
    households: set[int] = field(default_factory=set)
    # Secure cards (caisse.cards.authentication): (card_id, SUN counter, seq) to claim, holds by seq, cards
    # to flag for staff and cards to block by card id, each with its French reason. A held
    # record's money goes to the vendor's held account (caisse.ingest.review): whoever holds a record
    # adds it to `holds` before the write.
    claims: list[tuple[int, int, int]] = field(default_factory=list)
    holds: dict[int, str] = field(default_factory=dict)
    flags: dict[int, str] = field(default_factory=dict)
    blocks: dict[int, str] = field(default_factory=dict)
    suspect: bool = False
    received_at: datetime = field(default_factory=utcnow)


@dataclass(slots=True)
class PreparedBatch:
    """A batch decoded and, when this process knows the terminal's key, verified: the part of
    ingestion that needs no database, done before the transaction (see prepare_batch)."""

    batch: _Batch
    count: int
    results: list[RecordResult | None]
    candidates: list[_Candidate]
    hinted_key: bytes | None
    signature_ok: dict[bytes, bool]


def ingest_batch(session: Session, *, terminal_id: int, raw_records: Sequence[bytes], settings: Settings) -> BatchResult:
    """Check, store and post one batch of records. Does not commit: the caller does.

    Raises caisse.errors.TerminalRefused (nothing to write) for an unknown or revoked terminal.
    """
    return ingest_prepared(session, prepare_batch(terminal_id=terminal_id, raw_records=raw_records), settings=settings)


def prepare_batch(*, terminal_id: int, raw_records: Sequence[bytes]) -> PreparedBatch:
    """Decode the records and verify their signatures with the key this process last saw for the
    terminal. Touches no database, so the caller runs it before taking any lock: `cryptography`
    releases the GIL while it verifies, and concurrent uploads overlap it with each other's SQL.
    ingest_prepared trusts these verdicts only if the locked terminal row holds the same key."""
    assert len(raw_records) <= MAX_RECORDS_PER_BATCH, "the API refuses larger batches"
    batch = _Batch(terminal_id=terminal_id, received_at=utcnow())
    results: list[RecordResult | None] = [None] * len(raw_records)
    candidates = _decode_all(batch, raw_records, results)
    hinted_key = _key_hints.get(terminal_id)
    signature_ok = _verify_before_locking(hinted_key, candidates)
    return PreparedBatch(batch=batch, count=len(raw_records), results=results, candidates=candidates,
                         hinted_key=hinted_key, signature_ok=signature_ok)


def ingest_prepared(session: Session, prepared: PreparedBatch, *, settings: Settings) -> BatchResult:
    """The transactional part of ingest_batch: every check in order, the writes. Does not commit."""
    batch, results, candidates = prepared.batch, prepared.results, prepared.candidates
    terminal_id, hinted_key, signature_ok = batch.terminal_id, prepared.hinted_key, prepared.signature_ok

    terminal = lock_terminal(session, terminal_id=terminal_id)  # the transaction starts here
    vendor_id, status, acked_seq = terminal.vendor_id, terminal.status, terminal.acked_seq
    public_key = terminal_public_key(terminal.public_key)
    if hinted_key != terminal.public_key:
        signature_ok = {}  # no hint, or a hint about another database: verify below, with the real key
        if len(_key_hints) >= _MAX_KEY_HINTS:
            _key_hints.clear()
        _key_hints[terminal_id] = terminal.public_key

    stored, covered = _load_neighbourhood(session, terminal_id=terminal_id, records=[c.record for c in candidates])
    received_s = unix_s(batch.received_at)
    cards = _load_cards(session, uids={c.record.card_uid for c in candidates})
    budget = offline_limits.load_judge(
        session, terminal_id=terminal_id, terminal=terminal,
        payments=[(c.record, cards[c.record.card_uid].household_id) for c in candidates if c.record.card_uid in cards])
    deny_list_proofs: dict[int, int | None] = {}
    accreditations, zone = _accreditation_history(session, vendor_id=vendor_id), ZoneInfo(settings.settlement_timezone)
    open_from_s, open_until_s = _surely_accredited(accreditations)

    def deny_list_held_since(version: int) -> int | None:
        if version not in deny_list_proofs:
            deny_list_proofs[version] = card_auth.deny_list_held_since(session, terminal_id=terminal_id, version=version)
        return deny_list_proofs[version]

    postings, households = batch.postings, batch.households
    for index, raw, record, digest in candidates:
        seq = record.seq
        existing = stored.get(seq)
        if existing is not None and existing.raw == raw:
            # Same bytes as a stored record: it verified then, it verifies now. Nothing changes.
            results[index] = RecordResult(index, seq, Outcome.DUPLICATE)
            continue
        if raw not in signature_ok:
            signature_ok[raw] = protocol.verify_digest(public_key, digest, record.signature)
        if not signature_ok[raw]:
            results[index] = _reject(batch, index, raw, seq, Reason.BAD_SIGNATURE, "the signature does not verify with this terminal's key")
            continue
        if existing is not None:
            batch.suspect = True
            results[index] = _reject(batch, index, raw, seq, Reason.SEQ_CONFLICT, f"seq {seq} is stored with different bytes",
                                     signed=True)
            continue
        previous, following = stored.get(seq - 1), stored.get(seq + 1)
        if previous is not None and previous.digest != record.prev_hash:
            batch.suspect = True
            results[index] = _reject(batch, index, raw, seq, Reason.BAD_CHAIN, f"prev_hash does not match the stored record {seq - 1}",
                                     signed=True)
            continue
        if following is not None and following.prev_hash != digest:
            batch.suspect = True
            results[index] = _reject(batch, index, raw, seq, Reason.BAD_CHAIN, f"the stored record {seq + 1} does not point to this one",
                                     signed=True)
            continue
        judged_s, time_hold = _judged_time(record, received_s=received_s, previous=previous, settings=settings)
        reason, household_id, hold = _business_verdict(record, judged_s=judged_s, cards=cards, stored=stored,
                                                       settings=settings, deny_list_held_since=deny_list_held_since)
        if reason is Reason.UNKNOWN_PAYMENT and stored.get(record.ref_seq) is None:
            # The voided payment is in a gap: it may still arrive. Judging the void now would make
            # the outcome depend on upload order, so it is not stored; the terminal sends it again
            # (acked_seq cannot pass the gap) and it is judged once the payment is here.
            detail = f"payment {record.ref_seq} has not arrived yet: send it first"
            results[index] = _reject(batch, index, raw, seq, Reason.UNKNOWN_PAYMENT, detail, signed=True)
            continue
        if following is not None and not following.chain_verified:
            following.chain_verified = True
            if following.new_row is not None:
                following.new_row[_CHAIN_VERIFIED] = True
            else:
                batch.verified_seqs.add(seq + 1)
        row = _new_row(terminal_id, seq, raw, digest, record, household_id, reason,
                       chain_verified=seq == 1 or previous is not None, received_at=batch.received_at)
        batch.new_rows.append(row)
        stored[seq] = _Stored(  # positional, in field order: keywords cost twice as much, once per record
            raw, digest, record.prev_hash, record.kind, row[_STATUS], record.card_uid, record.amount_cents, household_id,
            row[_CHAIN_VERIFIED], False, record.time, record.flags, None, row,
        )
        card = cards.get(record.card_uid)
        if card is not None and card.secure and record.kind == Kind.PAYMENT:
            _check_secure_card(batch, record, card_id=card.card_id, settings=settings)
        if budget is not None and household_id is not None:
            over_budget = budget.judge(record, household_id)  # every stored record counts in the day's spend
            hold = hold or over_budget
        if reason is None and record.kind == Kind.PAYMENT and not open_from_s <= judged_s < open_until_s:
            # Signed when the vendor could not take payments (its terminal had not heard, or lies
            # about its clock): a person decides. A void only gives money back: never held for it.
            hold = hold or accreditation.unaccredited_reason(accreditations, judged_s, zone)
        if reason is None:
            for why in (hold, time_hold):
                if why is not None:
                    batch.holds.setdefault(seq, why)
        if reason is not None:
            results[index] = RecordResult(index, seq, Outcome.REJECTED, reason)
            continue
        assert household_id is not None
        if record.kind == Kind.PAYMENT:
            postings.append(_Accepted(Kind.PAYMENT, seq, 0, household_id, record.amount_cents))
            households.add(household_id)
        else:
            _post_void(batch, record, stored=stored)
        results[index] = RecordResult(index, seq, Outcome.ACCEPTED)

    _write(session, batch, vendor_id=vendor_id, stored=stored, status=status)
    if batch.holds:
        review.mark_held_at_ingestion(session, terminal_id=terminal_id, holds=batch.holds)
    if batch.flags:
        card_auth.flag_cards(session, reasons=batch.flags)
    if batch.blocks:
        card_auth.block_copied_cards(session, reasons=batch.blocks)
    flagged = batch.suspect and status == TerminalStatus.ACTIVE
    if flagged:  # what it sent before, not settled yet, waits for a person too
        review.hold_terminal(session, terminal_id=terminal_id, reason=review.HOLD_SUSPECT)
    new_acked_seq = _advance_acked_seq(session, terminal_id=terminal_id, acked_seq=acked_seq, stored=stored,
                                       covered=covered)
    if flagged:
        session.execute(update(_terminal).where(_terminal.c.id == terminal_id)
                        .values(acked_seq=new_acked_seq, status=TerminalStatus.SUSPECT))
    elif new_acked_seq != acked_seq:
        session.connection().execute(_SET_ACKED_SEQ, {"terminal_id": terminal_id, "new_acked_seq": new_acked_seq})
    final = [r for r in results if r is not None]
    assert len(final) == prepared.count, "every record gets exactly one result"
    return BatchResult(results=final, acked_seq=new_acked_seq, terminal_flagged_suspect=flagged)


def _decode_all(
    batch: _Batch, raw_records: Sequence[bytes], results: list[RecordResult | None]
) -> list[_Candidate]:
    """The well-formed records of this terminal; the others get their verdict (malformed,
    wrong_terminal) in `results` and go to the rejection log."""
    candidates = []
    for index, raw in enumerate(raw_records):
        try:
            record = protocol.decode(raw)
        except MalformedRecord as error:
            results[index] = _reject(batch, index, raw, None, Reason.MALFORMED, str(error))
            continue
        if record.terminal_id != batch.terminal_id:
            detail = f"record of terminal {record.terminal_id} sent to terminal {batch.terminal_id}"
            results[index] = _reject(batch, index, raw, record.seq, Reason.WRONG_TERMINAL, detail)
            continue
        candidates.append(_Candidate(index, raw, record, hashlib.sha256(raw[: protocol.BODY_SIZE]).digest()))
    return candidates


def _verify_before_locking(hinted_key: bytes | None, candidates: list[_Candidate]) -> dict[bytes, bool]:
    """Signature verdicts by raw bytes, with the key this process last saw for the terminal.

    Done before the transaction starts: `cryptography` releases the GIL while it verifies, so
    concurrent uploads overlap their verifications with each other's SQL, and none of it happens
    while holding the database's write lock (SQLite) or the terminal's row lock. The caller
    trusts these verdicts only if the locked row holds the same key.
    """
    verdicts: dict[bytes, bool] = {}
    if hinted_key is None:
        return verdicts
    key = terminal_public_key(hinted_key)
    for _, raw, record, digest in candidates:
        if raw not in verdicts:
            verdicts[raw] = protocol.verify_digest(key, digest, record.signature)
    return verdicts


def _reject(batch: _Batch, index: int, raw: bytes, seq: int | None, reason: Reason, detail: str, *,
            signed: bool = False) -> RecordResult:
    """A record that is not authentic or not well formed, or a void that came too early: never
    stored, summarized in the rejection log (its bytes only if the terminal's key signed them)."""
    batch.rejections.append(
        {"terminal_id": batch.terminal_id, "seq": seq, "raw": raw if signed else None,
         "raw_sha256": hashlib.sha256(raw).digest(), "raw_size": len(raw), "reason": reason.value,
         "detail": detail[:300], "received_at": batch.received_at}
    )
    return RecordResult(index=index, seq=seq, status=Outcome.REJECTED, reason=reason, detail=detail)


def _log_rejections(session: Session, batch: _Batch) -> None:
    """The batch's rejections, as many as the budgets of this minute allow: the terminal's first,
    then that of all terminals (so one terminal's flood takes at most its own share of it)."""
    minute = unix_s(batch.received_at) // 60
    wanted = len(batch.rejections)
    granted = _take_budget(session, source=f"terminal:{batch.terminal_id}", minute=minute, wanted=wanted,
                           limit=REJECTIONS_PER_SOURCE_PER_MINUTE)
    if granted:
        granted = _take_budget(session, source=ALL_SOURCES, minute=minute, wanted=granted, limit=REJECTIONS_PER_MINUTE)
    bulk_insert(session, _rejected, batch.rejections[:granted])


def _take_budget(session: Session, *, source: str, minute: int, wanted: int, limit: int) -> int:
    """How many of `wanted` rows `source` may still log this minute, counting them as used; the
    rest are added to its dropped count. One upsert, whose row lock serializes concurrent batches."""
    dialect = postgresql if is_postgresql(session) else sqlite
    statement = dialect.insert(_budget).values(source=source, minute=minute, used=wanted, dropped=0)
    same_minute = _budget.c.minute == statement.excluded.minute
    statement = statement.on_conflict_do_update(
        index_elements=[_budget.c.source],
        set_={"used": case((same_minute, _budget.c.used + statement.excluded.used), else_=statement.excluded.used),
              "minute": statement.excluded.minute},
    ).returning(_budget.c.used)
    used = session.execute(statement).scalar_one()
    granted = max(0, min(wanted, limit - (used - wanted)))
    if granted < wanted:
        session.execute(update(_budget).where(_budget.c.source == source).values(dropped=_budget.c.dropped + wanted - granted))
    return granted


def dropped_rejections(session: Session, *, terminal_id: int) -> int:
    """Rejections of this terminal that were answered but not logged, over its budget."""
    dropped = session.execute(select(_budget.c.dropped).where(_budget.c.source == f"terminal:{terminal_id}")).scalar_one_or_none()
    return int(dropped or 0)


_DAY_S = 86_400
_EPOCH_DAY = date(1970, 1, 1)
_ALWAYS = (-(2**63), 2**63)


def _accreditation_history(session: Session, *, vendor_id: int) -> list[accreditation.State]:
    """accreditation.states, through a statement built once: on the ORM entity, built per call,
    the query cost a quarter of a small batch's server time."""
    rows = session.connection().execute(_ACCREDITATION_HISTORY, {"vendor_id": vendor_id}).all()
    return [accreditation.State(status, starts_on, ends_on, unix_s(since)) for status, starts_on, ends_on, since in rows]


def _surely_accredited(history: list[accreditation.State]) -> tuple[int, int]:
    """[from, until) in Unix seconds where accreditation.unaccredited_reason is surely None, found
    without the local date it computes per moment (a time zone conversion per record otherwise).

    The state in force there is the last one (a single state is in force at every moment). Its
    dates are judged on the settlement zone's local date, whose UTC offset is under a day either
    way (as Python requires of any tzinfo): a moment a full day after the UTC midnight that starts
    `starts_on` is on or after it in every zone, and one a full day before the UTC midnight that
    ends `ends_on` is on or before it. Moments outside the window are judged in full."""
    if not history:
        return _ALWAYS
    state = history[-1]
    if state.status != ConventionStatus.ACTIVE:
        return 0, 0
    open_from_s = state.since_s if len(history) > 1 else _ALWAYS[0]
    open_until_s = _ALWAYS[1]
    if state.starts_on is not None:
        open_from_s = max(open_from_s, _utc_midnight_s(state.starts_on) + _DAY_S)
    if state.ends_on is not None:
        open_until_s = _utc_midnight_s(state.ends_on)  # the UTC end of ends_on, less a day
    return open_from_s, open_until_s


def _utc_midnight_s(day: date) -> int:
    return (day - _EPOCH_DAY).days * _DAY_S


def _judged_time(record: Record, *, received_s: int, previous: _Stored | None, settings: Settings) -> tuple[int, str | None]:
    """(the time the record's time-dependent rules judge it on, hold reason if its time is not
    believed; docs/protocol.md, "Bounds on what a record says").

    - stamped without a trusted clock (FLAG_UNTRUSTED_TIME): its reception, unheld (the
      terminal said so);
    - later than its reception beyond the sync clock window: its reception, held;
    - otherwise its time, but never earlier than the stored record before it in the chain (a
      terminal writes its records in time order): a terminal cannot date one tap before a
      block while the record before it is after."""
    if record.flags & protocol.FLAG_UNTRUSTED_TIME:
        return received_s, None
    if record.time > received_s + settings.sync_clock_window_s:
        return received_s, hold_reason(TimeBound.IN_FUTURE)
    if previous is not None and not previous.flags & protocol.FLAG_UNTRUSTED_TIME:
        return max(record.time, min(previous.time, received_s)), None
    return record.time, None


def _business_verdict(
    record: Record, *, judged_s: int, cards: dict[bytes, _CardRow], stored: dict[int, _Stored], settings: Settings,
    deny_list_held_since: Callable[[int], int | None],
) -> tuple[Reason | None, int | None, str | None]:
    """(reason or None if accepted, household id of the card if known, hold reason if accepted
    but to be held: a tap on a blocked card by a terminal whose deny list predated the block, a
    void outside its window). Time-dependent rules use `judged_s` (_judged_time)."""
    card = cards.get(record.card_uid)
    household_id = card.household_id if card is not None else None
    if record.amount_cents > settings.max_payment_cents:
        return Reason.OVER_LIMIT, household_id, None
    if card is None:
        return Reason.UNKNOWN_CARD, None, None
    card_status, blocked_at_s, blocked_version = card.status, card.blocked_at_s, card.blocked_version
    if not card.secure and record.kind == Kind.PAYMENT and record.amount_cents > settings.basic_card_max_payment_cents:
        return Reason.OVER_LIMIT, household_id, None
    hold = None
    if card_status != CardStatus.ACTIVE and (blocked_at_s is None or blocked_at_s <= judged_s):
        # Refused only if this terminal had been told: it proved holding the block's version
        # before the tap. Blocks older than the version stamp (blocked_version None) always are.
        held_since = None if blocked_version is None else deny_list_held_since(blocked_version)
        if blocked_version is None or (held_since is not None and held_since <= judged_s):
            return Reason.CARD_BLOCKED, household_id, None
        hold = card_auth.unheld_block_reason(card_status, card.block_reason)
    if record.kind == Kind.VOID:
        payment = stored.get(record.ref_seq)
        if (
            payment is None
            or payment.kind != Kind.PAYMENT
            or payment.status != RecordStatus.ACCEPTED
            or payment.voided
            or payment.card_uid != record.card_uid
            or payment.amount_cents != record.amount_cents
        ):
            return Reason.UNKNOWN_PAYMENT, household_id, None
        # A void after its window (or dated before its payment) is not refused: the terminal
        # committed it. Held: a late void may follow a payment already paid to the vendor.
        if not -settings.sync_clock_window_s <= judged_s - payment.time <= settings.void_window_s + settings.sync_clock_window_s:
            hold = hold or hold_reason(TimeBound.VOID_OUTSIDE_WINDOW)
    return None, household_id, hold


def _check_secure_card(batch: _Batch, record: Record, *, card_id: int, settings: Settings) -> None:
    """A secure card's payment: a genuine SUN message claims its counter; anything else holds
    the record and flags the card for staff, without blocking it (docs/cards.md, "Ingestion check")."""
    counter, problem = card_auth.check_sun(card_auth.card_keys(settings), card_uid=record.card_uid,
                                           card_auth=record.card_auth)
    if problem is None:
        assert counter is not None
        batch.claims.append((card_id, counter, record.seq))
        return
    batch.holds.setdefault(record.seq, problem)
    batch.flags.setdefault(card_id, problem)


def _post_void(batch: _Batch, record: Record, *, stored: dict[int, _Stored]) -> None:
    payment = stored[record.ref_seq]
    assert payment.household_id is not None and not payment.voided
    payment.voided = True
    if payment.new_row is not None:
        payment.new_row[_VOIDED] = True
    else:
        batch.voided_seqs.add(record.ref_seq)
    batch.postings.append(_Accepted(Kind.VOID, record.seq, record.ref_seq, payment.household_id, record.amount_cents))
    batch.households.add(payment.household_id)


def _postings(batch: _Batch, *, vendor_id: int, stored: dict[int, _Stored]) -> list[_Posting]:
    """The transfer of each accepted record, held ones into
    the vendor's held account (docs/ledger.md, "Holds and review"): a held payment member ->
    vendor_held; a void of a held payment vendor_held -> member, held with it; a void held on its
    own vendor_payable -> vendor_held. A void's hold reason becomes its payment's decision."""
    payable, held = ledger.vendor_payable_code(vendor_id), ledger.vendor_held_code(vendor_id)
    terminal_id, holds = batch.terminal_id, batch.holds
    members = {household_id: ledger.member_code(household_id) for household_id in batch.households}
    postings = []
    for kind, seq, ref_seq, household_id, amount in batch.postings:
        reference, member = ledger.record_reference(terminal_id, seq), members[household_id]
        if kind == Kind.PAYMENT:
            postings.append(_Posting(member, held if seq in holds else payable, amount, _PAYMENT_TRANSFER, reference))
            continue
        payment = stored[ref_seq]
        if payment.review == ReviewStatus.HELD or (payment.new_row is not None and ref_seq in holds):
            holds[seq] = review.FOLLOWS_PAYMENT
            postings.append(_Posting(held, member, amount, _VOID_TRANSFER, reference))
        else:
            postings.append(_Posting(payable, held if seq in holds else member, amount, _VOID_TRANSFER, reference))
    return postings


_PAYMENT_TRANSFER, _VOID_TRANSFER = ledger.TransferKind.PAYMENT, ledger.TransferKind.VOID


_RECORD_COLUMNS = ("terminal_id", "seq", "raw", "digest", "kind", "flags", "time", "amount_cents", "ref_seq", "card_uid",
                   "card_auth", "prev_hash", "household_id", "status", "reason", "chain_verified", "voided", "received_at")
_STATUS, _CHAIN_VERIFIED, _VOIDED, _RECEIVED_AT = (_RECORD_COLUMNS.index(c) for c in ("status", "chain_verified", "voided", "received_at"))


def _new_row(terminal_id: int, seq: int, raw: bytes, digest: bytes, record: Record, household_id: int | None,
             reason: Reason | None, *, chain_verified: bool, received_at: datetime) -> list:
    """A transaction_record row in _RECORD_COLUMNS order (received_at converted when written)."""
    return [
        terminal_id, seq, raw, digest, int(record.kind), record.flags, record.time, record.amount_cents, record.ref_seq,
        record.card_uid, record.card_auth, record.prev_hash, household_id,
        _STORED_ACCEPTED if reason is None else _STORED_REJECTED,
        None if reason is None else reason.value, chain_verified, False, received_at,
    ]


_STORED_ACCEPTED, _STORED_REJECTED = RecordStatus.ACCEPTED.value, RecordStatus.REJECTED.value


def _load_neighbourhood(
    session: Session, *, terminal_id: int, records: list[Record]
) -> tuple[dict[int, _Stored], range | set[int]]:
    """The stored records a batch can touch (each seq, its neighbours, voided payments), and the
    seqs the query covered: a covered seq missing from the result is not stored."""
    wanted: set[int] = set()
    for record in records:
        wanted.update((record.seq - 1, record.seq, record.seq + 1))
        if record.kind == Kind.VOID:
            wanted.add(record.ref_seq)
    wanted.discard(0)
    if not wanted:
        return {}, wanted
    low, high = min(wanted), max(wanted)
    covered: range | set[int] = range(low, high + 1) if high - low < 2 * len(wanted) else wanted
    if isinstance(covered, range):
        rows = session.connection().execute(_NEIGHBOURHOOD_RANGE, {"terminal_id": terminal_id, "low": low, "high": high}).all()
    else:
        rows = session.execute(
            _NEIGHBOURHOOD.where(_record.c.terminal_id == terminal_id, column_in(session, _record.c.seq, sorted(wanted)))
        ).all()
    return {
        seq: _Stored(raw=bytes(raw), digest=bytes(digest), prev_hash=bytes(prev_hash), kind=kind, status=status,
                     card_uid=bytes(card_uid), amount_cents=amount, household_id=household_id,
                     chain_verified=chain_verified, voided=voided, time=time, flags=flags, review=review_state)
        for (seq, raw, digest, prev_hash, kind, status, card_uid, amount, household_id, chain_verified, voided, time, flags,
             review_state) in rows
    }, covered


# Built once: building a statement costs more than running it (SQLAlchemy then finds it compiled in its cache).
_NEIGHBOURHOOD = select(
    _record.c.seq, _record.c.raw, _record.c.digest, _record.c.prev_hash, _record.c.kind, _record.c.status,
    _record.c.card_uid, _record.c.amount_cents, _record.c.household_id, _record.c.chain_verified, _record.c.voided,
    _record.c.time, _record.c.flags, _record.c.review,
)
_NEIGHBOURHOOD_RANGE = _NEIGHBOURHOOD.where(
    _record.c.terminal_id == bindparam("terminal_id"), _record.c.seq.between(bindparam("low"), bindparam("high"))
)
_ACCREDITATION_HISTORY = (
    select(_accreditation.c.status, _accreditation.c.starts_on, _accreditation.c.ends_on, _accreditation.c.since)
    .where(_accreditation.c.vendor_id == bindparam("vendor_id"))
    .order_by(_accreditation.c.since, _accreditation.c.id)
)
_ACKED_SCAN = (
    select(_record.c.seq)
    .where(_record.c.terminal_id == bindparam("terminal_id"), _record.c.seq > bindparam("acked_seq"))
    .order_by(_record.c.seq)
    .limit(_ACKED_SCAN_ROWS)
)
_SET_ACKED_SEQ = update(_terminal).where(_terminal.c.id == bindparam("terminal_id")).values(acked_seq=bindparam("new_acked_seq"))
_CARD_COLUMNS = "uid, household_id, status, blocked_at, id, card_type = 'secure', blocked_version, block_reason"


def _load_cards(session: Session, *, uids: set[bytes]) -> dict[bytes, _CardRow]:
    if not uids:
        return {}
    connection = session.connection()
    parse: Callable[[Any], Any] | None = None  # SQLite's text to datetime
    if connection.dialect.name == "sqlite":
        # Straight to the driver: SQLAlchemy's per-value binary wrapping of a long IN list costs
        # more than the query. blocked_at is rare, so it is parsed only when present.
        parse = _card.c.blocked_at.type._cached_result_processor(connection.dialect, None)
        rows = connection.exec_driver_sql(
            f"SELECT {_CARD_COLUMNS} FROM card WHERE uid IN ({', '.join('?' * len(uids))})", tuple(uids)
        ).all()
    else:
        # One text parameter of hex UIDs: psycopg dumps a list of bytes element by element in
        # Python, escaping each, which costs more than the query.
        rows = connection.exec_driver_sql(
            f"SELECT {_CARD_COLUMNS} FROM card"
            " WHERE uid IN (SELECT decode(h, 'hex') FROM unnest(string_to_array(%s, ',')) AS h)",
            (",".join(uid.hex() for uid in uids),),
        ).all()
    return {
        bytes(uid): _CardRow(household_id, status,
                             None if blocked_at is None else _unix_s_or_none(blocked_at if parse is None else parse(blocked_at)),
                             card_id, bool(secure), blocked_version, block_reason)
        for uid, household_id, status, blocked_at, card_id, secure, blocked_version, block_reason in rows
    }


def _unix_s_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else unix_s(moment)


def _write(session: Session, batch: _Batch, *, vendor_id: int, stored: dict[int, _Stored], status: str) -> None:
    """All the batch's writes. Lock order (see docs/ledger.md): terminal (taken at the start),
    its records, the rejection budgets (the terminal's, then `all`), the SUN counters it claims
    (by card and counter), ledger accounts by ascending id, the cards counter, cards. A suspect
    terminal's accepted records are all held (`status`, or a conflict seen by this batch)."""
    if batch.new_rows:
        received_at = bind_value(session, _record.c.received_at, batch.received_at)
        for row in batch.new_rows:
            row[_RECEIVED_AT] = received_at
        insert_tuples(session, _record, _RECORD_COLUMNS, batch.new_rows)
    if batch.rejections:
        _log_rejections(session, batch)
    if batch.claims:  # before the accounts: the lock order of docs/ledger.md
        for card_id, counter, seq, first in card_auth.claim_counters(session, terminal_id=batch.terminal_id, claims=batch.claims):
            if first == batch.terminal_id:  # this terminal used the counter before: it replays what it read
                batch.suspect = True
                batch.holds.setdefault(seq, f"compteur SUN {counter} déjà utilisé par ce même terminal : terminal suspect")
                continue
            reason = f"compteur SUN {counter} déjà utilisé : carte copiée ou message rejoué"
            batch.holds.setdefault(seq, reason)
            batch.blocks.setdefault(card_id, reason)
    if batch.suspect or status == TerminalStatus.SUSPECT:
        for accepted in batch.postings:
            batch.holds.setdefault(accepted.seq, review.HOLD_SUSPECT)
    for column, seqs in (("voided", batch.voided_seqs), ("chain_verified", batch.verified_seqs)):
        if seqs:
            session.execute(
                update(_record)
                .where(_record.c.terminal_id == batch.terminal_id, column_in(session, _record.c.seq, sorted(seqs)))
                .values({column: True})
            )
    if not batch.postings:
        return
    postings = _postings(batch, vendor_id=vendor_id, stored=stored)
    ids = ledger.account_ids(session, codes=[code for p in postings for code in (p.debit_code, p.credit_code)])
    for posting in postings:
        for code in (posting.debit_code, posting.credit_code):
            if code not in ids:  # accounts are made with their household or vendor; this is a safety net
                ids[code] = ledger.ensure_account(session, code=code, kind=ledger.account_kind(code))
    ledger.post_transfer_rows(session, rows=[(ids[d], ids[c], a, k, r, None) for d, c, a, k, r in postings])
    bump_cards(session, household_ids=batch.households)


def acked_seq_from(session: Session, *, terminal_id: int, acked_seq: int) -> int:
    """The terminal's acked_seq counted on from `acked_seq` over the records stored above it
    (caisse.ingest.terminal_decisions.accept_lost_records, once the records below are accounted for)."""
    return _advance_acked_seq(session, terminal_id=terminal_id, acked_seq=acked_seq, stored={}, covered=range(0))


def _advance_acked_seq(
    session: Session, *, terminal_id: int, acked_seq: int, stored: dict[int, _Stored], covered: range | set[int]
) -> int:
    """Highest seq such that every record 1..seq of the terminal is stored.

    `stored` holds the records this batch read (under the terminal lock) or wrote, and `covered`
    the seqs its read covered. The usual batch, which continues the acknowledged run, is settled
    without a query: walk the run through `stored`; if it stops at a covered seq, that seq is not
    stored. Otherwise (the run leaves what the batch read) scan the table from where it stopped.
    """
    while acked_seq + 1 in stored:
        acked_seq += 1
    if acked_seq + 1 in covered:
        return acked_seq
    while True:  # records stored earlier beyond what this batch read
        seqs = session.connection().execute(_ACKED_SCAN, {"terminal_id": terminal_id, "acked_seq": acked_seq}).scalars().all()
        for seq in seqs:
            if seq != acked_seq + 1:
                return acked_seq
            acked_seq = seq
        if len(seqs) < _ACKED_SCAN_ROWS:
            return acked_seq
