"""The simulated caisse: vendors with a terminal each, member households with basic and secure
cards, market days of taps, syncs and faults, the monthly allowance and the nightly settlement.

Everything random comes from one `random.Random` seeded with the run's seed, and every event
runs in (time, order) order from a heap: the same seed replays the same run, byte for byte.
"""

from __future__ import annotations

import base64
import heapq
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from schwifty import IBAN
from sqlalchemy import select
from sqlmodel import Session, col

from caisse.cards import service as card_service
from caisse.demo import data as demo_data
from caisse.fund import allowances
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.models import CardType, RecordStatus, TransactionRecord
from caisse.months import Month
from caisse.settlement import runs as settlement
from caisse.simulation.auditor import Approved, Auditor
from caisse.simulation.backend import Backend, SimulationError
from caisse.simulation.cards import MemberCard, SunKeys
from caisse.simulation.faults import NETWORK_FAULTS, Fault, FaultKind, Link
from caisse.simulation.stall import Stall, TapOutcome
from caisse.terminals import registry as terminal_registry
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from caisse_terminal import hal

SETUP_S = 1_772_352_000  # 2026-03-01 08:00 UTC: the caisse registers everyone, March is credited
FIRST_DAY = date(2026, 3, 30)  # a Monday; a five-day run crosses into April (allowance, expiry)
HOUR = 3600
OPEN_S, CLOSE_S = 6 * HOUR + 30 * 60, 13 * HOUR + 15 * 60  # stalls sync at opening and closing (UTC)
MARKET_START_S, MARKET_END_S = 7 * HOUR, 13 * HOUR
SYNC_EVERY_S = 30 * 60
SETTLE_AT_S = 25 * HOUR + 30 * 60  # 01:30 UTC the next night
SECURE_SHARE = 0.3
VOID_SHARE = 0.03
MAX_DRAIN_SYNCS = 8
_Result = TypeVar("_Result")


@dataclass(frozen=True, slots=True)
class SimulationConfig:
    terminals: int = 6
    members: int = 40
    days: int = 2
    seed: int = 1
    power_cuts: int = 2
    network_drops: int = 5
    clones: int = 2
    database_url: str | None = None
    micropython_terminals: int = 0  # terminals whose records are rebuilt and signed under MicroPython
    adversaries: bool = True  # the hostile and mistaken actors of caisse.simulation.adversaries

    def problems(self) -> list[str]:
        """What makes this configuration unusable, in French (empty when it is fine)."""
        found = []
        if not 2 <= self.terminals <= 500:
            found.append("--terminals : entre 2 et 500")
        if not 2 <= self.members <= 20_000:
            found.append("--members : entre 2 et 20 000")
        if not 1 <= self.days <= 28:
            found.append("--days : entre 1 et 28")
        if min(self.power_cuts, self.network_drops, self.clones) < 0 or max(self.power_cuts, self.network_drops, self.clones) > 1000:
            found.append("--power-cuts, --network-drops, --clones : entre 0 et 1000")
        if not 0 <= self.micropython_terminals <= self.terminals:
            found.append("terminaux MicroPython : au plus le nombre de terminaux")
        return found


class _IbanNight(Protocol):
    @property
    def iban_night(self) -> int: ...


class Hostile(Protocol):
    """What the world asks of its hostile and mistaken actors (caisse.simulation.adversaries, which
    act on the world and are attached to it by `caisse.simulation.simulate`)."""

    revoked_terminals: set[int]

    @property
    def plan(self) -> _IbanNight: ...

    def plan_all(self, add: Callable[..., None], market_time: Callable[[int], int], day_start: Callable[[int], int]) -> None: ...

    def setup(self, session: Session) -> None: ...

    def settle_mid_change(self, run_date: date) -> None: ...


@dataclass(slots=True)
class Post:
    """A vendor and its terminal, as the simulation drives them."""

    vendor_id: int
    terminal_id: int
    stall: Stall
    link: Link


@dataclass(slots=True)
class Household:
    household_id: int
    members: int
    cards: list[MemberCard] = field(default_factory=list)


@dataclass(slots=True)
class NightlyRun:
    run_date: date
    paid_cents: int
    paid_records: int
    held: list[tuple[int, int, str]]


class World:
    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(f"caisse simulation {config.seed}")
        self.keys = SunKeys(meta_key=self.rng.randbytes(16), master_key=self.rng.randbytes(16))
        self.backend = Backend(database_url=config.database_url, start_s=SETUP_S, extra_settings={
            "card_master_key_hex": self.keys.master_key.hex(), "card_meta_key_hex": self.keys.meta_key.hex()})
        self.auditor = Auditor(basic_card_max_cents=self.backend.settings.basic_card_max_payment_cents)
        self.posts: list[Post] = []
        self.households: list[Household] = []
        self.nights: list[NightlyRun] = []
        self.allocations: list[allowances.AllocationReport] = []
        self._events: list[tuple[int, int, Callable[[], object]]] = []
        self._order = 0
        self._armed_power: dict[int, Fault] = {}  # terminal id -> power cut waiting to happen
        self.planned: list[Fault] = []  # every fault of the run, from the start
        self.adversaries: Hostile | None = None  # when config.adversaries, attached by caisse.simulation.simulate

    # ---- the caisse ------------------------------------------------------------------------

    def setup(self) -> None:
        with self.backend.session() as session:
            for index in range(self.config.terminals):
                self.posts.append(self._open_post(session, index))
            uids: set[bytes] = set()
            for index in range(self.config.members):
                self.households.append(self._register_household(session, index, uids))
        self.allocate("2026-03")

    def _open_post(self, session, index: int) -> Post:
        model = demo_data.VENDORS[index % len(demo_data.VENDORS)]
        vendor = vendor_service.create_vendor(
            session, name=f"{model.name} {index // len(demo_data.VENDORS) + 1}", kind=model.kind, zone=model.zone,
            market=model.market, iban=str(IBAN.generate("FR", bank_code="30006", account_code=f"{index + 1:011d}")))
        link = Link(self.backend.request)
        stall = Stall(name=f"{self.config.seed}:{index}", transport=link, now_s=SETUP_S)
        terminal = terminal_registry.register_terminal(session, vendor_id=vendor.id or 0, public_key_hex=stall.signer.public_key().hex())
        stall.provision(terminal.id or 0)
        return Post(vendor.id or 0, terminal.id or 0, stall, link)

    def _register_household(self, session, index: int, uids: set[bytes]) -> Household:
        members = self.rng.choices(demo_data.HOUSEHOLD_SIZES, demo_data.HOUSEHOLD_SIZE_WEIGHTS)[0]
        zone = demo_data.ZONE_CENTRE if index % 2 == 0 else demo_data.ZONE_MOSSON
        name = f"{self.rng.choice(demo_data.FIRST_NAMES)} {self.rng.choice(demo_data.SURNAMES)}"
        created = household_service.create_household(session, name=name, members=members, zone=zone)
        household = Household(created.id or 0, members)
        for _ in range(2 if members > 2 and self.rng.random() < 0.3 else 1):
            secure = self.rng.random() < SECURE_SHARE
            uid = self._new_uid(secure, uids)
            card_service.issue_card(session, household_id=household.household_id, uid_hex=uid.hex(),
                             card_type=CardType.SECURE if secure else CardType.BASIC)
            household.cards.append(MemberCard(uid, index, secure))
        return household

    def issue_card(self, session, household: Household, *, secure: bool) -> MemberCard:
        """One more card for a household (a UID no other card has)."""
        taken = {c.uid for h in self.households for c in h.cards}
        uid = self._new_uid(secure, taken)
        card_service.issue_card(session, household_id=household.household_id, uid_hex=uid.hex(),
                         card_type=CardType.SECURE if secure else CardType.BASIC)
        card = MemberCard(uid, self.households.index(household), secure)
        household.cards.append(card)
        return card

    def _new_uid(self, secure: bool, taken: set[bytes]) -> bytes:
        while True:  # NTAG 424 DNA: 7-byte NXP UID; basic cards: 4-byte MIFARE or 7-byte UIDs
            uid = bytes([0x04]) + self.rng.randbytes(6) if secure or self.rng.random() < 0.5 else \
                bytes([0x08]) + self.rng.randbytes(3)
            if uid not in taken:
                taken.add(uid)
                return uid

    def allocate(self, month: str) -> None:
        """The monthly allowance; the auditor compares it with the rule and the balances before it."""
        codes = [ledger.member_code(h.household_id) for h in self.households]
        with self.backend.session() as session:
            before = ledger.balances_by_code(session, codes=codes)
            self.allocations.append(allowances.allocate(session, month=month, settings=self.backend.settings))
        with self.backend.session() as session:
            self.auditor.on_allocation(session, month=Month.parse(month), settings=self.backend.settings,
                                       households=[(h.household_id, h.members) for h in self.households],
                                       balances_before=before)

    # ---- events ------------------------------------------------------------------------------

    def at(self, time_s: int, action: Callable[[], object]) -> None:
        """Run `action` at `time_s`; what it returns (a tap's record, say) is not kept."""
        self._order += 1
        heapq.heappush(self._events, (time_s, self._order, action))

    def run_until(self, end_s: int) -> None:
        while self._events and self._events[0][0] <= end_s:
            time_s, _, action = heapq.heappop(self._events)
            self.backend.move_to(time_s)
            for post in self.posts:
                post.stall.set_time(time_s)
            action()
        self.backend.move_to(end_s)

    # ---- days --------------------------------------------------------------------------------

    def run(self) -> None:
        self.setup()
        schedule = self._plan_faults()
        for day in range(self.config.days):
            midnight = day_start_s(day)
            if (FIRST_DAY + timedelta(days=day)).day == 1:
                self.at(midnight + 5 * HOUR, lambda d=day: self.allocate(f"{FIRST_DAY + timedelta(days=d):%Y-%m}"))
            self._plan_day(day, midnight)
            for fault, action in schedule.get(day, []):
                self.auditor.faults.append(fault)
                self.at(fault.time_s, action)
            if day == self.config.days - 1:
                self.at(midnight + 24 * HOUR + 30 * 60, self.drain)
            self.at(midnight + SETTLE_AT_S, lambda d=day: self.settle(FIRST_DAY + timedelta(days=d)))
            self.run_until(midnight + SETTLE_AT_S)

    def _plan_day(self, day: int, midnight: int) -> None:
        for index, post in enumerate(self.posts):
            for time_s in range(midnight + OPEN_S + index * 7, midnight + CLOSE_S, SYNC_EVERY_S):
                self.at(time_s, lambda p=post: self.sync(p))
            self.at(midnight + CLOSE_S + index * 7, lambda p=post: self.sync(p, forced=True))
        for household in self.households:
            for _ in range(self.rng.choice((0, 0, 1, 1, 1, 2, 2, 3))):
                time_s = midnight + self.rng.randrange(MARKET_START_S, MARKET_END_S)
                post = self.rng.choice(self.posts)
                card = self.rng.choice(household.cards)
                amount = self.rng.randrange(5_000, 12_000, 10) if self.rng.random() < 0.05 else self.rng.randrange(150, 4_500, 5)
                fix = self.rng.random() < VOID_SHARE
                self.at(time_s, lambda p=post, c=card, a=amount, f=fix: self.tap(p, c, a, fix=f))

    def _plan_faults(self) -> dict[int, list[tuple[Fault, Callable[[], None]]]]:
        """Every fault of the run: its day, time and target, drawn before the first day."""
        rng, days = self.rng, self.config.days
        plan: dict[int, list[tuple[Fault, Callable[[], None]]]] = {}

        def add(kind: FaultKind, day: int, time_s: int, action: Callable[[Fault], None], *,
                terminal_id: int | None = None, card_uid: bytes | None = None, detail: str = "") -> None:
            fault = Fault(kind, day, time_s, terminal_id=terminal_id, card_uid=card_uid, detail=detail)
            plan.setdefault(day, []).append((fault, lambda: action(fault)))
            self.planned.append(fault)

        def market_time(day: int) -> int:
            return day_start_s(day) + rng.randrange(MARKET_START_S, MARKET_END_S)

        for _ in range(self.config.power_cuts):
            day, post = rng.randrange(days), rng.randrange(len(self.posts))
            at_s = market_time(day)
            cut_after_units = rng.randrange(1, 400)
            add(FaultKind.POWER_CUT, day, at_s, lambda f, p=post, u=cut_after_units: self.arm_power_cut(f, p, u),
                terminal_id=self.posts[post].terminal_id)
        for index in range(self.config.network_drops):
            kind, day, post = NETWORK_FAULTS[index % len(NETWORK_FAULTS)], rng.randrange(days), rng.choice(self.posts)
            hours = rng.randrange(2, 11)
            add(kind, day, market_time(day), lambda f, p=post, h=hours: self.network_fault(f, p, h),
                terminal_id=post.terminal_id, detail=f"{hours} h" if kind == FaultKind.OFFLINE else "")
        lost = rng.choice(rng.choice(self.households).cards)
        day = days // 2
        add(FaultKind.LOST_CARD, day, day_start_s(day) + rng.randrange(9 * HOUR, 11 * HOUR), lambda f: self.lose_card(f),
            card_uid=lost.uid)
        basic = [c for h in self.households for c in h.cards if not c.secure and c.uid != lost.uid]
        secure = [c for h in self.households for c in h.cards if c.secure and c.uid != lost.uid]
        for index in range(self.config.clones):
            pool = secure if index % 2 else basic
            if not pool:
                continue
            card, day = rng.choice(pool), rng.randrange(days)
            kind = FaultKind.CLONE_SECURE if card.secure else FaultKind.CLONE_BASIC
            add(kind, day, market_time(day), lambda f, c=card: self.clone(f, c), card_uid=card.uid)
        add(FaultKind.TAMPER, 0, day_start_s(0) + 12 * HOUR + 45 * 60, self.tamper)
        if self.adversaries is not None:
            self.adversaries.plan_all(add, market_time, day_start_s)
            with self.backend.session() as session:
                self.adversaries.setup(session)
        return plan

    # ---- what happens ----------------------------------------------------------------------------

    def tap(self, post: Post, card: MemberCard, amount_cents: int, *, fix: bool = False, fault: Fault | None = None,
            uid: bytes | None = None, auth: bytes | None = None) -> tuple[int, int] | None:
        """A member (or whoever holds the card) pays; a tap cut by the power is tapped again.
        Returns the (terminal, seq) of the record the terminal approved, None when it declined."""
        post = self.in_service(post)

        def pay() -> TapOutcome:
            read = auth if uid is not None else card.read(self.keys)
            return self._operate(post, partial(post.stall.pay, hal.Card(uid or card.uid, read), amount_cents))
        outcome = pay()
        if outcome.decline == "power_cut":
            outcome = pay()
        household_id = self.households[card.household].household_id
        if outcome.body is None:
            self.auditor.declined[outcome.decline or "?"] += 1
            if fault is not None:
                fault.declined += 1
            return None
        approved = Approved(post.terminal_id, post.vendor_id, outcome.body, household_id, card.secure)
        self.auditor.on_approved(approved, fault)
        if fix:  # the vendor typed a wrong amount: voids it with the same card, keys it again
            now = self.backend.now_s
            self.at(now + 40, lambda: self.void(post, card))
            corrected = amount_cents + 100 if amount_cents < 1_000 else amount_cents - 100
            self.at(now + 70, lambda: self.tap(post, card, corrected))
        return (post.terminal_id, approved.seq)

    def in_service(self, post: Post) -> Post:
        """The post itself, or the next one in service when staff revoked its terminal (the vendor
        then takes payments on a neighbour's)."""
        revoked = self.adversaries.revoked_terminals if self.adversaries is not None else set()
        index = self.posts.index(post)
        for step in range(len(self.posts)):
            candidate = self.posts[(index + step) % len(self.posts)]
            if candidate.terminal_id not in revoked:
                return candidate
        return post

    def void(self, post: Post, card: MemberCard) -> tuple[int, int] | None:
        outcome = self._operate(post, lambda: post.stall.void_last(hal.Card(card.uid, card.read(self.keys))))
        if outcome.body is None:
            self.auditor.declined[outcome.decline or "?"] += 1
            return None
        household_id = self.households[card.household].household_id
        approved = Approved(post.terminal_id, post.vendor_id, outcome.body, household_id, card.secure)
        self.auditor.on_approved(approved)
        return (post.terminal_id, approved.seq)

    def sync(self, post: Post, *, forced: bool = False) -> None:
        client = post.stall.terminal.sync
        if client is not None and not forced and not client.due():
            return  # backing off after a failure, as the terminal's sync task does
        report = self._operate(post, post.stall.sync)
        if report is not None:
            self.auditor.duplicates += report.duplicates

    def _operate(self, post: Post, action: Callable[[], _Result]) -> _Result:
        """Run one terminal operation; a power cut armed on this terminal is marked as happened."""
        reboots = post.stall.reboots
        result = action()
        if post.stall.reboots > reboots and post.terminal_id in self._armed_power:
            self._armed_power.pop(post.terminal_id).triggered = True
        return result

    def drain(self) -> None:
        """After the last day: every network back, every terminal syncs until nothing is pending."""
        for post in self.posts:
            post.link.up = True
            for _ in range(MAX_DRAIN_SYNCS):
                self.sync(post, forced=True)
                log = post.stall.terminal.log
                if not log.unsigned and not log.pending(1) and log.acked_seq == log.next_seq - 1:
                    break

    def settle(self, run_date: date) -> None:
        if self.adversaries is not None and run_date == FIRST_DAY + timedelta(days=self.adversaries.plan.iban_night):
            self.adversaries.settle_mid_change(run_date)
            return
        self.record_night(run_date, settlement.settle(self.backend.sessions, run_date=run_date, settings=self.backend.settings))

    def record_night(self, run_date: date, result: settlement.SettleResult) -> None:
        self.nights.append(NightlyRun(run_date, result.paid_cents, result.paid_records, sorted(result.held)))

    # ---- faults ------------------------------------------------------------------------------------

    def arm_power_cut(self, fault: Fault, post_index: int, write_units: int) -> None:
        fault.detail = f"après {write_units} unités d'écriture"
        post = self.posts[post_index]
        self._armed_power[post.terminal_id] = fault
        post.stall.cut_power_after(write_units)

    def network_fault(self, fault: Fault, post: Post, hours: int) -> None:
        if fault.kind != FaultKind.OFFLINE:
            post.link.armed.append(fault)
            return
        post.link.up = False
        fault.triggered = True

        def back() -> None:
            post.link.up = True
        self.at(self.backend.now_s + hours * HOUR, back)

    def lose_card(self, fault: Fault) -> None:
        """The member reports the card lost; whoever found it taps it at three stalls."""
        assert fault.card_uid is not None
        with self.backend.session() as session:
            card_service.block_card(session, uid_hex=fault.card_uid.hex())
        self.auditor.on_block(fault.card_uid, self.backend.now_s)
        fault.triggered = True
        card = next(c for h in self.households for c in h.cards if c.uid == fault.card_uid)
        for step in range(3):
            post = self.rng.choice(self.posts)
            # Soon after the block, before most stalls' next sync (every 30 min) brings it.
            delay_s = (step + 1) * self.rng.randrange(120, 900)
            amount_cents = self.rng.randrange(500, 3000, 10)
            self.at(self.backend.now_s + delay_s, lambda p=post, a=amount_cents: self.tap(p, card, a, fault=fault))

    def clone(self, fault: Fault, card: MemberCard) -> None:
        """A copy of the card is used at two stalls: the UID alone (basic card), or one SUN
        message skimmed from the secure card and replayed."""
        skimmed = card.read(self.keys)
        fault.triggered = True
        for step in range(2):
            post = self.rng.choice(self.posts)
            delay_s = (step + 1) * self.rng.randrange(300, 3600)
            amount_cents = self.rng.randrange(300, 2500, 10)
            self.at(self.backend.now_s + delay_s, lambda p=post, a=amount_cents: self.tap(p, card, a, fault=fault, uid=card.uid, auth=skimmed))

    def tamper(self, fault: Fault) -> None:
        """Someone holding a terminal rewrites one of its uploaded payments with a higher amount:
        once keeping the old signature, once re-signed with the terminal's own key."""
        revoked = sorted(self.adversaries.revoked_terminals) if self.adversaries is not None else []
        with self.backend.session() as session:
            row = session.execute(select(col(TransactionRecord.terminal_id), col(TransactionRecord.raw))
                                  .where(col(TransactionRecord.status) == RecordStatus.ACCEPTED, col(TransactionRecord.kind) == 1)
                                  .where(col(TransactionRecord.terminal_id).notin_(revoked))
                                  .order_by(col(TransactionRecord.id).desc()).limit(1)).first()
        if row is None:
            return
        post = next(p for p in self.posts if p.terminal_id == row.terminal_id)
        fault.terminal_id, fault.triggered = post.terminal_id, True
        genuine = protocol.decode(bytes(row.raw))
        forged = replace(genuine, amount_cents=genuine.amount_cents + 10_000)
        kept = forged.body() + genuine.signature
        resigned = forged.body() + post.stall.signer.sign_digest(forged.digest())
        payload = {"records": [base64.b64encode(raw).decode("ascii") for raw in (kept, resigned)]}
        status, _ = self.backend.request("POST", f"/v1/terminals/{post.terminal_id}/batches",
                                         {"Content-Type": "application/json"}, json.dumps(payload).encode())
        if status != 200:
            raise SimulationError(f"l'envoi falsifié a reçu {status}")
        fault.detail = f"montant +100,00 € sur le terminal {post.terminal_id}"


def day_start_s(day: int) -> int:
    """Midnight UTC of the run's day `day`."""
    return int(datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time(), tzinfo=UTC).timestamp())
