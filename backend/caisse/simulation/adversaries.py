"""Hostile and mistaken actors (docs/simulation.md, "Adversaries"), one of each per run:

- offline_spree: a household taps at five stalls cut off from the network, with two cards;
- lying_clock: a stall's battery-less clock comes back from a power cut a day and more ahead,
  with no network to correct it for three hours;
- false_over_limit: a compromised stall signs payments above the ceiling for other households'
  secure cards, with no genuine SUN message;
- garbage_flood: a minute of junk to one stall's upload endpoint (not JSON, random records,
  deep nesting, unknown terminals);
- reject_in_flight: a reviewer rejects a held payment while its void is on the way;
- revoke_in_flight: a coordinator revokes a stall that still holds records the backend has not
  settled, or not received;
- iban_mid_settlement: between the preparation and the export of a night's run, a vendor's IBAN
  is changed by two people, then a third change is asked by one person alone;
- credit_twice: a manual credit typed twice (the same reference again, then a new one), the
  double then reversed.

Each is planned from the run's random generator, acts through the real backend (HTTP, the
services staff use) and the real firmware, and is judged by `judge` at the end from the
database: no euro lost or paid twice (the ledger invariants, for everyone), and the bound or the
flag its defence promises.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, text
from sqlmodel import Session, col

from caisse.errors import Conflict
from caisse.ingest import review, terminal_decisions
from caisse.ingest import upload as ingest
from caisse.ledger import corrections
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.models import (
    Card,
    CardStatus,
    LedgerTransfer,
    LineStatus,
    RecordStatus,
    RejectedUpload,
    ReviewStatus,
    SettlementItem,
    SettlementLine,
    Terminal,
    TransactionRecord,
    Vendor,
)
from caisse.money import euros
from caisse.reports import overdue
from caisse.settlement import runs as settlement
from caisse.simulation.auditor import ACCEPTED, HELD, NOT_RECEIVED, verdict
from caisse.simulation.faults import Fault, FaultKind, Outcome
from caisse.staff import accounts
from caisse.vendors import service as vendor_service
from caisse_common import protocol

if TYPE_CHECKING:
    from caisse.simulation.cards import MemberCard
    from caisse.simulation.world import Post, World

HOUR = 3600
SPREE_STALLS = 5
CLOCK_LIE_S = 26 * HOUR  # past the next night's cut-off
FORGED_CENTS = 20_000  # above the caisse's 150 € ceiling
FLOOD_BATCHES = 40
STAFF = ("claire.tresoriere@caisse.simulation", "yanis.coordinateur@caisse.simulation")


@dataclass(slots=True)
class Flood:
    """The garbage flood's answers, and the flooded terminal's rejection log before and after."""

    statuses: list[int] = field(default_factory=list)
    rows_before: int = 0
    rows_after: int = 0


@dataclass(frozen=True, slots=True)
class IbanChange:
    """The vendor whose IBAN changes mid-settlement: the IBAN its run froze, the approved and
    the pending new ones, and the run."""

    vendor: int
    frozen: str | None
    approved: str
    pending: str
    run: int


@dataclass(slots=True)
class Plan:
    """What each adversary targets, drawn before the first day."""

    spree_household: int = -1  # index in world.households
    spree_posts: list[int] = field(default_factory=list)
    liar: int = -1  # post index
    forger: int = -1
    flooded: int = -1
    reviewed: int = -1  # the post whose payment is held, rejected, then voided
    revoked: int = -1
    iban_night: int = 0  # day whose night's run sees the IBAN change
    credited_household: int = -1


class Adversaries:
    def __init__(self, world: World) -> None:
        self.world = world
        self.plan = Plan()
        self.revoked_terminals: set[int] = set()
        self.iban_fault: Fault | None = None
        self.iban: IbanChange | None = None
        self.flood = Flood()
        self.forged_cards: list[bytes] = []
        self.spree_balance_cents = 0
        self.spree_day_high_cents = 0  # the highest balance a stall can have synced that day, before the spree
        self.credit: tuple[int, str, str] = (0, "", "")  # household, ledger references of the credit and its double
        self.refused_reversal = ""

    # ---- planning --------------------------------------------------------------------------

    def plan_all(self, add: Callable[..., None], market_time: Callable[[int], int], day_start: Callable[[int], int]) -> None:
        """Draw every adversary's day, time and target; `add(kind, day, time, action, **fields)`."""
        world, rng, days = self.world, self.world.rng, self.world.config.days
        posts = list(range(len(world.posts)))
        order = posts[:]
        rng.shuffle(order)
        plan = self.plan
        # Distinct stalls where there are enough: the liar, the forger, the flooded, the revoked, the reviewed.
        plan.liar, plan.forger, plan.flooded, plan.revoked, plan.reviewed = (order[i % len(order)] for i in range(5))
        plan.spree_posts = [p for p in order if p != plan.revoked][:SPREE_STALLS] or order[:SPREE_STALLS]
        small = min(range(len(world.households)), key=lambda i: (world.households[i].members, i))
        plan.spree_household = small
        plan.credited_household = rng.randrange(len(world.households))
        plan.iban_night = rng.randrange(days)
        spree_day, revoke_day = days // 2, rng.randrange(days)
        add(FaultKind.SPREE, spree_day, day_start(spree_day) + 9 * HOUR + 40 * 60, lambda f: self.spree(f))
        add(FaultKind.LYING_CLOCK, 0, day_start(0) + 7 * HOUR + 20 * 60, lambda f: self.lie(f),
            terminal_id=world.posts[plan.liar].terminal_id, detail=f"+{CLOCK_LIE_S // HOUR} h")
        forge_day = rng.randrange(days)
        add(FaultKind.FALSE_OVER_LIMIT, forge_day, market_time(forge_day), lambda f: self.forge(f),
            terminal_id=world.posts[plan.forger].terminal_id)
        flood_day = rng.randrange(days)
        add(FaultKind.GARBAGE_FLOOD, flood_day, market_time(flood_day), lambda f: self.garbage(f),
            terminal_id=world.posts[plan.flooded].terminal_id)
        review_day = rng.randrange(days)
        # Before the spree's stalls go offline (09:40) and the revoked one (10:30).
        add(FaultKind.WRONG_REJECT, review_day, day_start(review_day) + 7 * HOUR + 10 * 60 + rng.randrange(0, 2 * HOUR),
            lambda f: self.reject_in_flight(f))
        add(FaultKind.WRONG_REVOKE, revoke_day, day_start(revoke_day) + 10 * HOUR + 30 * 60, lambda f: self.revoke(f),
            terminal_id=world.posts[plan.revoked].terminal_id)
        add(FaultKind.IBAN_MID_SETTLEMENT, plan.iban_night, day_start(plan.iban_night) + 25 * HOUR + 30 * 60,
            lambda f: setattr(self, "iban_fault", f))
        credit_day = rng.randrange(days)
        add(FaultKind.CREDIT_TWICE, credit_day, day_start(credit_day) + 6 * HOUR + rng.randrange(0, HOUR),
            lambda f: self.credit_twice(f))

    def setup(self, session: Session) -> None:
        """Before the first day: the staff's console accounts, and the spree household's second card."""
        from caisse.staff import accounts

        for email, role in zip(STAFF, ("treasurer", "coordinator"), strict=True):
            accounts.create_user(session, email=email, password="simulation-mot-de-passe", role=role)
        household = self.world.households[self.plan.spree_household]
        if len(household.cards) < 2:
            self.world.issue_card(session, household, secure=False)

    # ---- what they do ------------------------------------------------------------------------

    def spree(self, fault: Fault) -> None:
        """Five stalls lose the network; forty minutes later the household taps at each, two cards
        in turn, as much as the card allows and the stall believes it holds; the network is back at noon."""
        world, plan = self.world, self.plan
        household = world.households[plan.spree_household]
        with world.backend.session() as session:
            self.spree_balance_cents = ledger.balance_cents(session, code=ledger.member_code(household.household_id))
            self.spree_day_high_cents = _highest_balance_since(session, household.household_id,
                                                               world.backend.now_s - world.backend.now_s % (24 * HOUR))
        limits = world.backend.settings
        fault.triggered = True
        fault.detail = f"foyer {household.household_id}, solde {euros(self.spree_balance_cents)} €"
        for step, index in enumerate(plan.spree_posts):
            post = world.posts[index]
            post.link.up = False
            card = household.cards[step % len(household.cards)]
            ceiling = limits.max_payment_cents if card.secure else limits.basic_card_max_payment_cents
            amount = max(100, min(ceiling, self.spree_balance_cents) // 10 * 10)
            world.at(world.backend.now_s + 40 * 60 + step * 5 * 60, lambda p=post, c=card, a=amount: self._spree_tap(p, c, a, fault))
        back = world.backend.now_s - world.backend.now_s % (24 * HOUR) + 12 * HOUR

        def reconnect() -> None:
            for index in plan.spree_posts:
                world.posts[index].link.up = True
        world.at(back, reconnect)

    def _spree_tap(self, post: Post, card: MemberCard, amount: int, fault: Fault) -> None:
        """As much as the stall lets through: the amount, then half of it, and so on to 1 €."""
        while amount >= 100:
            key = self.world.tap(post, card, amount, fault=fault)
            if key is not None:  # beyond the offline limits the backend may hold it for a person
                self.world.auditor.expect(key, frozenset({ACCEPTED, HELD}))
                return
            amount = amount // 2 // 10 * 10

    def lie(self, fault: Fault) -> None:
        """The stall loses the network and power at once; its clock (no battery) comes back 26 h
        ahead, and until the network returns at half past ten nothing corrects it: its records
        carry that time, marked untrusted by the firmware. Then a sync sets the time again."""
        world = self.world
        post = world.posts[self.plan.liar]
        post.link.up = False
        post.stall.clock_offset_s = CLOCK_LIE_S
        post.stall.set_time(world.backend.now_s)
        post.stall.reboot()
        world.auditor.allow(post.terminal_id, after_seq=post.stall.terminal.log.next_seq - 1, verdicts=frozenset({HELD}))
        fault.triggered = True
        for step in range(3):  # members keep paying there meanwhile
            household = world.households[world.rng.randrange(len(world.households))]
            world.at(world.backend.now_s + (step + 1) * 40 * 60,
                     lambda h=household: world.tap(post, h.cards[0], world.rng.randrange(300, 2_500, 10), fault=fault))

        def repaired() -> None:
            post.stall.clock_offset_s = 0
            post.link.up = True
        world.at(world.backend.now_s - world.backend.now_s % (24 * HOUR) + 10 * HOUR + 30 * 60, repaired)

    def forge(self, fault: Fault) -> None:
        """The forger's stall commits and signs payments it never took: other households' secure
        cards, 200 €, a made-up SUN message. Its next sync uploads them with its genuine records."""
        world = self.world
        post = world.posts[self.plan.forger]
        # Not a card another fault uses: a copied card is rightly blocked, and that is not the forger's doing.
        used = {f.card_uid for f in world.planned if f.card_uid is not None}
        secure = [c for h in world.households for c in h.cards
                  if c.secure and c.uid not in used and h is not world.households[self.plan.spree_household]]
        if not secure:
            return
        for card in world.rng.sample(secure, min(2, len(secure))):
            body = post.stall.forge(card_uid=card.uid, amount_cents=FORGED_CENTS, card_auth=world.rng.randbytes(24))
            if body is None:
                continue
            household_id = world.households[card.household].household_id
            world.auditor.on_forged(post.terminal_id, post.vendor_id, body, household_id, frozenset({"over_limit"}), fault)
            self.forged_cards.append(card.uid)
            world.auditor.reported_cards.setdefault(card.uid, world.backend.now_s)
            fault.triggered = True

    def garbage(self, fault: Fault) -> None:
        """A minute of junk to one stall's upload endpoint, and to terminals that do not exist."""
        world, rng = self.world, self.world.rng
        post = world.posts[self.plan.flooded]
        path = f"/v1/terminals/{post.terminal_id}/batches"
        json_headers = {"Content-Type": "application/json"}
        with world.backend.session() as session:
            self.flood.rows_before = _rejected_rows(session, post.terminal_id)
        bodies: list[tuple[str, bytes]] = [
            (path, b"\x00\xff pas du json"),
            (path, b"{" * 5_000),
            (path, json.dumps({"records": "aGVsbG8="}).encode()),
            (path, json.dumps({"records": [None, 7, "!!!"]}).encode()),
            (path, ("[" * 20_000 + "]" * 20_000).encode()),
            (path, json.dumps({"records": ["A" * 70_000]}).encode()),
            ("/v1/terminals/999999/batches", json.dumps({"records": []}).encode()),
            ("/v1/terminals/-1/batches", b"{}"),
            ("/v1/terminals/abc/batches", b"{}"),
        ]
        for _ in range(FLOOD_BATCHES):
            records = [base64.b64encode(rng.randbytes(rng.choice((154, 154, rng.randrange(0, 300))))).decode("ascii")
                       for _ in range(8)]
            bodies.append((path, json.dumps({"records": records}).encode()))
        statuses: list[int] = []
        for target, body in bodies:
            try:
                status, _ = world.backend.request("POST", target, json_headers, body)
            except Exception:  # an error the app did not answer: what a client sees as a 500
                status = 500
            statuses.append(status)
        self.flood.statuses = statuses
        with world.backend.session() as session:
            self.flood.rows_after = _rejected_rows(session, post.terminal_id)
        fault.triggered = True
        fault.detail = f"{len(bodies)} envois"

    def reject_in_flight(self, fault: Fault) -> None:
        """A member pays; the stall uploads; a reviewer holds the payment; the vendor voids it (the
        void waits in the stall's log); the reviewer rejects the payment; then the void arrives."""
        world = self.world
        online = [p for p in world.posts if p.link.up and p.terminal_id not in self.revoked_terminals
                  and p.stall.clock_offset_s == 0]
        if not online:
            return
        post = online[self.plan.reviewed % len(online)]
        fault.terminal_id = post.terminal_id
        spree = world.households[self.plan.spree_household]
        payment, card = None, None
        for household in world.rng.sample(world.households, min(4, len(world.households))):
            if household is not spree:
                card = household.cards[0]
                payment = world.tap(post, card, 1_230)
                if payment is not None:
                    break
        if payment is None or card is None:
            return
        start = world.backend.now_s
        world.sync(post, forced=True)
        void: list[tuple[int, int]] = []

        def hold() -> None:
            with world.backend.session() as session:
                record_id = _record_id(session, payment)
            if record_id is None:  # the upload failed (a network fault): the stall tries again
                world.sync(post, forced=True)
            with world.backend.session() as session:
                record_id = _record_id(session, payment)
                if record_id is not None:
                    review.hold(session, record_ids=[record_id], reason="montant inhabituel : à vérifier")

        def void_it() -> None:
            link_was, post.link.up = post.link.up, False  # committed at the stall, not sent yet
            key = world.void(post, card)
            post.link.up = link_was
            if key is not None:
                void.append(key)

        def reject() -> None:
            with world.backend.session() as session:
                record_id = _record_id(session, payment)
                held = record_id is not None and session.execute(select(col(TransactionRecord.review)).where(
                    col(TransactionRecord.id) == record_id)).scalar_one() == ReviewStatus.HELD
                if not held:
                    return
                review.reject(session, record_id=record_id or 0, by=STAFF[0])
            # The void the backend has not acknowledged yet arrives after the rejection: refused.
            for key in void:
                world.auditor.expect(key, frozenset({"unknown_payment", ACCEPTED}))
            fault.records.append(payment)
            fault.triggered = True
        world.at(start + 60, hold)
        world.at(start + 120, void_it)
        world.at(start + 180, reject)
        world.at(start + 240, lambda: world.sync(post, forced=True))

    def revoke(self, fault: Fault) -> None:
        """The stall's network goes down at half past ten; at eleven a coordinator revokes it
        (thought stolen): what it uploaded waits for settlement, what it did not will never arrive."""
        world = self.world
        post = world.posts[self.plan.revoked]
        post.link.up = False

        def revoke() -> None:
            with world.backend.session() as session:
                terminal_decisions.revoke_terminal(session, terminal_id=post.terminal_id, by=STAFF[1])
            self.revoked_terminals.add(post.terminal_id)
            # Revoking holds what it had not settled; what it sent after its last acknowledgement may
            # have arrived (an answer lost) or never will.
            world.auditor.allow(post.terminal_id, after_seq=0, verdicts=frozenset({HELD}))
            world.auditor.allow(post.terminal_id, after_seq=post.stall.terminal.log.acked_seq,
                                verdicts=frozenset({NOT_RECEIVED}))
            fault.triggered = True
        world.at(world.backend.now_s + 30 * 60, revoke)

    def credit_twice(self, fault: Fault) -> None:
        """A coordinator credits a household 20 €, sends the form again (the same reference), then
        types it once more under a new reference; the treasurer reverses the double."""
        world = self.world
        household = world.households[self.plan.credited_household]
        key = f"geste-{household.household_id}"
        with world.backend.session() as session:
            first = household_service.credit_household(session, household_id=household.household_id, amount_cents=2_000,
                                           memo="geste du comité", reference=key)
            again = household_service.credit_household(session, household_id=household.household_id, amount_cents=2_000,
                                           memo="geste du comité", reference=key)
            double = household_service.credit_household(session, household_id=household.household_id, amount_cents=2_000,
                                            memo="geste du comité", reference=f"{key}-bis")
        for credit in (first, again, double):
            if credit.created:
                world.auditor.on_credit(household.household_id, credit.amount_cents)
        fault.detail = f"foyer {household.household_id}, 20,00 € saisis deux fois"
        fault.triggered = True

        def reverse() -> None:
            try:
                with world.backend.session() as session:
                    done = corrections.reverse(session, reference=double.ledger_reference, by=STAFF[0], reason="saisi deux fois")
            except Conflict as error:  # reversal_would_overdraw: the household spent it meanwhile
                self.refused_reversal = error.code
                return
            if done.created:
                world.auditor.on_credit(household.household_id, -done.amount_cents)
        world.at(world.backend.now_s + 300, reverse)
        self.credit = (household.household_id, first.ledger_reference, double.ledger_reference)

    def settle_mid_change(self, run_date: date) -> None:
        """The night's run, step by step: prepared; then a vendor it pays gets a new IBAN (asked by
        the treasurer, approved by the coordinator) and another one asked by the treasurer alone;
        then approved and exported."""
        world = self.world
        settings = world.backend.settings
        with world.backend.session() as session:
            run = settlement.prepare_run(session, run_date=run_date, settings=settings, by=accounts.AUTOMATIC)
            run_id = run.id
        assert run_id is not None  # the run is flushed when prepared
        with world.backend.session() as session:
            paid = session.execute(select(col(SettlementLine.vendor_id), col(SettlementLine.payee_iban)).where(
                col(SettlementLine.run_id) == run_id, col(SettlementLine.status) == LineStatus.PAID,
                col(SettlementLine.amount_cents) > 0)
                .order_by(col(SettlementLine.vendor_id))).first()
        fault = self.iban_fault
        if paid is not None and fault is not None:
            vendor_id, frozen = paid
            new, other = _iban(900 + vendor_id), _iban(950 + vendor_id)
            with world.backend.session() as session:
                change = vendor_service.request_iban_change(session, vendor_id=vendor_id, iban=new, by=STAFF[1])
            with world.backend.session() as session:  # the treasury approves (vendor_service.IBAN_APPROVERS)
                vendor_service.approve_iban_change(session, change_id=change.id or 0, by=STAFF[0])
            with world.backend.session() as session:
                vendor_service.request_iban_change(session, vendor_id=vendor_id, iban=other, by=STAFF[1])
            self.iban = IbanChange(vendor=vendor_id, frozen=frozen, approved=new, pending=other, run=run_id)
            fault.triggered = True
            fault.detail = f"commerçant {vendor_id}"
        with world.backend.session() as session:
            settlement.approve_run(session, run_id=run_id, by=accounts.AUTOMATIC, settings=settings)
        with world.backend.session() as session:
            settlement.export_run(session, run_id=run_id, settings=settings)
        with world.backend.session() as session:
            result = settlement.describe(session, run_id=run_id)
        world.record_night(run_date, result)

    # ---- judging -----------------------------------------------------------------------------

    def judge(self, fault: Fault, session: Session, stored: dict) -> tuple[Outcome, str]:
        judges: dict[FaultKind, Callable[[Fault, Session, dict], tuple[Outcome, str]]] = {
            FaultKind.SPREE: self._judge_spree, FaultKind.LYING_CLOCK: self._judge_liar,
            FaultKind.FALSE_OVER_LIMIT: self._judge_forgery, FaultKind.GARBAGE_FLOOD: self._judge_flood,
            FaultKind.WRONG_REJECT: self._judge_reject, FaultKind.WRONG_REVOKE: self._judge_revoke,
            FaultKind.IBAN_MID_SETTLEMENT: self._judge_iban, FaultKind.CREDIT_TWICE: self._judge_credit,
        }
        if not fault.triggered:
            return Outcome.NOT_TRIGGERED, "rien sur quoi agir"
        return judges[fault.kind](fault, session, stored)

    def _judge_spree(self, fault: Fault, session: Session, stored: dict) -> tuple[Outcome, str]:
        """Beyond what the household held, each stall may accept without a hold only what the
        caisse's offline limits allow it, min(balance × offline_share_bp, offline_daily_cap_cents),
        for the highest balance it can have synced that day (the rest held for a person); a
        household left below zero is on the staff's list."""
        household = self.world.households[self.plan.spree_household]
        unheld: dict[int, int] = {}
        for key in fault.records:
            row = stored.get(key)
            if row is not None and verdict(row) == ACCEPTED:
                unheld[key[0]] = unheld.get(key[0], 0) + row.amount_cents
        held = sum(stored[k].amount_cents for k in fault.records if k in stored and verdict(stored[k]) == HELD)
        taken = sum(unheld.values())
        settings = self.world.backend.settings
        listed = {w.subject for w in overdue.overdue(session, settings=settings.model_copy(update={"overdue_after_days": 0}))}
        below = ledger.balance_cents(session, code=ledger.member_code(household.household_id)) < 0
        if below and f"household:{household.household_id}" not in listed:
            return Outcome.FAILED, "le foyer est à découvert sans figurer dans la liste du personnel"
        if taken <= self.spree_balance_cents:
            return Outcome.SURVIVED, (f"{euros(taken)} € acceptés sans retenue pour un solde de {euros(self.spree_balance_cents)} €"
                                      f" ({fault.declined} refus sur place, {euros(held)} € retenus)")
        share, cap = getattr(settings, "offline_share_bp", None), getattr(settings, "offline_daily_cap_cents", None)
        if share is None or cap is None:
            return Outcome.FAILED, (f"aucune limite hors ligne par foyer : {euros(taken)} € acceptés sans retenue à"
                                    f" {len(unheld)} terminaux pour un foyer qui avait {euros(self.spree_balance_cents)} €")
        bound = min(self.spree_day_high_cents * share // 10_000, cap)
        over = {t: euros(c) for t, c in sorted(unheld.items()) if c > bound}
        if over:
            return Outcome.FAILED, f"au-delà de la limite hors ligne ({euros(bound)} € par terminal) sans retenue : {over}"
        return Outcome.DETECTED, (f"{euros(taken)} € acceptés sans retenue pour {euros(self.spree_balance_cents)} € de solde,"
                                  f" au plus {euros(bound)} € par terminal ; {euros(held)} € retenus, {fault.declined} refus"
                                  " sur place" + (" ; foyer à découvert listé" if below else ""))

    def _judge_liar(self, fault: Fault, session: Session, stored: dict) -> tuple[Outcome, str]:
        """A record stamped later than it was received (beyond the clock window) is never taken at
        its word: with a time the terminal trusted, it is held for a person (time_in_future); with
        a time the terminal marked untrusted (flag 0x02, after the power cut), it is judged on its
        reception: accepted, never refused for the food handed over."""
        window = self.world.backend.settings.sync_clock_window_s
        rows = session.execute(select(col(TransactionRecord.id), col(TransactionRecord.time), col(TransactionRecord.flags),
                                      col(TransactionRecord.received_at), col(TransactionRecord.status),
                                      col(TransactionRecord.review))
                               .where(col(TransactionRecord.terminal_id) == fault.terminal_id)).all()
        ahead = [row for row in rows if row.time > _unix(row.received_at) + window]
        if not ahead:
            return Outcome.SURVIVED, "aucun enregistrement daté dans le futur n'est parvenu"
        said = [row for row in ahead if row.flags & protocol.FLAG_UNTRUSTED_TIME]
        trusted_unheld = [row for row in ahead if row not in said and row.status == RecordStatus.ACCEPTED and row.review != ReviewStatus.HELD]
        refused = [row for row in said if row.status != RecordStatus.ACCEPTED]
        if trusted_unheld:
            return Outcome.FAILED, f"{len(trusted_unheld)} enregistrement(s) daté(s) dans le futur acceptés sans retenue"
        if refused:
            return Outcome.FAILED, f"{len(refused)} enregistrement(s) à l'heure déclarée non fiable refusé(s)"
        settled = set(session.execute(select(col(SettlementItem.record_id)).where(
            col(SettlementItem.record_id).in_([row.id for row in said]))).scalars())
        return Outcome.DETECTED, (f"{len(ahead)} enregistrement(s) daté(s) en avance ; {len(said)} à l'heure déclarée non"
                                  f" fiable, jugés à leur réception ({len(settled)} réglés) ; {len(ahead) - len(said)} retenus")

    def _judge_forgery(self, fault: Fault, session: Session, stored: dict) -> tuple[Outcome, str]:
        """The forged payments move no money (refused over the ceiling), are stored for staff to
        see, and do not lock the households out: their cards stay usable."""
        refused = [key for key in fault.records if key in stored and stored[key].reason == "over_limit"]
        statuses = dict(session.execute(select(col(Card.uid), col(Card.status)).where(col(Card.uid).in_(self.forged_cards))).all())
        locked = [uid.hex() for uid, status in statuses.items() if status != CardStatus.ACTIVE]
        if len(refused) != len(fault.records):
            return Outcome.FAILED, f"{len(fault.records) - len(refused)} paiement(s) forgé(s) non refusé(s)"
        if locked:
            return Outcome.FAILED, f"carte(s) d'autres foyers bloquée(s) par les rapports du terminal : {', '.join(locked)}"
        return Outcome.DETECTED, f"{len(refused)} paiement(s) forgé(s) refusé(s) over_limit, cartes toujours utilisables"

    def _judge_flood(self, fault: Fault, session: Session, stored: dict) -> tuple[Outcome, str]:
        """Junk is answered with a 4xx, never a 5xx; the flooded terminal's rejection log grows by at
        most its bound for the minute."""
        statuses = self.flood.statuses
        errors = [s for s in statuses if s >= 500]
        grown = self.flood.rows_after - self.flood.rows_before
        bound = getattr(ingest, "REJECTIONS_PER_SOURCE_PER_MINUTE", None)
        if errors:
            return Outcome.FAILED, f"{len(errors)} envoi(s) sur {len(statuses)} ont reçu une erreur {errors[0]}"
        if bound is None or grown > bound:
            return Outcome.FAILED, f"le journal des rejets a grandi de {grown} lignes en une minute (aucune borne)"
        return Outcome.DETECTED, f"{len(statuses)} envois refusés (4xx), journal des rejets +{grown} lignes (borne {bound})"

    def _judge_reject(self, fault: Fault, session: Session, stored: dict) -> tuple[Outcome, str]:
        """The household gets the rejected payment back once (the late void is refused); the
        vendor is never paid for it."""
        if not fault.records:
            return Outcome.NOT_TRIGGERED, "pas de paiement à rejeter"
        payment = fault.records[0]
        row = stored.get(payment)
        if row is None or row.review != "rejected":
            return Outcome.FAILED, "le paiement retenu n'a pas été rejeté"
        refunds = session.execute(select(func.count()).select_from(TransactionRecord).where(
            col(TransactionRecord.terminal_id) == payment[0], col(TransactionRecord.kind) == 2,
            col(TransactionRecord.ref_seq) == payment[1], col(TransactionRecord.status) == RecordStatus.ACCEPTED)).scalar_one()
        reversed_ = ledger.find_transfer(session, reference=ledger.reject_reference(*payment)) is not None
        settled = session.execute(text("SELECT COUNT(*) FROM settlement_item WHERE record_id = :r"), {"r": row.id}).scalar_one()
        if int(refunds) + reversed_ != 1 or settled:
            return Outcome.FAILED, f"remboursé {int(refunds) + reversed_} fois, réglé {settled} fois"
        return Outcome.DETECTED, "remboursé une fois au foyer, jamais payé au commerçant ; l'annulation tardive est refusée"

    def _judge_revoke(self, fault: Fault, session: Session, stored: dict) -> tuple[Outcome, str]:
        """What the revoked stall uploaded but no run had settled yet waits for a person (held),
        never paid on the word of a terminal thought stolen; what it could not send is counted."""
        terminal_id = fault.terminal_id
        revoked_at = session.execute(select(col(Terminal.revoked_at)).where(col(Terminal.id) == terminal_id)).scalar_one()
        settled_after = session.execute(text(
            "SELECT COUNT(*), COALESCE(SUM(i.amount_cents), 0) FROM settlement_item i JOIN transaction_record r ON r.id = i.record_id"
            " JOIN settlement_run s ON s.id = i.run_id WHERE r.terminal_id = :t AND s.prepared_at >= :at"),
            {"t": terminal_id, "at": revoked_at}).one()
        mine = [key for key in self.world.auditor.approved if key[0] == terminal_id]
        lost = [key for key in mine if key not in stored]
        lost_cents = sum(self.world.auditor.approved[k].amount_cents for k in lost)
        waiting = sum(1 for key in mine if key in stored and verdict(stored[key]) == HELD)
        if int(settled_after[0]):
            return Outcome.FAILED, (f"{settled_after[0]} enregistrement(s) du terminal révoqué payé(s) ensuite sans décision"
                                    f" ({euros(int(settled_after[1]))} €)")
        unsettled = [key for key in mine if key in stored and verdict(stored[key]) == ACCEPTED
                     and stored[key].review != "rejected"  # a reviewer refused it before the revocation
                     and not session.execute(text("SELECT COUNT(*) FROM settlement_item WHERE record_id = :r"),
                                             {"r": stored[key].id}).scalar_one()]
        if unsettled:
            return Outcome.FAILED, f"{len(unsettled)} enregistrement(s) du terminal révoqué ni réglé(s) ni retenu(s)"
        return Outcome.DETECTED, (f"{waiting} enregistrement(s) retenu(s) pour décision ; {len(lost)} jamais reçu(s)"
                                  f" ({euros(lost_cents)} € remis par le commerçant, hors grand livre)")

    def _judge_iban(self, fault: Fault, session: Session, stored: dict) -> tuple[Outcome, str]:
        """The run pays the IBAN it froze when it was prepared; the two-person change applies to the
        next runs; the change asked by one person alone waits, listed for a second person."""
        change = self.iban
        assert change is not None  # triggered only once the change is made
        vendor_id = change.vendor
        line = session.execute(select(col(SettlementLine.payee_iban)).where(
            col(SettlementLine.run_id) == change.run, col(SettlementLine.vendor_id) == vendor_id,
            col(SettlementLine.status) == LineStatus.PAID)).scalar_one_or_none()
        current = session.execute(select(col(Vendor.iban)).where(col(Vendor.id) == vendor_id)).scalar_one()
        output = session.execute(text("SELECT output_dir FROM settlement_run WHERE id = :r"), {"r": change.run}).scalar_one()
        sepa = _read(output)
        pending = vendor_service.pending_iban_change(session, vendor_id=vendor_id)
        if line != change.frozen or change.approved in sepa or str(change.frozen) not in sepa:
            return Outcome.FAILED, "le virement du règlement ne va pas à l'IBAN figé à sa préparation"
        if current != change.approved or pending is None or pending.iban != change.pending:
            return Outcome.FAILED, "un changement d'IBAN n'a pas suivi la règle des deux personnes"
        later = session.execute(select(col(SettlementLine.payee_iban)).where(
            col(SettlementLine.vendor_id) == vendor_id, col(SettlementLine.run_id) > change.run,
            col(SettlementLine.status) == LineStatus.PAID, col(SettlementLine.amount_cents) > 0)).scalars().all()
        if any(iban != change.approved for iban in later):
            return Outcome.FAILED, "un règlement suivant ne paie pas le nouvel IBAN approuvé"
        return Outcome.DETECTED, "payé à l'IBAN figé ; nouvel IBAN pour la suite ; le changement demandé seul attend"

    def _judge_credit(self, fault: Fault, session: Session, stored: dict) -> tuple[Outcome, str]:
        """Sent twice, the first credit posts once; typed twice, the double is reversed: the
        household keeps 20 €, not 40 €."""
        household_id, first, double = self.credit
        posted = session.execute(text(
            "SELECT COALESCE(SUM(amount_cents), 0) FROM ledger_transfer WHERE reference IN (:a, :b)"), {"a": first, "b": double}).scalar_one()
        reversal = session.execute(text(
            "SELECT COALESCE(SUM(r.amount_cents), 0) FROM ledger_transfer r JOIN ledger_transfer o"
            " ON r.reference = 'reversal:' || CAST(o.id AS VARCHAR(20)) WHERE o.reference = :b"), {"b": double}).scalar_one()
        if int(posted) - int(reversal) == 2_000:
            return Outcome.DETECTED, f"foyer {household_id} : 20,00 € crédités une fois, le double contre-passé"
        if self.refused_reversal and int(posted) - int(reversal) == 4_000:
            return Outcome.DETECTED, f"contre-passation refusée ({self.refused_reversal}) : le trop-perçu est réglé avec le foyer"
        return Outcome.FAILED, f"foyer {household_id} : {euros(int(posted) - int(reversal))} € crédités au lieu de 20,00 €"


def _highest_balance_since(session: Session, household_id: int, since_s: int) -> int:
    """The household's highest balance from `since_s` (unix) to now, replaying its account's journal."""
    code = ledger.member_code(household_id)
    account_id = ledger.account_ids(session, codes=[code])[code]
    rows = session.execute(select(col(LedgerTransfer.debit_account_id), col(LedgerTransfer.amount_cents),
                                  col(LedgerTransfer.created_at))
                           .where((col(LedgerTransfer.debit_account_id) == account_id)
                                  | (col(LedgerTransfer.credit_account_id) == account_id))
                           .order_by(col(LedgerTransfer.id))).all()
    start = datetime.fromtimestamp(since_s, UTC)
    balance, highest = 0, None
    for debit, amount, created_at in rows:
        if (created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)) >= start and highest is None:
            highest = balance
        balance += -amount if debit == account_id else amount
        if highest is not None:
            highest = max(highest, balance)
    return balance if highest is None else max(highest, balance)


def _rejected_rows(session: Session, terminal_id: int) -> int:
    return int(session.execute(select(func.count()).select_from(RejectedUpload)
                               .where(col(RejectedUpload.terminal_id) == terminal_id)).scalar_one())


def _record_id(session: Session, key: tuple[int, int]) -> int | None:
    return session.execute(select(col(TransactionRecord.id)).where(
        col(TransactionRecord.terminal_id) == key[0], col(TransactionRecord.seq) == key[1])).scalar_one_or_none()


def _unix(moment: datetime) -> int:
    from caisse.models import unix_s

    return unix_s(moment)


def _read(folder: str | None) -> str:
    from pathlib import Path

    if not folder:
        return ""
    path = Path(folder) / "virements-sepa.xml"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def _iban(number: int) -> str:
    from schwifty import IBAN

    return str(IBAN.generate("FR", bank_code="30004", account_code=f"{number:011d}"))


