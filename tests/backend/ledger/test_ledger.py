"""Ledger invariants (docs/ledger.md), and hypothesis trying to break them."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.config import Settings
from caisse.errors import Conflict
from caisse.ingest.upload import ingest_batch
from caisse.ledger import postings as ledger
from caisse.members import households as household_service
from tests.backend.audit import assert_ledger_invariants
from tests.backend.factories import make_world, new_uid


def _two_accounts(session: Session) -> tuple[int, int]:
    """The fund and the fees account: a pair a known kind of transfer joins (a fee), so the
    auditor's check of each kind's accounts holds too."""
    a = ledger.ensure_account(session, code="fund", kind="fund")
    b = ledger.ensure_account(session, code="expense:fees", kind="expense")
    session.commit()
    return a, b


def test_a_transfer_moves_the_amount_between_two_balances(session: Session) -> None:
    a, b = _two_accounts(session)
    ledger.post_transfer(session, debit=a, credit=b, amount_cents=250, kind="fee", reference="t1")
    session.commit()
    assert ledger.balance_cents(session, code="fund") == -250
    assert ledger.balance_cents(session, code="expense:fees") == 250
    assert_ledger_invariants(session)


def test_posting_a_reference_twice_fails_and_rolls_back_the_transaction(session: Session) -> None:
    a, b = _two_accounts(session)
    ledger.post_transfer(session, debit=a, credit=b, amount_cents=100, kind="fee", reference="once")
    session.commit()
    with pytest.raises(IntegrityError):
        ledger.post_transfer(session, debit=a, credit=b, amount_cents=100, kind="fee", reference="once")
    session.rollback()
    assert ledger.balance_cents(session, code="expense:fees") == 100
    assert_ledger_invariants(session)


@pytest.mark.parametrize("amount_cents", [0, -5])
def test_a_transfer_of_a_non_positive_amount_is_refused(session: Session, amount_cents: int) -> None:
    a, b = _two_accounts(session)
    with pytest.raises(AssertionError):
        ledger.post_transfer(session, debit=a, credit=b, amount_cents=amount_cents, kind="fee", reference="bad")


def test_a_transfer_to_the_same_account_is_refused(session: Session) -> None:
    a, _ = _two_accounts(session)
    with pytest.raises(AssertionError):
        ledger.post_transfer(session, debit=a, credit=a, amount_cents=1, kind="fee", reference="self")


def test_a_credit_reference_is_idempotent_and_conflicts_with_another_body(session: Session) -> None:
    world = make_world(session, balance_cents=0)
    first = household_service.credit_household(session, household_id=world.household_id, amount_cents=15_000, reference="2026-01")
    again = household_service.credit_household(session, household_id=world.household_id, amount_cents=15_000, reference="2026-01")
    assert (first.created, again.created) == (True, False)
    with pytest.raises(Conflict):
        household_service.credit_household(session, household_id=world.household_id, amount_cents=14_000, reference="2026-01")
    session.commit()
    assert household_service.household_balance_cents(session, household_id=world.household_id) == 15_000
    assert_ledger_invariants(session)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(1, 20_000)),  # above 15 000: over_limit
        st.tuples(st.just("void"), st.integers(0, 30)),  # seq offset from the end: may hit a non-payment
        st.tuples(st.just("resend"), st.integers(0, 30)),
        st.tuples(st.just("credit"), st.integers(1, 50_000)),
        st.tuples(st.just("stranger"), st.integers(1, 500)),  # unknown card
        st.tuples(st.just("block"), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=operations, batch_size=st.integers(1, 6))
def test_random_payments_voids_resends_and_credits_never_break_an_invariant(
    session: Session, settings: Settings, plan: list[tuple[str, int]], batch_size: int
) -> None:
    world = make_world(session, balance_cents=20_000)
    chain, pending = world.chain, []
    for operation, value in plan:
        if operation == "pay":
            pending.append(chain.pay(world.uid, value))
        elif operation == "stranger":
            pending.append(chain.pay(new_uid(), value))
        elif operation == "void" and chain.records:
            target = chain.records[max(0, len(chain.records) - 1 - value)]
            pending.append(chain.void(target.seq) if target.kind == 1 else chain.void(target.ref_seq or 1))
        elif operation == "resend" and chain.records:
            pending.append(chain.raw(max(1, len(chain.records) - value)))
        elif operation == "credit":
            household_service.credit_household(session, household_id=world.household_id, amount_cents=value)
            session.commit()
        elif operation == "block":
            card_service.block_card(session, uid_hex=world.uid.hex())
            session.commit()
        if len(pending) >= batch_size:
            ingest_batch(session, terminal_id=world.terminal_id, raw_records=pending, settings=settings)
            session.commit()
            pending = []
            assert_ledger_invariants(session)
    ingest_batch(session, terminal_id=world.terminal_id, raw_records=pending, settings=settings)
    session.commit()
    assert_ledger_invariants(session)
