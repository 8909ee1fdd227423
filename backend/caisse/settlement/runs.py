"""Nightly settlement (docs/settlement.md): pay each vendor, in euros, what its terminals took.

A run moves prepared -> approved -> exported, one committed transaction per step:

- prepare: every accepted record before the cut-off that no run has settled yet, not held for
  review (caisse.ingest.review), with a verified chain, of a vendor with a valid IBAN, a net >= 0 and a
  payable account that holds that net, becomes a `settlement_item` (INSERT ... SELECT: set-based,
  no row goes through Python). The item's primary key is the record, so a record is settled at
  most once, whatever crashes and reruns do. What is held back gets a `settlement_line` with its
  reason in French; those records stay unsettled, so the next run picks them up once resolved,
  like late offline uploads. A run never pays a vendor more than its vendor_payable account
  holds: held money is in vendor_held, and `payable_differences` compares each account with the
  records behind it (docs/settlement.md, "What a run pays").
  Each paid line freezes its payee (name, IBAN, BIC) and its payment id, and the run its SEPA
  message ids: what the approver reads is what the file pays, whatever happens to the vendor after.
- approve: by a second person when `settlement_requires_approval` (an active console account other
  than the one who prepared it), automatically otherwise.
- export: writes the SEPA pain.001 file, statements per vendor (caisse.settlement.statements) and a summary into a fresh
  folder, moves it into place, then posts vendor_payable -> vendor_paid per vendor (reference
  `settlement:{run}:{vendor}`) and marks the run exported, in one transaction. A crash before the
  commit leaves the run approved: rerunning rewrites the same files, with the same ids, from the
  same items and payees.

Each step writes its audit entry (caisse.audit) in its own transaction.

Nothing here commits except `settle`, the orchestrator, which owns one transaction per step.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, text, tuple_
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col

from caisse import audit
from caisse.config import Settings, sepa_text
from caisse.db import bind_value, get_or_not_found, table_of
from caisse.errors import Conflict, InvalidInput
from caisse.ledger import postings as ledger
from caisse.models import (
    BankReturn,
    Counter,
    LineStatus,
    ReviewStatus,
    SettlementLine,
    SettlementRun,
    SettlementStatus,
    TransactionRecord,
    Vendor,
    utcnow,
)
from caisse.money import euros
from caisse.settlement.sepa import Message, Payout, write_sepa
from caisse.settlement.statements import StatementVendor, is_large, worker_pool, write_statements, write_summary
from caisse.staff import accounts
from caisse_common import protocol

# Reasons shown to the treasurer and the vendor, in French.
HELD_UNVERIFIED = "chaîne non vérifiée (un enregistrement antérieur manque encore) : reporté"
HELD_NO_IBAN = "IBAN manquant : paiement suspendu jusqu'à son enregistrement"
HELD_BAD_IBAN = "IBAN invalide ({error}) : paiement suspendu jusqu'à sa correction"
HELD_NON_SEPA_IBAN = "IBAN hors de la zone SEPA ({country}) : paiement suspendu jusqu'à sa correction"
HELD_BAD_NAME = ("nom du commerçant intransmissible à la banque (aucun caractère du jeu SEPA) :"
                 " paiement suspendu jusqu'à sa correction")
HELD_NEGATIVE = "solde négatif après annulations : reporté au prochain règlement"
HELD_RETURNED = "virement retourné par la banque ({reason}) : en attente d'un nouvel IBAN (deux personnes)"
HELD_REVIEW = "paiements retenus pour vérification (carte suspecte, terminal suspect…) : en attente d'une décision"
HELD_SHORT = ("le compte du commerçant ({available} €) ne couvre pas le net à payer ({net} €) :"
              " annulation en attente ou écart avec les enregistrements, reporté")

# The review state of a void's payment (caisse.ingest.review).
_PAYMENT_REVIEW = "(SELECT p.review FROM transaction_record p WHERE p.terminal_id = r.terminal_id AND p.seq = r.ref_seq)"
# A record's review state for settlement, '' when none. A void without its own shares its
# payment's, so it is settled with it; a payment whose void is held on its own (its ids in
# :waiting) waits for that void's decision.
_REVIEW = f"CASE WHEN r.id IN :waiting THEN 'held' ELSE COALESCE(r.review, CASE WHEN r.kind = 2 THEN {_PAYMENT_REVIEW} END, '') END"
# What an accepted, unsettled record adds to its vendor's payable account (docs/ledger.md, "Holds
# and review"): a payment its amount unless held or rejected; a void minus its amount, unless it
# is rejected or follows a held payment (then it was posted from vendor_held).
_PAYABLE_SHARE = (f"CASE WHEN r.kind = 1 THEN CASE WHEN COALESCE(r.review, '') IN ('', 'released') THEN r.amount_cents ELSE 0 END"
                  f" WHEN COALESCE(r.review, {_PAYMENT_REVIEW}, '') = 'rejected' OR {_PAYMENT_REVIEW} = 'held' THEN 0"
                  " ELSE -r.amount_cents END")
# What an accepted record undecided held adds to its vendor's held account: a payment its amount
# (nothing once a void gave it back), a void held on its own its amount.
_HELD_SHARE = ("CASE WHEN r.review <> 'held' OR r.review IS NULL THEN 0 WHEN r.kind = 1 THEN CASE WHEN r.voided THEN 0"
               f" ELSE r.amount_cents END WHEN {_PAYMENT_REVIEW} = 'held' THEN 0 ELSE r.amount_cents END")
# The records a run looks at: accepted, not rejected, not settled by any run, and at or above the
# watermark (`_Scan`). amount is signed: a payment (kind 1) adds, a void (kind 2) takes back.
_UNDECIDED = f"r.status = 'accepted' AND {_REVIEW} <> 'rejected'"
# Between the watermark and the highest record ever settled, "not settled yet" is tested (an anti
# join bounded to that range, a few records at night); above it no record can have been settled.
_BELOW_SETTLED = ("r.id BETWEEN :scan_from AND :settled_max AND NOT EXISTS (SELECT 1 FROM settlement_item i"
                  " WHERE i.record_id = r.id AND i.record_id BETWEEN :scan_from AND :settled_max)")
_ABOVE_SETTLED = "r.id > :above"
_SIGNED = "CASE WHEN r.kind = 1 THEN r.amount_cents ELSE -r.amount_cents END"
# A record is due when its time is before the cut-off; one whose terminal did not trust its own
# clock (flag 0x02, a time that may lie years ahead) is due once it was received before the cut-off,
# the judged time of docs/protocol.md, so a terminal's wrong clock never delays its vendor's pay.
_DUE = (f"(r.time < :cutoff OR ((r.flags & {protocol.FLAG_UNTRUSTED_TIME}) <> 0"
        " AND r.received_at < :cutoff_received))")


def cutoff_time(run_date: date, *, timezone: str) -> int:
    """Unix seconds of midnight at the end of `run_date`, local time: the run settles the day."""
    end = datetime.combine(run_date + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(timezone))
    return int(end.timestamp())


def iban_problem(iban: str | None) -> str | None:
    """None when the IBAN is valid and in the SEPA zone (checked with schwifty), else the hold
    reason in French."""
    if not iban:
        return HELD_NO_IBAN
    from schwifty import IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        checked = IBAN(iban)
    except SchwiftyException as error:
        return HELD_BAD_IBAN.format(error=str(error).rstrip("."))
    if not checked.in_sepa_zone:
        return HELD_NON_SEPA_IBAN.format(country=checked.country_code)
    return None


def payee_problem(name: str, iban: str | None) -> str | None:
    """Why a vendor cannot be paid as it stands (IBAN, or a name with nothing the bank can read)."""
    return iban_problem(iban) or (HELD_BAD_NAME if not sepa_text(name) else None)


def bic_of(iban: str) -> str | None:
    """The BIC schwifty's bank registry gives for a valid IBAN, None when it knows none."""
    from schwifty import IBAN

    bic = IBAN(iban).bic
    return None if bic is None else str(bic)


# Step 1: prepare ------------------------------------------------------------------------------

def prepare_run(session: Session, *, run_date: date, settings: Settings, by: str, os_user: str | None = None) -> SettlementRun:
    """The run of `run_date`, prepared now if there is none yet (idempotent)."""
    existing = session.execute(select(SettlementRun).where(col(SettlementRun.run_date) == run_date)).scalar_one_or_none()
    if existing is not None:
        return existing
    by = accounts.check_actor(session, by=by)
    scan = _Scan.start(session)
    cutoff = cutoff_time(run_date, timezone=settings.settlement_timezone)
    run = SettlementRun(run_date=run_date, cutoff_time=cutoff, status=SettlementStatus.PREPARED, prepared_by=by)
    session.add(run)
    session.flush()
    assert run.id is not None
    # Stored now, committed with the run, so every file ever written for it carries the same ids.
    run.message_id = f"CAISSE-R{run.id}-{secrets.token_hex(5).upper()}"
    run.payment_info_id = f"{run.message_id}-P"
    candidates = _Candidates()
    for part in scan.parts():
        candidates.add(session.execute(
            # `+r.terminal_id`: the records are read in table order and the terminals hashed, not walked
            # through the (terminal_id, seq) index, a random page per record.
            _expanding(f"SELECT t.id, t.vendor_id, r.chain_verified, {_REVIEW} = 'held', {_DUE},"
                       f" SUM({_SIGNED}), COUNT(*), MIN(r.id) FROM transaction_record r"
                       f" JOIN terminal t ON t.id = +r.terminal_id WHERE {_UNDECIDED} AND {part}"
                       f" GROUP BY t.id, t.vendor_id, r.chain_verified, {_REVIEW} = 'held', {_DUE}"),
            {**_cutoff_params(session, cutoff), **scan.params},
        ).all())
    held = [SettlementLine(run_id=run.id, vendor_id=vendor_id, status=LineStatus.HELD, reason=reason, amount_cents=amount,
                           record_count=count) for (vendor_id, reason), (amount, count) in sorted(candidates.held.items())]
    payees = {vendor_id: (name, iban) for vendor_id, name, iban in session.execute(
        select(col(Vendor.id), col(Vendor.name), col(Vendor.iban)).where(col(Vendor.id).in_(list(candidates.net))))} if candidates.net else {}
    available = _available_cents(session, vendor_ids=list(candidates.net))
    terminals: list[int] = []
    for vendor_id, (amount, count) in sorted(candidates.net.items()):
        reason = payee_problem(*payees[vendor_id]) or (HELD_NEGATIVE if amount < 0 else None)
        if reason is None and amount > available[vendor_id]:
            reason = HELD_SHORT.format(available=euros(available[vendor_id]), net=euros(amount))
        if reason is None:
            terminals.extend(candidates.terminals[vendor_id])
        else:
            held.append(SettlementLine(run_id=run.id, vendor_id=vendor_id, status=LineStatus.HELD, reason=reason,
                                       amount_cents=amount, record_count=count))
            candidates.lowest_left = min(candidates.lowest_left, candidates.first_ids[vendor_id])
    if terminals:
        _insert_items(session, run_id=run.id, cutoff=cutoff, terminals=sorted(terminals), scan=scan)
        _insert_paid_lines(session, run_id=run.id)
    held.extend(_pay_returns_again(session, run_id=run.id, payees=payees))
    _freeze_payees(session, run_id=run.id, payees=payees)
    session.add_all(held)
    scan.advance(session, lowest_left=candidates.lowest_left)
    audit.record(session, actor=by, action="settlement.prepare", subject=f"settlement:{run.id}",
                 detail=_detail(run_date=str(run_date), os_user=os_user))
    session.flush()
    return run


class _Candidates:
    """The groups of the candidate scan, sorted out: what may be paid per vendor (and from which
    terminals), what is held back with its reason, and the lowest record id left unsettled."""

    def __init__(self) -> None:
        self.net: dict[int, tuple[int, int]] = {}
        self.terminals: dict[int, list[int]] = {}
        self.first_ids: dict[int, int] = {}
        self.held: dict[tuple[int, str], tuple[int, int]] = {}
        self.lowest_left = _NO_RECORD

    def add(self, groups: Sequence[Any]) -> None:
        for terminal_id, vendor_id, verified, under_review, due, amount, count, first_id in groups:
            reason = HELD_REVIEW if under_review else HELD_UNVERIFIED if not verified else None
            if not due or reason is not None:  # after the cut-off, or held back: left for a later run
                self.lowest_left = min(self.lowest_left, int(first_id))
            if not due:
                continue
            if reason is not None:
                total, records = self.held.get((vendor_id, reason), (0, 0))
                self.held[vendor_id, reason] = (total + int(amount), records + int(count))
                continue
            total, records = self.net.get(vendor_id, (0, 0))
            self.net[vendor_id] = (total + int(amount), records + int(count))
            self.terminals.setdefault(vendor_id, []).append(int(terminal_id))
            self.first_ids[vendor_id] = min(self.first_ids.get(vendor_id, _NO_RECORD), int(first_id))


_NO_RECORD = 2**62
_WATERMARK = "settlement_scan_from"


@dataclass(slots=True)
class _Scan:
    """The settlement watermark (docs/settlement.md, "Watermark"): every accepted record below
    `scan_from` is settled or rejected for good, so a run reads only the records at or above it.

    Record ids grow in insertion order, and a record is inserted accepted or not, once: a late
    upload gets an id above every earlier one, hence above the watermark. On PostgreSQL ids are
    taken before their transaction commits, so a smaller id may still be in flight while a larger
    one is visible: `start` takes a SHARE lock on the records, which waits for the inserts in
    flight and holds new ones back until the run commits. SQLite has one writer at a time."""

    scan_from: int
    settled_max: int
    waiting: list[int]  # payments whose void is held on its own: they wait for its decision

    @classmethod
    def start(cls, session: Session) -> _Scan:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL lock_timeout = '60s'"))
            session.execute(text("LOCK TABLE transaction_record IN SHARE MODE"))
            # Planned as a nested loop over settlement_item or terminal (small by the planner's
            # statistics), the scans of a large run turn quadratic or walk an index record by record;
            # hash joins are linear. JIT compiling took 0.2-0.5 s per statement and saved less.
            session.execute(text("SET LOCAL enable_nestloop = off"))
            session.execute(text("SET LOCAL jit = off"))
        counter = session.get(Counter, _WATERMARK)
        scan_from = counter.value if counter else 0
        settled_max = session.execute(text("SELECT COALESCE(MAX(record_id), 0) FROM settlement_item")).scalar_one()
        return cls(scan_from, int(settled_max), _waiting_payments(session, scan_from=scan_from))

    @property
    def params(self) -> dict[str, Any]:
        return {"scan_from": self.scan_from, "settled_max": self.settled_max,
                "above": max(self.settled_max, self.scan_from - 1), "waiting": self.waiting}

    def parts(self) -> list[str]:
        return [_BELOW_SETTLED, _ABOVE_SETTLED] if self.settled_max >= self.scan_from else [_ABOVE_SETTLED]

    def advance(self, session: Session, *, lowest_left: int) -> None:
        """Move the watermark up to the lowest record this run leaves unsettled, or past the last
        record when it leaves none."""
        after_last = int(session.execute(text("SELECT COALESCE(MAX(id), 0) + 1 FROM transaction_record")).scalar_one())
        new = min(lowest_left, after_last)
        assert new >= self.scan_from, f"the watermark only rises ({self.scan_from} -> {new})"
        counter = session.get(Counter, _WATERMARK) or Counter(name=_WATERMARK, value=0)
        counter.value = new
        session.add(counter)


def _waiting_payments(session: Session, *, scan_from: int) -> list[int]:
    """Ids of the payments whose void is held on its own (their own review is not `held`). Held
    records are never settled, so they are all at or above the watermark. Two single-table reads
    (a few rows each), not a join: the prepare step plans joins as hash joins, which would scan
    every record for the payments."""
    voids = session.execute(text("SELECT terminal_id, ref_seq FROM transaction_record"
                                 " WHERE id >= :scan_from AND kind = 2 AND review = 'held'"), {"scan_from": scan_from}).all()
    if not voids:
        return []
    record = table_of(TransactionRecord)
    payments = session.execute(select(record.c.id, record.c.review).where(
        tuple_(record.c.terminal_id, record.c.seq).in_([tuple(v) for v in voids]))).all()
    return sorted(payment_id for payment_id, review in payments if review != ReviewStatus.HELD)


def _insert_items(session: Session, *, run_id: int, cutoff: int, terminals: list[int], scan: _Scan) -> None:
    """INSERT ... SELECT scanning the records in table order, once per part of the scan, from the
    terminals the candidate scan found payable. CROSS JOIN and `+r.terminal_id` make SQLite read the
    records in table order and look each terminal up: otherwise it walked the (terminal_id, seq)
    index, a random page per record (1M records: 18 s instead of 2). PostgreSQL hashes the terminals."""
    for part in scan.parts():
        session.execute(
            _expanding("INSERT INTO settlement_item (record_id, run_id, vendor_id, amount_cents)"
                       f" SELECT r.id, :run_id, t.vendor_id, {_SIGNED} FROM transaction_record r CROSS JOIN terminal t"
                       f" WHERE t.id = +r.terminal_id AND t.id IN :terminals AND r.status = 'accepted' AND {_DUE}"
                       f" AND r.chain_verified AND {_REVIEW} IN ('', 'released') AND {part}"),
            {"run_id": run_id, **_cutoff_params(session, cutoff), "terminals": terminals, **scan.params},
        )


def _cutoff_params(session: Session, cutoff: int) -> dict[str, Any]:
    """The cut-off as the record's time (unix seconds) and as its reception time, for _DUE."""
    received = datetime.fromtimestamp(cutoff, UTC)
    return {"cutoff": cutoff, "cutoff_received": bind_value(session, table_of(TransactionRecord).c.received_at, received)}


def _expanding(sql: str) -> Any:
    """The statement with its list parameters (`:waiting`, `:terminals`, `:vendors`, `:runs`) expanded."""
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in ("waiting", "terminals", "vendors", "runs") if f":{name}" in sql))


def _available_cents(session: Session, *, vendor_ids: list[int]) -> dict[int, int]:
    """What each vendor's payable account holds beyond the items of runs not exported yet (their
    payouts are still to be posted) and the bank returns not paid again: the most a new run may
    pay it for records."""
    if not vendor_ids:
        return {}
    codes = {ledger.vendor_payable_code(v): v for v in vendor_ids}
    balances = ledger.balances_by_code(session, codes=codes)
    # The runs first, then their items by the run index: joined, the prepare step's hash join
    # would read every item ever settled.
    runs = session.execute(select(col(SettlementRun.id)).where(col(SettlementRun.status) != SettlementStatus.EXPORTED)).scalars().all()
    pending = dict(session.execute(
        _expanding("SELECT vendor_id, SUM(amount_cents) FROM settlement_item WHERE run_id IN :runs"
                   " AND vendor_id IN :vendors GROUP BY vendor_id"),
        {"runs": list(runs), "vendors": vendor_ids}).all()) if runs else {}
    # Transfers the bank gave back sit in the payable too, but they are paid on their own
    # (_pay_returns_again): they never cover a record.
    returned = dict(session.execute(
        _expanding("SELECT b.vendor_id, SUM(b.amount_cents) FROM bank_return b"
                   " LEFT JOIN settlement_run s ON s.id = b.repaid_run_id"
                   " WHERE b.vendor_id IN :vendors AND (s.id IS NULL OR s.status <> 'exported') GROUP BY b.vendor_id"),
        {"vendors": vendor_ids}).all())
    return {v: balances.get(code, 0) - int(pending.get(v, 0)) - int(returned.get(v, 0)) for code, v in codes.items()}


def _insert_paid_lines(session: Session, *, run_id: int) -> None:
    """What is paid comes from the items themselves, so the lines and the items always agree."""
    session.execute(
        text("INSERT INTO settlement_line (run_id, vendor_id, status, amount_cents, record_count)"
             " SELECT run_id, vendor_id, :paid, SUM(amount_cents), COUNT(*) FROM settlement_item"
             " WHERE run_id = :run_id GROUP BY run_id, vendor_id"),
        {"run_id": run_id, "paid": LineStatus.PAID},
    )


def _pay_returns_again(session: Session, *, run_id: int, payees: dict[int, tuple[str, str | None]]) -> list[SettlementLine]:
    """Transfers the bank gave back (caisse.settlement.bank_returns) and no run has paid again: added to the vendor's
    paid line of this run (a new line if it has none) when the vendor can be paid and, for a
    return that blamed the account, its IBAN is no longer the one that came back. Otherwise a held
    line says what it waits for. Adds the vendors it pays to `payees`."""
    waiting = session.execute(
        select(BankReturn).where(col(BankReturn.repaid_run_id).is_(None)).order_by(col(BankReturn.id))
    ).scalars().all()
    if not waiting:
        return []
    vendors = {vendor_id: (name, iban) for vendor_id, name, iban in session.execute(
        select(col(Vendor.id), col(Vendor.name), col(Vendor.iban)).where(col(Vendor.id).in_({r.vendor_id for r in waiting})))}
    lines = {line.vendor_id: line for line in session.execute(
        select(SettlementLine).where(col(SettlementLine.run_id) == run_id, col(SettlementLine.status) == LineStatus.PAID)).scalars()}
    held: dict[tuple[int, str], tuple[int, int]] = {}
    for returned in waiting:
        name, iban = vendors[returned.vendor_id]
        problem = payee_problem(name, iban) or (
            HELD_RETURNED.format(reason=returned.reason) if returned.needs_new_iban and iban == returned.iban else None)
        if problem is not None:
            amount, count = held.get((returned.vendor_id, problem), (0, 0))
            held[returned.vendor_id, problem] = (amount + returned.amount_cents, count)
            continue
        line = lines.get(returned.vendor_id)
        if line is None:
            line = lines[returned.vendor_id] = SettlementLine(run_id=run_id, vendor_id=returned.vendor_id, status=LineStatus.PAID,
                                                              amount_cents=0, record_count=0)
        line.amount_cents += returned.amount_cents
        session.add(line)
        returned.repaid_run_id = run_id
        session.add(returned)
        payees[returned.vendor_id] = (name, iban)
    session.flush()
    return [SettlementLine(run_id=run_id, vendor_id=vendor_id, status=LineStatus.HELD, reason=reason, amount_cents=amount,
                           record_count=count) for (vendor_id, reason), (amount, count) in sorted(held.items())]


def _freeze_payees(session: Session, *, run_id: int, payees: dict[int, tuple[str, str | None]]) -> None:
    """Each paid line gets the name and IBAN checked above (read once, in this transaction), the
    IBAN's BIC and its payment id: from now on the run pays these, not the vendor's row."""
    paid = session.execute(select(SettlementLine).where(col(SettlementLine.run_id) == run_id,
                                                        col(SettlementLine.status) == LineStatus.PAID)).scalars()
    for line in paid:
        name, iban = payees[line.vendor_id]
        assert iban is not None
        line.payee_name, line.payee_iban, line.payee_bic = name, iban, bic_of(iban)
        line.payment_id = f"CAISSE-{run_id}-{line.vendor_id}"
        session.add(line)


def _detail(**fields: object) -> dict[str, object]:
    return {key: value for key, value in fields.items() if value is not None}


# Step 2: approve ------------------------------------------------------------------------------

def approve_run(session: Session, *, run_id: int, by: str, settings: Settings, os_user: str | None = None) -> SettlementRun:
    """Approve a prepared run. When a second person is required, `by` is an active console account
    other than the one who prepared it (the timer's runs need one person); from the command line
    the audit entry also names the operating-system user."""
    run = get_run(session, run_id=run_id)
    if run.status != SettlementStatus.PREPARED:
        return run  # approved or exported already: approving again changes nothing
    if settings.settlement_requires_approval:
        by = accounts.active_user(session, email=by).email
        if accounts.same_person(by, run.prepared_by):
            raise Conflict("second_person_required",
                           f"run {run_id} was prepared by {run.prepared_by!r}: another person (the treasurer) approves it")
    else:
        by = accounts.check_actor(session, by=by)
    run.status, run.approved_by, run.approved_at = SettlementStatus.APPROVED, by, utcnow()
    session.add(run)
    audit.record(session, actor=by, action="settlement.approve", subject=f"settlement:{run_id}",
                 detail=_detail(run_date=str(run.run_date), prepared_by=run.prepared_by, os_user=os_user))
    session.flush()
    return run


# Step 3: export -------------------------------------------------------------------------------

def export_run(session: Session, *, run_id: int, settings: Settings, by: str = accounts.AUTOMATIC,
               os_user: str | None = None) -> SettlementRun:
    """Write the run's files, then post the payouts and mark it exported (the caller commits)."""
    run = get_run(session, run_id=run_id)
    if run.status == SettlementStatus.EXPORTED:
        return run
    if run.status != SettlementStatus.APPROVED:
        raise Conflict("not_approved", f"run {run_id} is {run.status}: it must be approved before export")
    payouts = run_payouts(session, run_id=run_id)
    folder = Path(settings.settlement_dir) / f"{run.run_date.isoformat()}-reglement-{run_id}"
    staging = folder.with_name(folder.name + ".en-cours")
    shutil.rmtree(staging, ignore_errors=True)  # left by a crash: rebuilt from the same items
    staging.mkdir(parents=True)
    today = datetime.now(ZoneInfo(settings.settlement_timezone)).date()
    # A large run's files are written by worker processes: the SEPA file beside the statements.
    with worker_pool(parallel=is_large(session, run_id=run_id)) as jobs:
        sepa_file = jobs.submit(write_sepa, staging / "virements-sepa.xml", Message.of(run), payouts, settings, today)
        write_statements(session, staging, run=run, timezone=settings.settlement_timezone,
                         vendors=[StatementVendor(p.vendor_id, p.name, p.iban) for p in payouts], jobs=jobs)
        run.execution_date = sepa_file.result()
    write_summary(session, staging / "resume.csv", run=run, timezone=settings.settlement_timezone,
                  differences=[d.french() for d in payable_differences(session)])
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    _post_payouts(session, run_id=run_id, payouts=payouts)
    run.status, run.exported_at, run.output_dir = SettlementStatus.EXPORTED, utcnow(), str(folder)
    session.add(run)
    audit.record(session, actor=by, action="settlement.export", subject=f"settlement:{run_id}",
                 detail=_detail(output_dir=run.output_dir, os_user=os_user))
    session.flush()
    return run


def run_payouts(session: Session, *, run_id: int) -> list[Payout]:
    """The transfers of a run, each to the payee frozen when it was prepared (what the approver
    reads, what the file pays)."""
    lines = session.execute(
        select(SettlementLine)
        # A vendor whose payments were all voided nets 0: settled, but there is nothing to transfer.
        .where(col(SettlementLine.run_id) == run_id, col(SettlementLine.status) == LineStatus.PAID, col(SettlementLine.amount_cents) > 0)
        .order_by(col(SettlementLine.vendor_id))
    ).scalars().all()
    return [Payout(line.vendor_id, line.payee_name or "", line.payee_iban or "", line.payee_bic, line.amount_cents,
                   line.record_count, line.payment_id or "") for line in lines]


def _post_payouts(session: Session, *, run_id: int, payouts: list[Payout]) -> None:
    paid = ledger.ensure_account(session, code=ledger.Account.VENDOR_PAID, kind=ledger.AccountKind.VENDOR_PAID)
    payables = ledger.account_ids(session, codes=[ledger.vendor_payable_code(p.vendor_id) for p in payouts])
    ledger.post_transfers(session, transfers=[
        ledger.Transfer(payables[ledger.vendor_payable_code(p.vendor_id)], paid, p.amount_cents,
                        ledger.TransferKind.SETTLEMENT, f"settlement:{run_id}:{p.vendor_id}", f"règlement {run_id}")
        for p in payouts
    ])


# Accounts against records ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AccountDifference:
    """A vendor account whose balance is not what the records behind it add up to."""

    vendor_id: int
    code: str  # vendor_payable:{v} or vendor_held:{v}
    balance_cents: int
    records_cents: int

    def french(self) -> str:
        what = "à payer" if self.code.startswith("vendor_payable:") else "retenu pour vérification"
        return (f"commerçant {self.vendor_id} : compte {what} {euros(self.balance_cents)} €, enregistrements"
                f" {euros(self.records_cents)} € (écart {euros(self.balance_cents - self.records_cents)} €)")


def payable_differences(session: Session) -> list[AccountDifference]:
    """Every vendor account that disagrees with its records (docs/ledger.md, invariant 7):
    vendor_payable against the accepted records not settled yet plus the items of runs not
    exported yet plus the bank returns no exported run paid again, vendor_held against the records held undecided. Read in one statement, so on
    PostgreSQL one snapshot: uploads committing meanwhile cannot make a difference appear.

    The records read are those at or above the settlement watermark: below it every accepted
    record is settled or rejected, and adds nothing to either account."""
    rows = session.execute(text(
        "SELECT 'account', a.code, a.credits_posted_cents - a.debits_posted_cents, 0 FROM ledger_account a"
        " WHERE a.kind IN ('vendor_payable', 'vendor_held')"
        " UNION ALL"
        f" SELECT 'records', CAST(t.vendor_id AS VARCHAR(20)), SUM({_PAYABLE_SHARE}), SUM({_HELD_SHARE})"
        " FROM transaction_record r JOIN terminal t ON t.id = r.terminal_id WHERE r.status = 'accepted'"
        f" AND r.id >= (SELECT COALESCE(MAX(c.value), 0) FROM counter c WHERE c.name = '{_WATERMARK}')"
        " AND NOT EXISTS (SELECT 1 FROM settlement_item i WHERE i.record_id = r.id) GROUP BY t.vendor_id"
        " UNION ALL"
        " SELECT 'records', CAST(i.vendor_id AS VARCHAR(20)), SUM(i.amount_cents), 0 FROM settlement_item i"
        " JOIN settlement_run s ON s.id = i.run_id WHERE s.status <> 'exported' GROUP BY i.vendor_id"
        " UNION ALL"  # transfers the bank gave back wait in the payable until an exported run pays them again
        " SELECT 'records', CAST(b.vendor_id AS VARCHAR(20)), SUM(b.amount_cents), 0 FROM bank_return b"
        " LEFT JOIN settlement_run s ON s.id = b.repaid_run_id WHERE s.id IS NULL OR s.status <> 'exported'"
        " GROUP BY b.vendor_id"
    )).all()
    accounts: dict[str, int] = {}
    expected: dict[str, int] = {}
    for source, key, first, second in rows:
        if source == "account":
            accounts[key] = int(first)
            continue
        vendor_id = int(key)
        for code, cents in ((ledger.vendor_payable_code(vendor_id), first), (ledger.vendor_held_code(vendor_id), second)):
            expected[code] = expected.get(code, 0) + int(cents or 0)
    differences = []
    for code in sorted(accounts.keys() | expected.keys(), key=lambda c: (int(c.rsplit(":", 1)[1]), c)):
        balance, records = accounts.get(code, 0), expected.get(code, 0)
        if balance != records:
            differences.append(AccountDifference(int(code.rsplit(":", 1)[1]), code, balance, records))
    return differences


# Orchestration --------------------------------------------------------------------------------

def get_run(session: Session, *, run_id: int) -> SettlementRun:
    return get_or_not_found(session, SettlementRun, run_id, code="settlement_run_not_found")


@dataclass(frozen=True, slots=True)
class SettleResult:
    run_id: int
    status: str
    paid_cents: int
    paid_records: int
    held: list[tuple[int, int, str]]  # (vendor, amount_cents, reason)
    output_dir: str | None
    differences: tuple[AccountDifference, ...] = ()  # read by `settle` after the run


def settle(
    sessions: sessionmaker[Session] | Callable[[], Session], *, run_date: date, settings: Settings, by: str = accounts.AUTOMATIC,
    os_user: str | None = None,
) -> SettleResult:
    """Prepare, approve (unless a second person must), export: each step its own transaction.

    Interrupted anywhere, a rerun with the same date resumes from the last committed step.
    """
    if run_date >= datetime.now(ZoneInfo(settings.settlement_timezone)).date():
        raise InvalidInput("day_not_over", f"{run_date} is not over yet: settle a past day")
    with sessions() as session:
        run_id = prepare_run(session, run_date=run_date, settings=settings, by=by, os_user=os_user).id
        session.commit()
    assert run_id is not None
    if not settings.settlement_requires_approval:
        with sessions() as session:
            approve_run(session, run_id=run_id, by=accounts.AUTOMATIC, settings=settings)
            session.commit()
    with sessions() as session:
        if get_run(session, run_id=run_id).status == SettlementStatus.APPROVED:
            export_run(session, run_id=run_id, settings=settings, by=by, os_user=os_user)
            session.commit()
        return replace(describe(session, run_id=run_id), differences=tuple(payable_differences(session)))


def describe(session: Session, *, run_id: int) -> SettleResult:
    run = get_run(session, run_id=run_id)
    lines = session.execute(select(SettlementLine).where(col(SettlementLine.run_id) == run_id).order_by(col(SettlementLine.id))).scalars().all()
    paid = [line for line in lines if line.status == LineStatus.PAID]
    return SettleResult(
        run_id=run_id, status=run.status, paid_cents=sum(line.amount_cents for line in paid),
        paid_records=sum(line.record_count for line in paid),
        held=[(line.vendor_id, line.amount_cents, line.reason or "") for line in lines if line.status == LineStatus.HELD],
        output_dir=run.output_dir,
    )


def settled_total_cents(session: Session) -> int:
    return int(session.execute(text("SELECT COALESCE(SUM(amount_cents), 0) FROM settlement_item")).scalar_one())



