"""Held records: not paid until a person decides; release pays, reject refunds the member once."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, select, update
from sqlmodel import Session

from caisse import audit
from caisse.cards import service as card_service
from caisse.cards import versions
from caisse.config import Settings
from caisse.errors import Conflict, InvalidInput, NotFound
from caisse.ingest import review
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from caisse.members import sortition
from caisse.models import AuditEvent, Card, ConsoleUser, TransactionRecord
from caisse.settlement import runs as settlement
from caisse.settlement import statements
from caisse.staff import accounts
from caisse.terminals import sync
from caisse.vendors import service as vendor_service
from tests.backend.audit import assert_ledger_invariants
from tests.backend.factories import T0
from tests.backend.settlement.test_settlement import DAY1, Market, _paid_cents, _settle

DAY2 = date(2026, 1, 2)
DAY3 = date(2026, 1, 3)

pytestmark = pytest.mark.usefixtures("deciders")  # review decisions name active console accounts


def _record_id(session: Session, market: Market, seq: int, index: int = 0) -> int:
    terminal_id = market.chains[index].terminal_id
    found = session.execute(select(TransactionRecord.id).where(  # type: ignore[call-overload]
        TransactionRecord.terminal_id == terminal_id, TransactionRecord.seq == seq)).scalar_one()
    session.commit()  # end the read: on SQLite every transaction holds the write lock
    return int(found)


def _hold(session: Session, market: Market, seq: int) -> int:
    record_id = _record_id(session, market, seq)
    assert review.hold(session, record_ids=[record_id], reason="compteur SUN déjà vu") == 1
    session.commit()
    return record_id



def _balance(session: Session, household_id: int) -> int:
    balance = household_service.household_balance_cents(session, household_id=household_id)
    session.commit()  # end the read: on SQLite every transaction holds the write lock
    return balance


def test_a_held_payment_is_not_paid_and_is_listed_with_its_reason(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    market.pay(0, 300)
    record_id = _hold(session, market, 1)
    result = _settle(engine, rules, DAY1)
    assert result.paid_cents == 300
    assert result.held == [(market.vendor_ids[0], 1_000, settlement.HELD_REVIEW)]
    assert [held.record_id for held in statements.held_for_review(session, vendor_id=market.vendor_ids[0])] == [record_id]
    assert statements.held_for_review(session, vendor_id=market.vendor_ids[1]) == []


def test_a_released_payment_is_paid_by_the_next_run(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    record_id = _hold(session, market, 1)
    assert _settle(engine, rules, DAY1).paid_cents == 0
    released = review.release(session, record_id=record_id, by="tresoriere@caisse.test")
    session.commit()
    assert (released.review, released.reviewed_by) == ("released", "tresoriere@caisse.test")
    assert _settle(engine, rules, DAY2).paid_cents == 1_000
    assert _paid_cents(session) == 1_000


def test_a_rejected_payment_is_refunded_once_and_never_paid(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    household = card_service.get_card(session, uid_hex=market.uid.hex()).household_id
    before = _balance(session, household)
    market.pay(0, 1_000)
    record_id = _hold(session, market, 1)
    review.reject(session, record_id=record_id, by="coordinatrice@caisse.test")
    session.commit()
    assert _balance(session, household) == before
    assert vendor_service.vendor_payable_cents(session, vendor_id=market.vendor_ids[0]) == 0
    market.upload(0, [market.chains[0].void(1)])  # the terminal voids it afterwards: refused, no second refund
    assert _balance(session, household) == before
    result = _settle(engine, rules, DAY1)
    assert (result.paid_cents, result.held) == (0, [])
    assert_ledger_invariants(session)


def test_a_void_is_not_settled_while_its_payment_is_held(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    household = card_service.get_card(session, uid_hex=market.uid.hex()).household_id
    before = _balance(session, household)
    market.pay(0, 1_000)
    market.pay(0, 200)
    record_id = _hold(session, market, 1)
    market.upload(0, [market.chains[0].void(1)])
    assert _settle(engine, rules, DAY1).paid_cents == 200  # not 200 - 1000
    review.reject(session, record_id=record_id, by="coordinatrice@caisse.test")  # already voided: no reversal
    session.commit()
    assert _balance(session, household) == before - 200
    assert _settle(engine, rules, DAY2).paid_cents == 0
    assert_ledger_invariants(session)


def test_a_decision_is_final_and_only_held_records_are_decided(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    market.pay(0, 500)
    record_id = _hold(session, market, 1)
    review.release(session, record_id=record_id, by="a@caisse.test")
    session.commit()
    with pytest.raises(Conflict):
        review.reject(session, record_id=record_id, by="b@caisse.test")
    with pytest.raises(Conflict):
        review.release(session, record_id=_record_id(session, market, 2), by="b@caisse.test")
    with pytest.raises(NotFound):
        review.release(session, record_id=10**9, by="b@caisse.test")
    assert review.hold(session, record_ids=[record_id], reason="again") == 0  # decided records stay decided


def test_a_settled_record_cannot_be_held(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    _settle(engine, rules, DAY1)
    assert review.hold(session, record_ids=[_record_id(session, market, 1)], reason="trop tard") == 0


@pytest.mark.parametrize("record_id", [0, -1, 2**31, 2**63, 10**30])
def test_an_id_no_record_can_have_is_not_found(session: Session, record_id: int) -> None:
    """Console paths and CLI arguments take any integer: past the INTEGER range the drivers raise
    (OverflowError on SQLite) instead of finding nothing."""
    for decide in (review.release, review.reject):
        with pytest.raises(NotFound):
            decide(session, record_id=record_id, by="b@caisse.test")
    with pytest.raises(NotFound):
        settlement.get_run(session, run_id=record_id)
    with pytest.raises(NotFound):
        sortition.get_draw(session, draw_id=record_id)
    with pytest.raises(NotFound):
        household_service.get_household(session, household_id=record_id)


def test_two_people_deciding_at_once_cannot_both_pay_the_vendor_and_refund_the_member(
    session: Session, engine: Engine, rules: Settings
) -> None:
    """Without the row lock, a reject that read the record before a concurrent release committed
    refunded the member while the release let the vendor be paid: the payment paid twice."""
    import threading
    import time

    from sqlalchemy import text

    from caisse.db import session_factory

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: two decisions never overlap")
    market = Market(session, rules)
    household = card_service.get_card(session, uid_hex=market.uid.hex()).household_id
    market.pay(0, 1_000)
    after_payment = _balance(session, household)
    record_id = _hold(session, market, 1)
    outcome: list[BaseException | None] = []
    rejecter_pid: list[int] = []

    def reject() -> None:
        with session_factory(engine)() as other:
            rejecter_pid.append(other.execute(text("SELECT pg_backend_pid()")).scalar_one())
            try:
                review.reject(other, record_id=record_id, by="coordinatrice@caisse.test")
                other.commit()
                outcome.append(None)
            except Conflict as error:
                outcome.append(error)

    with session_factory(engine)() as first:
        review.release(first, record_id=record_id, by="tresoriere@caisse.test")  # not committed yet
        rejecter = threading.Thread(target=reject)
        rejecter.start()
        deadline = time.monotonic() + 30
        while rejecter.is_alive() and not (rejecter_pid and _waits_for_a_lock(engine, rejecter_pid[0])):
            assert time.monotonic() < deadline, "the reject neither finished nor waited"
            rejecter.join(timeout=0.05)
        first.commit()
    rejecter.join(timeout=60)
    assert not rejecter.is_alive()
    assert isinstance(outcome[0], Conflict) and outcome[0].code == "record_not_held"
    assert _balance(session, household) == after_payment  # no refund: the vendor is paid instead
    assert _settle(engine, rules, DAY1).paid_cents == 1_000
    assert_ledger_invariants(session)


def _waits_for_a_lock(engine: Engine, pid: int) -> bool:
    from sqlalchemy import text

    with engine.connect() as connection:
        return bool(connection.execute(text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted"),
                                       {"pid": pid}).scalar_one())


# Held money: vendor_held, decisions that move it, voids that follow their payment --------------

def _accounts(session: Session, market: Market, index: int = 0) -> tuple[int, int, int]:
    """(member, vendor_payable, vendor_held) of the market's household and vendor `index`."""
    session.expire_all()
    household = card_service.get_card(session, uid_hex=market.uid.hex()).household_id
    vendor = market.vendor_ids[index]
    balances = (ledger.balance_cents(session, code=code) for code in (
        ledger.member_code(household), ledger.vendor_payable_code(vendor), ledger.vendor_held_code(vendor)))
    result = tuple(balances)
    session.commit()
    return result  # type: ignore[return-value]


def _payable(session: Session, market: Market, index: int = 0) -> int:
    session.expire_all()
    cents = vendor_service.vendor_payable_cents(session, vendor_id=market.vendor_ids[index])
    session.commit()
    return cents


def _block_card_unknown_to_the_terminal(session: Session, market: Market) -> None:
    """The card is blocked (stolen) since T0, and terminal 0 proved it held the deny list only
    from before: its later records of the card are accepted and held (docs/cards.md)."""
    sync.record_version_held(session, terminal_id=market.chains[0].terminal_id, since=versions.current_cards_version(session))
    card_service.block_card(session, uid_hex=market.uid.hex(), reason="stolen")
    session.execute(update(Card).where(Card.uid == market.uid).values(blocked_at=datetime.fromtimestamp(T0, UTC)))  # type: ignore[arg-type]
    session.commit()


def test_rejecting_a_void_held_on_arrival_refunds_nothing_and_the_vendor_is_paid_once(
    session: Session, engine: Engine, rules: Settings
) -> None:
    """On the code before vendor_held: the void refunded the member at once, the run paid the
    payment anyway, and rejecting the void moved nothing: member refunded and vendor paid,
    vendor_payable at -30 EUR for good."""
    market = Market(session, rules)
    household = card_service.get_card(session, uid_hex=market.uid.hex()).household_id
    market.pay(0, 3_000)
    member = _balance(session, household)
    _block_card_unknown_to_the_terminal(session, market)
    market.upload(0, [market.chains[0].void(1)])
    void_id = _record_id(session, market, 2)
    first = _settle(engine, rules, DAY1)
    review.reject(session, record_id=void_id, by="coordinatrice@caisse.test")
    session.commit()
    second = _settle(engine, rules, DAY2)
    # The void never happened: the member is not refunded, the vendor is paid once, nothing left over.
    assert (_balance(session, household), _paid_cents(session), _payable(session, market)) == (member, 3_000, 0)
    assert (first.paid_cents, second.paid_cents) == (0, 3_000)  # the payment waited for its void's decision
    assert first.held == [(market.vendor_ids[0], 0, settlement.HELD_REVIEW)]
    assert settlement.payable_differences(session) == []
    assert_ledger_invariants(session)


def test_releasing_a_void_held_on_arrival_refunds_the_member_and_nets_the_payment(
    session: Session, engine: Engine, rules: Settings
) -> None:
    market = Market(session, rules)
    market.pay(0, 3_000)
    member, _, _ = _accounts(session, market)
    _block_card_unknown_to_the_terminal(session, market)
    market.upload(0, [market.chains[0].void(1)])
    assert _accounts(session, market) == (member, 0, 3_000)  # the vendor charged, the member not refunded yet
    assert _settle(engine, rules, DAY1).paid_cents == 0
    review.release(session, record_id=_record_id(session, market, 2), by="tresoriere@caisse.test")
    session.commit()
    assert _accounts(session, market) == (member + 3_000, 0, 0)
    result = _settle(engine, rules, DAY2)
    assert (result.paid_cents, result.paid_records, _paid_cents(session)) == (0, 2, 0)
    assert_ledger_invariants(session)


def test_a_void_held_after_it_refunded_the_member_holds_its_payment_with_it(
    session: Session, engine: Engine, rules: Settings
) -> None:
    """On the code before vendor_held, holding an accepted void held the void alone: the run paid
    its payment, and rejecting the void left the member refunded and the vendor paid."""
    market = Market(session, rules)
    household = card_service.get_card(session, uid_hex=market.uid.hex()).household_id
    market.pay(0, 3_000)
    member = _balance(session, household)
    market.upload(0, [market.chains[0].void(1)])  # the member is refunded at once
    payment_id, void_id = _record_id(session, market, 1), _record_id(session, market, 2)
    review.hold(session, record_ids=[void_id], reason="annulation douteuse")
    session.commit()
    first = _settle(engine, rules, DAY1)
    review.reject(session, record_id=void_id, by="coordinatrice@caisse.test")  # decides the pair
    session.commit()
    second = _settle(engine, rules, DAY2)
    # Refunded by its void, the payment is never paid to the vendor: nothing left over.
    assert (_balance(session, household), _paid_cents(session), _payable(session, market)) == (member + 3_000, 0, 0)
    assert (first.paid_cents, second.paid_cents) == (0, 0)
    assert [r.review for r in _records(session, payment_id, void_id)] == ["rejected", "rejected"]
    assert_ledger_invariants(session)


def test_a_void_of_a_held_payment_gives_the_held_money_back_and_follows_the_decision(
    session: Session, engine: Engine, rules: Settings
) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    member, _, _ = _accounts(session, market)
    payment_id = _hold(session, market, 1)
    assert _accounts(session, market) == (member, 0, 1_000)
    market.upload(0, [market.chains[0].void(1)])
    void_id = _record_id(session, market, 2)
    assert _accounts(session, market) == (member + 1_000, 0, 0)
    [void] = _records(session, void_id)
    assert (void.review, void.hold_reason) == ("held", review.FOLLOWS_PAYMENT)
    review.release(session, record_id=void_id, by="tresoriere@caisse.test")  # deciding either decides both; no money moves
    session.commit()
    assert [r.review for r in _records(session, payment_id, void_id)] == ["released", "released"]
    assert _accounts(session, market) == (member + 1_000, 0, 0)
    result = _settle(engine, rules, DAY1)
    assert (result.paid_cents, result.paid_records) == (0, 2)
    assert_ledger_invariants(session)


@pytest.mark.parametrize("decision", ["release", "reject"])
def test_a_decision_moves_a_held_payment_out_of_vendor_held(session: Session, engine: Engine, rules: Settings, decision: str) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    member, _, _ = _accounts(session, market)
    record_id = _hold(session, market, 1)
    assert _accounts(session, market) == (member, 0, 1_000)
    getattr(review, decision)(session, record_id=record_id, by="tresoriere@caisse.test")
    session.commit()
    expected = (member, 1_000, 0) if decision == "release" else (member + 1_000, 0, 0)
    assert _accounts(session, market) == expected
    assert_ledger_invariants(session)


def test_each_decision_is_audited_by_the_service_with_the_person_who_made_it(session: Session, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    record_id = _hold(session, market, 1)
    for not_a_person in (" ", "Claire", accounts.SYSTEM):  # a typed name, the system: no console account
        with pytest.raises(InvalidInput):
            review.reject(session, record_id=record_id, by=not_a_person)
    session.execute(update(ConsoleUser).where(ConsoleUser.email == "b@caisse.test").values(active=False))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="not an active console account"):
        review.release(session, record_id=record_id, by="b@caisse.test")
    session.rollback()
    assert session.get(TransactionRecord, record_id).review == "held"  # type: ignore[union-attr]
    review.reject(session, record_id=record_id, by=" Claire@Caisse.test ", os_user="claire-os")
    session.commit()
    [event] = audit.events(session, subjects=[f"record:{record_id}"])
    assert (event.actor, event.action) == ("claire@caisse.test", "record.reject")  # the account as stored
    assert json.loads(event.detail or "{}")["os_user"] == "claire-os"


def test_every_held_record_of_a_terminal_or_a_vendor_is_decided_at_once_each_audited(
    session: Session, engine: Engine, rules: Settings
) -> None:
    market = Market(session, rules)
    for amount in (100, 200, 300):
        market.pay(0, amount)
    market.pay(1, 400)
    ids = [_record_id(session, market, seq) for seq in (1, 2, 3)] + [_record_id(session, market, 1, index=1)]
    assert review.hold(session, record_ids=ids, reason="vérification") == 4
    session.commit()
    released = review.decide_all(session, decision=review.Decision.RELEASE, by="tresoriere@caisse.test", terminal_id=market.chains[0].terminal_id)
    session.commit()
    assert released == ids[:3]
    rejected = review.decide_all(session, decision=review.Decision.REJECT, by="coordinatrice@caisse.test", vendor_id=market.vendor_ids[1])
    session.commit()
    assert rejected == ids[3:]
    events = session.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.subject)
                             .where(AuditEvent.action.startswith("record.")).order_by(AuditEvent.id)).all()  # type: ignore[union-attr]
    assert [tuple(e) for e in events] == [("tresoriere@caisse.test", "record.release", f"record:{i}") for i in ids[:3]] + [
        ("coordinatrice@caisse.test", "record.reject", f"record:{ids[3]}")]
    session.commit()
    assert _settle(engine, rules, DAY1).paid_cents == 600
    with pytest.raises(InvalidInput):
        review.decide_all(session, decision=review.Decision.RELEASE, by="x@caisse.test", terminal_id=1, vendor_id=1)
    assert_ledger_invariants(session)


def _records(session: Session, *ids: int) -> list[TransactionRecord]:
    session.expire_all()
    found = {r.id: r for r in session.execute(select(TransactionRecord).where(TransactionRecord.id.in_(ids))).scalars()}  # type: ignore[union-attr]
    session.commit()
    return [found[i] for i in ids]


def test_a_void_uploaded_while_its_payment_is_being_released_is_posted_as_the_release_left_it(
    session: Session, engine: Engine, rules: Settings
) -> None:
    """A decision locks its records' terminal as an upload does. Without that, an upload read the
    payment as held while a release was committing, posted its void from vendor_held as a void
    that follows its payment, and vendor_held ended below zero with the vendor paid in full."""
    import threading
    import time

    from sqlalchemy import text

    from caisse.db import session_factory
    from caisse.ingest.upload import ingest_batch

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a decision and an upload never overlap")
    market = Market(session, rules)
    market.pay(0, 1_000)
    member, _, _ = _accounts(session, market)
    record_id = _hold(session, market, 1)
    void = market.chains[0].void(1)
    uploader_pid: list[int] = []

    def upload() -> None:
        with session_factory(engine)() as other:
            uploader_pid.append(other.execute(text("SELECT pg_backend_pid()")).scalar_one())
            ingest_batch(other, terminal_id=market.chains[0].terminal_id, raw_records=[void], settings=rules)
            other.commit()

    with session_factory(engine)() as deciding:
        review.release(deciding, record_id=record_id, by="tresoriere@caisse.test")  # not committed yet
        uploader = threading.Thread(target=upload)
        uploader.start()
        deadline = time.monotonic() + 30
        while uploader.is_alive() and not (uploader_pid and _waits_for_a_lock(engine, uploader_pid[0])):
            assert time.monotonic() < deadline, "the upload neither finished nor waited"
            uploader.join(timeout=0.05)
        deciding.commit()
    uploader.join(timeout=60)
    assert not uploader.is_alive()
    assert _accounts(session, market) == (member + 1_000, 0, 0)  # released, then voided: nothing held, nothing owed
    assert _settle(engine, rules, DAY1).paid_cents == 0
    assert_ledger_invariants(session)
