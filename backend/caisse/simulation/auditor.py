"""The auditor: holds what the run must end with, independently of the backend, and checks it.

In TigerBeetle's VOPR spirit it is told every tap a terminal approved (the beep), every block,
every fault, and predicts each record's verdict from those facts alone. At the end it reads the
database and checks what only it can know (the expected state of the world: docs/simulation.md),
then every ledger invariant through caisse.reports.invariants, the module `caisse verify` runs on a live
database; any break makes the run fail.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, select
from sqlmodel import Session, col

from caisse.config import Settings
from caisse.fund.allowances import allowance_reference, expiry_reference
from caisse.ledger import postings as ledger
from caisse.models import (
    LedgerAccount,
    LedgerTransfer,
    RecordStatus,
    RejectedUpload,
    ReviewStatus,
    SettlementItem,
    Terminal,
    TerminalStatus,
    TransactionRecord,
)
from caisse.months import Month
from caisse.reports import invariants
from caisse.simulation.faults import ADVERSARIES, PASSING, Fault, FaultKind, Outcome
from caisse_common import protocol
from caisse_common.protocol import Kind, Record

ACCEPTED = str(RecordStatus.ACCEPTED)
HELD = str(ReviewStatus.HELD)  # accepted and held for review (caisse.ingest.review)
NOT_RECEIVED = "not_received"  # approved, never heard by the backend (its terminal was revoked first)
ONLY_ACCEPTED = frozenset({ACCEPTED})


@dataclass(frozen=True, slots=True)
class Approved:
    """A record a terminal committed and beeped for: it must reach the backend exactly once."""

    terminal_id: int
    vendor_id: int
    body: bytes
    household_id: int
    secure_card: bool
    record: Record = field(init=False)  # the body read by the backend's own parser

    def __post_init__(self) -> None:
        object.__setattr__(self, "record", protocol.decode(self.body + bytes(protocol.SIGNATURE_SIZE)))

    @property
    def seq(self) -> int:
        return self.record.seq

    @property
    def kind(self) -> Kind:
        return self.record.kind

    @property
    def time_s(self) -> int:
        return self.record.time

    @property
    def amount_cents(self) -> int:
        return self.record.amount_cents

    @property
    def ref_seq(self) -> int:
        return self.record.ref_seq

    @property
    def card_uid(self) -> bytes:
        return self.record.card_uid

    @property
    def card_auth(self) -> bytes:
        return self.record.card_auth


def verdict(row) -> str:
    """`accepted`, `held` (accepted, waiting for a person's review) or the rejection reason."""
    if row.status == RecordStatus.ACCEPTED:
        return HELD if row.review == ReviewStatus.HELD else ACCEPTED
    return row.reason or row.status


def money_shares(record: Approved, row, payment) -> list[tuple[str, int]]:
    """What an accepted record moved, by account code (docs/ledger.md, "Holds and review"): `row`
    is its stored row (review state), `payment` a void's payment's row. A held payment's money is
    in vendor_held; a void of a held payment gives it back from there; a void held on its own
    moved it from vendor_payable to vendor_held, refunding nobody yet; a rejected record's money
    went back where it came from."""
    member, payable = ledger.member_code(record.household_id), ledger.vendor_payable_code(record.vendor_id)
    held = ledger.vendor_held_code(record.vendor_id)
    amount = record.amount_cents
    if record.kind == Kind.PAYMENT:
        if row.review == ReviewStatus.REJECTED:
            return []
        return [(member, -amount), (held if row.review == ReviewStatus.HELD else payable, amount)]
    if (row.review or payment.review) == ReviewStatus.REJECTED:
        return []
    if payment.review == ReviewStatus.HELD:
        return [(held, -amount), (member, amount)]
    if row.review == ReviewStatus.HELD:
        return [(payable, -amount), (held, amount)]
    return [(member, amount), (payable, -amount)]


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # English, the key of the JSON report
    passed: bool
    detail: str = ""
    title: str = ""  # French, for the summary; CHECKS_FR in report.py when empty


@dataclass
class Auditor:
    basic_card_max_cents: int  # the backend's ceiling for a payment with a basic (UID-only) card
    approved: dict[tuple[int, int], Approved] = field(default_factory=dict)
    declined: Counter[str] = field(default_factory=Counter)
    blocked_at: dict[bytes, int] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    allowance_problems: list[str] = field(default_factory=list)
    duplicates: int = 0  # answered `duplicate` to the terminals (re-sends after lost answers, doubles)
    reused_seqs: list[tuple[int, int]] = field(default_factory=list)
    # What an adversary makes uncertain, judged by its own check (caisse.simulation.adversaries):
    # the verdicts allowed for a record; and per terminal, verdicts allowed besides the usual ones
    # for its records after a seq ((after_seq, verdicts), ...).
    expected: dict[tuple[int, int], frozenset[str]] = field(default_factory=dict)
    lenient: dict[int, list[tuple[int, frozenset[str]]]] = field(default_factory=dict)
    credits: Counter[int] = field(default_factory=Counter)  # manual credits (net of reversals) per household
    adversaries: Any = None  # judges the adversaries' faults
    forged: set[tuple[int, int]] = field(default_factory=set)  # committed by a compromised terminal, no tap
    # Cards a compromised terminal reported on (uid -> since): whether the backend locks them out is
    # the forgery's own check; later taps with them may be held or refused meanwhile.
    reported_cards: dict[bytes, int] = field(default_factory=dict)

    # ---- what happened ---------------------------------------------------------------------

    def on_approved(self, record: Approved, fault: Fault | None = None) -> None:
        key = (record.terminal_id, record.seq)
        if key in self.approved:  # a seq given twice: the log lost a committed record
            self.reused_seqs.append(key)
            return
        self.approved[key] = record
        if fault is not None:
            fault.records.append(key)

    def on_forged(self, terminal_id: int, vendor_id: int, body: bytes, household_id: int, verdicts: frozenset[str],
                  fault: Fault) -> None:
        """A record a compromised terminal committed without a tap: expected to be refused."""
        record = Approved(terminal_id, vendor_id, body, household_id, True)
        self.on_approved(record, fault)
        self.expected[(terminal_id, record.seq)] = verdicts
        self.forged.add((terminal_id, record.seq))

    def expect(self, key: tuple[int, int], verdicts: frozenset[str]) -> None:
        self.expected[key] = verdicts

    def on_credit(self, household_id: int, cents: int) -> None:
        """A manual credit staff made (negative: one they reversed)."""
        self.credits[household_id] += cents

    def allow(self, terminal_id: int, *, after_seq: int, verdicts: frozenset[str]) -> None:
        """Besides the usual verdicts, these for the terminal's records after `after_seq`."""
        self.lenient.setdefault(terminal_id, []).append((after_seq, verdicts))

    def on_block(self, uid: bytes, at_s: int) -> None:
        self.blocked_at.setdefault(uid, at_s)

    def on_allocation(self, session: Session, *, month: Month, settings: Settings, households: list[tuple[int, int]],
                      balances_before: dict[str, int]) -> None:
        """Each household got the per-member amount, and lost what its balance held above the
        carry-over cap just before (docs/settlement.md)."""
        for household_id, members in households:
            rule = settings.allowance_base_cents + settings.allowance_per_extra_member_cents * (members - 1)
            before = balances_before.get(ledger.member_code(household_id), 0)
            excess = max(0, before - settings.allowance_carry_over_cap_cents)
            for reference, expected in ((allowance_reference(household_id, month), rule),
                                        (expiry_reference(household_id, month), excess)):
                transfer = ledger.find_transfer(session, reference=reference)
                posted = transfer.amount_cents if transfer is not None else 0
                if posted != expected:
                    self.allowance_problems.append(f"{reference}: {posted} instead of {expected}")

    # ---- predictions -----------------------------------------------------------------------

    def expected_status(self, record: Approved) -> frozenset[str] | None:
        """The verdicts the backend may give: `accepted`, `held` (accepted, held for review) or a
        rejection reason; None: any (a replayed SUN message: which copy wins depends on upload
        order, judged as a fault). An adversary's records get what it declared. A terminal flagged
        suspect (a tamper) has its records not settled yet, and those it sends later, held for a
        person to decide."""
        key = (record.terminal_id, record.seq)
        if key in self.expected:
            return self.expected[key]
        extra = frozenset().union(*(verdicts for after, verdicts in self.lenient.get(record.terminal_id, ())
                                    if record.seq > after))
        if extra:
            usual = self._business_status(record)
            return None if usual is None else usual | extra
        reported = self.reported_cards.get(record.card_uid)
        if reported is not None and reported <= record.time_s:
            return frozenset({ACCEPTED, HELD, "card_blocked", "unknown_payment"})
        expected = self._business_status(record)
        if expected == ONLY_ACCEPTED and record.terminal_id in self._made_suspect():
            return frozenset({ACCEPTED, HELD})
        return expected

    def _made_suspect(self) -> set[int]:
        """Terminals the backend may flag suspect, which holds every record it has not settled: a
        tampered one, and one a replayed SUN message was tapped on (if that terminal had read the
        genuine message first, it replays what it read)."""
        tampered = {f.terminal_id for f in self.faults if f.kind == FaultKind.TAMPER and f.terminal_id is not None}
        replaying = {terminal for f in self.faults if f.kind == FaultKind.CLONE_SECURE for terminal, _ in f.records}
        return tampered | replaying

    def _business_status(self, record: Approved) -> frozenset[str] | None:
        if record.kind == Kind.PAYMENT and not record.secure_card and record.amount_cents > self.basic_card_max_cents:
            return frozenset({"over_limit"})
        blocked = self.blocked_at.get(record.card_uid)
        if blocked is not None and blocked <= record.time_s:
            # Refused; or, where the backend knows the terminal had not synced the block yet,
            # accepted and held for a person to decide (the vendor handed over the food).
            return frozenset({"card_blocked", HELD})
        if record.kind == Kind.VOID:
            payment = self.approved.get((record.terminal_id, record.ref_seq))
            paid = None if payment is None else self._business_status(payment)
            if payment is not None and paid is None:  # the payment's own verdict is uncertain: so is its void's
                return None
            if paid != ONLY_ACCEPTED:
                return frozenset({"unknown_payment"})
        if self.replayed(record):
            return None
        return ONLY_ACCEPTED

    def replayed(self, record: Approved) -> bool:
        """A record of a card whose SUN message was replayed, from the replay on: the backend may
        hold it, or block and flag the card at an upload time the auditor does not predict."""
        return any(f.kind == FaultKind.CLONE_SECURE and f.card_uid == record.card_uid and f.time_s <= record.time_s
                   for f in self.faults)

    # ---- the end -----------------------------------------------------------------------------

    def check(self, session: Session) -> tuple[list[Check], dict[str, object]]:
        """Every invariant, and the facts the report prints, read from the database."""
        rows = session.execute(select(col(TransactionRecord.terminal_id), col(TransactionRecord.seq), col(TransactionRecord.raw),
                                      col(TransactionRecord.status), col(TransactionRecord.reason), col(TransactionRecord.id),
                                      col(TransactionRecord.review), col(TransactionRecord.amount_cents),
                                      col(TransactionRecord.time))).all()
        stored = {(r.terminal_id, r.seq): r for r in rows}
        transfers = session.execute(select(col(LedgerTransfer.kind), col(LedgerTransfer.reference), col(LedgerTransfer.amount_cents),
                                           col(LedgerTransfer.debit_account_id), col(LedgerTransfer.credit_account_id))).all()
        checks = [
            self._check_records(stored),
            self._check_nothing_invented(stored),
            *[Check(f"ledger: {invariant.key}", not problems, "; ".join(problems[:3]), invariant.title)
              for invariant, problems in invariants.check_all(session)],
            self._check_balances(session, stored, transfers),
            self._check_settled(session, stored),
            Check("no terminal gave one seq to two approved records", not self.reused_seqs, f"{self.reused_seqs[:3]}"),
            Check("allowances follow the rule", not self.allowance_problems, "; ".join(self.allowance_problems[:3])),
        ]
        self._judge_faults(session, stored)
        broken = [f for f in self.faults if f.outcome not in PASSING]
        checks.append(Check("each fault detected or survived", not broken,
                            "; ".join(f"{f.kind.value} at {f.time_s}: {f.why}" for f in broken[:3])))
        return checks, self._facts(session, stored)

    def _check_records(self, stored: dict) -> Check:
        problems = []
        for key, record in sorted(self.approved.items()):
            row = stored.get(key)
            if row is None and NOT_RECEIVED in (self.expected_status(record) or ()):
                continue
            if row is None:
                problems.append(f"approved record {key} never reached the backend")
            elif bytes(row.raw[:protocol.BODY_SIZE]) != record.body:
                problems.append(f"record {key} is stored with other bytes")
            else:
                expected, got = self.expected_status(record), verdict(row)
                if expected is not None and got not in expected:
                    problems.append(f"record {key}: expected {'/'.join(sorted(expected))}, got {got}")
        return Check("every approved payment reached the backend with the verdict expected",
                     not problems, "; ".join(problems[:3]))

    def _check_nothing_invented(self, stored: dict) -> Check:
        extra = sorted(set(stored) - set(self.approved))
        return Check("the backend stored nothing a terminal did not approve", not extra, f"{extra[:3]}")

    def _check_balances(self, session: Session, stored: dict, transfers: Sequence[Row[Any]]) -> Check:
        """Each household holds its allowances, less expiries, less what it spent; each vendor
        is owed (or was paid) exactly what its accepted records add up to, the records held for
        review in its held account (docs/ledger.md, "Holds and review")."""
        accounts = {a.id: a for a in session.execute(select(LedgerAccount)).scalars()}
        expected: dict[str, int] = defaultdict(int)
        for t in transfers:  # the monthly allocation (checked against the rule on its own)
            if t.kind in (ledger.TransferKind.ALLOWANCE, ledger.TransferKind.EXPIRY) and t.reference.startswith(("allowance:", "expiry:")):
                expected[accounts[t.credit_account_id].code] += t.amount_cents
                expected[accounts[t.debit_account_id].code] -= t.amount_cents
        for household_id, cents in self.credits.items():  # manual credits: what staff did
            expected[ledger.member_code(household_id)] += cents
            expected[ledger.Account.ALLOWANCE_FUND] -= cents
        for key, row in stored.items():
            record = self.approved.get(key)
            if record is None or row.status != RecordStatus.ACCEPTED:
                continue
            payment = stored.get((record.terminal_id, record.ref_seq)) if record.kind == Kind.VOID else None
            for code, cents in money_shares(record, row, payment):
                expected[code] += cents
        paid = sum(t.amount_cents for t in transfers if t.kind == ledger.TransferKind.SETTLEMENT)
        problems = []
        for account in sorted(accounts.values(), key=lambda a: a.code):
            balance = account.credits_posted_cents - account.debits_posted_cents
            if account.kind == ledger.AccountKind.VENDOR_PAYABLE:
                balance += sum(t.amount_cents for t in transfers
                               if t.kind == ledger.TransferKind.SETTLEMENT and t.debit_account_id == account.id)
            elif account.kind == ledger.AccountKind.VENDOR_PAID:
                balance -= paid
            if balance != expected.get(account.code, 0):
                problems.append(f"{account.code}: {balance} instead of {expected.get(account.code, 0)}")
        return Check("every balance equals the auditor's", not problems, "; ".join(problems[:3]))

    def _check_settled(self, session: Session, stored: dict) -> Check:
        """Every accepted record of a terminal that is not suspect, neither held for review nor
        rejected by a reviewer, is settled once the last night has run (that payouts equal what
        was settled is an invariant); an adversary's records are judged by the adversary."""
        items = set(session.execute(select(col(SettlementItem.record_id))).scalars())
        suspect = self._suspects(session)
        judged = {key for key in stored if key in self.expected
                  or any(key[1] > after for after, _ in self.lenient.get(key[0], ()))}
        # A payment whose void is held waits for that void's decision.
        waiting = {(k[0], self.approved[k].ref_seq) for k, row in stored.items()
                   if k in self.approved and self.approved[k].kind == Kind.VOID and row.review == HELD}
        unsettled = [key for key, row in sorted(stored.items())
                     if verdict(row) == ACCEPTED and row.review != "rejected" and row.id not in items
                     and key[0] not in suspect and key not in judged and key not in waiting]
        return Check("every accepted record of a trusted terminal is settled", not unsettled,
                     "; ".join(f"accepted record {key} of a trusted terminal never settled" for key in unsettled[:3]))

    @staticmethod
    def _suspects(session: Session) -> set[int]:
        """Terminals whose word is not taken: suspect, or revoked since (which holds as much)."""
        return set(session.execute(select(col(Terminal.id)).where(
            col(Terminal.status).in_([TerminalStatus.SUSPECT, TerminalStatus.REVOKED]))).scalars())

    # ---- faults ------------------------------------------------------------------------------

    def _judge_faults(self, session: Session, stored: dict) -> None:
        suspects = self._suspects(session)
        refused = session.execute(select(col(RejectedUpload.terminal_id), col(RejectedUpload.reason), col(RejectedUpload.raw))).all()
        unstored = Counter((r.terminal_id, r.reason) for r in refused)
        genuine = {a.body for a in self.approved.values()}
        # A genuine body refused because the backend holds other bytes at its seq, or another
        # chain (a reboot that reused a seq): the terminal's log and the backend disagree.
        disagreeing = {r.terminal_id for r in refused
                       if r.reason in ("seq_conflict", "bad_chain") and bytes(r.raw[:protocol.BODY_SIZE]) in genuine}
        for fault in self.faults:
            fault.outcome, fault.why = self._judge(fault, stored, suspects, unstored, disagreeing, session)

    def _judge(self, fault: Fault, stored: dict, suspects: set[int], unstored: Counter,
               disagreeing: set[int], session: Session) -> tuple[Outcome, str]:
        if fault.kind in ADVERSARIES:
            return self.adversaries.judge(fault, session, stored)
        if fault.kind == FaultKind.TAMPER:
            seen = unstored[(fault.terminal_id, "bad_signature")] and unstored[(fault.terminal_id, "seq_conflict")]
            if seen and fault.terminal_id in suspects:
                return Outcome.DETECTED, "bad_signature, seq_conflict, terminal suspect"
            return Outcome.FAILED, "un enregistrement falsifié est passé, ou le terminal n'est pas suspect"
        if not fault.triggered:
            return Outcome.NOT_TRIGGERED, "rien sur quoi agir"
        verdicts = Counter(verdict(stored[k]) if k in stored else "missing" for k in fault.records if not self._unheard(k))
        if fault.kind == FaultKind.LOST_CARD:
            if verdicts["missing"] or verdicts[ACCEPTED]:
                return Outcome.FAILED, f"passages après le blocage : {dict(sorted(verdicts.items()))}"
            return Outcome.DETECTED, (f"hors ligne : {verdicts['card_blocked']} rejeté(s), {verdicts[HELD]} retenu(s) ; "
                                      f"{fault.declined} refusé(s) par un terminal à jour")
        if fault.kind == FaultKind.CLONE_BASIC:
            return Outcome.RESIDUAL, f"{verdicts[ACCEPTED]} passages acceptés : une copie d'UID est indiscernable"
        if fault.kind == FaultKind.CLONE_SECURE:
            return self._judge_replay(fault, stored)
        if fault.terminal_id in disagreeing:
            return Outcome.FAILED, "un enregistrement authentique du terminal a été refusé"
        mine = [k for k in self.approved if k[0] == fault.terminal_id and not self._unheard(k)]
        if any(k not in stored for k in mine):
            return Outcome.FAILED, "un enregistrement approuvé manque"
        return Outcome.SURVIVED, f"ses {len(mine)} enregistrements reçus une fois chacun"

    def _unheard(self, key: tuple[int, int]) -> bool:
        """May this approved record never reach the backend (its terminal revoked before it could send it)?"""
        return NOT_RECEIVED in (self.expected_status(self.approved[key]) or ())

    def _judge_replay(self, fault: Fault, stored: dict) -> tuple[Outcome, str]:
        auths = {self.approved[k].card_auth for k in fault.records}
        copies = [k for k, a in self.approved.items() if a.card_auth in auths]
        accepted = [k for k in copies if k in stored and verdict(stored[k]) == ACCEPTED]
        if not copies:
            return Outcome.DETECTED, f"{fault.declined} passage(s) refusé(s) sur place"
        if len(copies) == 1 and accepted:
            # Skimmed and never read by the genuine card: its counter is fresh, so the one use is
            # indistinguishable from the card's own; a second use would be caught.
            return Outcome.RESIDUAL, "un seul usage du message lu à distance, accepté (compteur neuf)"
        if len(accepted) <= 1:
            return Outcome.DETECTED, f"{len(copies) - len(accepted)} usage(s) sur {len(copies)} retenu(s) ou refusé(s)"
        return Outcome.FAILED, f"un même message SUN accepté {len(accepted)} fois"

    # ---- facts for the report ----------------------------------------------------------------

    def _facts(self, session: Session, stored: dict) -> dict[str, object]:
        approved = [a for k, a in self.approved.items() if k not in self.forged]
        statuses = Counter(verdict(r) for r in stored.values())
        reasons = Counter(r.reason for r in stored.values() if r.reason)
        reasons.update(r for r in session.execute(select(col(RejectedUpload.reason))).scalars())
        items = set(session.execute(select(col(SettlementItem.record_id))).scalars())
        held = [self.approved[k] for k, r in stored.items() if r.status == RecordStatus.ACCEPTED and r.id not in items]
        return {
            "approved_by_terminals": {"payments": sum(1 for a in approved if a.kind == Kind.PAYMENT),
                                      "voids": sum(1 for a in approved if a.kind == Kind.VOID)},
            "declined_by_terminals": dict(sorted(self.declined.items())),
            "forged_records": len(self.forged),
            "accepted": statuses[ACCEPTED] + statuses[HELD],
            "held_for_review": statuses[HELD],
            "duplicates": self.duplicates,
            "rejected": dict(sorted(reasons.items())),
            "flagged_terminals": sorted(self._suspects(session)),
            # Approved by a terminal (the vendor handed the food over), then refused by the backend.
            "refused_after_approval_cents": sum(a.amount_cents for k, a in self.approved.items()
                                                if a.kind == Kind.PAYMENT and k in stored and k not in self.forged
                                                and verdict(stored[k]) not in (ACCEPTED, HELD)),
            "held_records": len(held),
            "held_cents": sum(a.amount_cents if a.kind == Kind.PAYMENT else -a.amount_cents for a in held),
        }
