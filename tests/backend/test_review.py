"""Held records: not paid until a person decides; release pays, reject refunds the member once."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from caisse import admin, review, settlement, sortition, statements
from caisse.config import Settings
from caisse.errors import Conflict, NotFound
from caisse.models import TransactionRecord
from tests.backend.audit import assert_ledger_invariants
from tests.backend.test_settlement import DAY1, Market, _paid_cents, _settle, folder, rules  # noqa: F401

DAY2 = date(2026, 1, 2)


def _record_id(session: Session, market: Market, seq: int, index: int = 0) -> int:
    terminal_id = market.chains[index].terminal_id
    found = session.execute(select(TransactionRecord.id).where(  # type: ignore[call-overload]
        TransactionRecord.terminal_id == terminal_id, TransactionRecord.seq == seq)).scalar_one()
    return int(found)


def _hold(session: Session, market: Market, seq: int) -> int:
    record_id = _record_id(session, market, seq)
    assert review.hold(session, record_ids=[record_id], reason="compteur SUN déjà vu") == 1
    session.commit()
    return record_id



def _balance(session: Session, household_id: int) -> int:
    balance = admin.household_balance_cents(session, household_id=household_id)
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
    released = review.release(session, record_id=record_id, by="trésorière")
    session.commit()
    assert (released.review, released.reviewed_by) == ("released", "trésorière")
    assert _settle(engine, rules, DAY2).paid_cents == 1_000
    assert _paid_cents(session) == 1_000


def test_a_rejected_payment_is_refunded_once_and_never_paid(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    household = admin.get_card(session, uid_hex=market.uid.hex()).household_id
    before = _balance(session, household)
    market.pay(0, 1_000)
    record_id = _hold(session, market, 1)
    review.reject(session, record_id=record_id, by="coordinatrice")
    session.commit()
    assert _balance(session, household) == before
    assert admin.vendor_payable_cents(session, vendor_id=market.vendor_ids[0]) == 0
    market.upload(0, [market.chains[0].void(1)])  # the terminal voids it afterwards: refused, no second refund
    assert _balance(session, household) == before
    result = _settle(engine, rules, DAY1)
    assert (result.paid_cents, result.held) == (0, [])
    assert_ledger_invariants(session)


def test_a_void_is_not_settled_while_its_payment_is_held(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    household = admin.get_card(session, uid_hex=market.uid.hex()).household_id
    before = _balance(session, household)
    market.pay(0, 1_000)
    market.pay(0, 200)
    record_id = _hold(session, market, 1)
    market.upload(0, [market.chains[0].void(1)])
    assert _settle(engine, rules, DAY1).paid_cents == 200  # not 200 - 1000
    review.reject(session, record_id=record_id, by="coordinatrice")  # already voided: no reversal
    session.commit()
    assert _balance(session, household) == before - 200
    assert _settle(engine, rules, DAY2).paid_cents == 0
    assert_ledger_invariants(session)


def test_a_decision_is_final_and_only_held_records_are_decided(session: Session, engine: Engine, rules: Settings) -> None:
    market = Market(session, rules)
    market.pay(0, 1_000)
    market.pay(0, 500)
    record_id = _hold(session, market, 1)
    review.release(session, record_id=record_id, by="a")
    session.commit()
    with pytest.raises(Conflict):
        review.reject(session, record_id=record_id, by="b")
    with pytest.raises(Conflict):
        review.release(session, record_id=_record_id(session, market, 2), by="b")
    with pytest.raises(NotFound):
        review.release(session, record_id=10**9, by="b")
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
            decide(session, record_id=record_id, by="b")
    with pytest.raises(NotFound):
        settlement.get_run(session, run_id=record_id)
    with pytest.raises(NotFound):
        sortition.get_draw(session, draw_id=record_id)
    with pytest.raises(NotFound):
        admin.get_household(session, household_id=record_id)


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
    household = admin.get_card(session, uid_hex=market.uid.hex()).household_id
    market.pay(0, 1_000)
    after_payment = _balance(session, household)
    record_id = _hold(session, market, 1)
    outcome: list[BaseException | None] = []
    rejecter_pid: list[int] = []

    def reject() -> None:
        with session_factory(engine)() as other:
            rejecter_pid.append(other.execute(text("SELECT pg_backend_pid()")).scalar_one())
            try:
                review.reject(other, record_id=record_id, by="coordinatrice")
                other.commit()
                outcome.append(None)
            except Conflict as error:
                outcome.append(error)

    with session_factory(engine)() as first:
        review.release(first, record_id=record_id, by="trésorière")  # not committed yet
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
