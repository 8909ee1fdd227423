"""Ingestion (docs/protocol.md#upload): every outcome, ordering, idempotency, acked_seq."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.cards import versions
from caisse.config import Settings
from caisse.ingest import upload as ingest
from caisse.ingest.upload import Outcome, Reason, ingest_batch
from caisse.ledger import postings as ledger
from caisse.models import RejectedUpload, Terminal, TransactionRecord
from caisse.terminals import sync
from caisse_common import protocol
from tests.backend.factories import T0, World, make_world, new_key, new_uid


def _ingest(session: Session, world: World, records: list[bytes], settings: Settings):  # type: ignore[no-untyped-def]
    result = ingest_batch(session, terminal_id=world.terminal_id, raw_records=records, settings=settings)
    session.commit()
    return result


def _balances(session: Session, world: World) -> tuple[int, int]:
    return (
        ledger.balance_cents(session, code=ledger.member_code(world.household_id)),
        ledger.balance_cents(session, code=ledger.vendor_payable_code(world.vendor_id)),
    )


def _stored_count(session: Session, world: World) -> int:
    return session.execute(
        select(func.count()).select_from(TransactionRecord).where(TransactionRecord.terminal_id == world.terminal_id)
    ).scalar_one()


def _terminal_status(session: Session, world: World) -> str:
    session.expire_all()
    terminal = session.get(Terminal, world.terminal_id)
    assert terminal is not None
    return terminal.status


def test_a_payment_is_accepted_and_moves_money_from_member_to_vendor(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    result = _ingest(session, world, [world.chain.pay(world.uid, 1_250)], settings)
    assert [(r.seq, r.status) for r in result.results] == [(1, Outcome.ACCEPTED)]
    assert result.acked_seq == 1
    assert _balances(session, world) == (8_750, 1_250)


def test_resending_the_same_bytes_is_a_duplicate_and_changes_nothing(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    raw = world.chain.pay(world.uid, 500)
    _ingest(session, world, [raw], settings)
    result = _ingest(session, world, [raw, raw], settings)
    assert [r.status for r in result.results] == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert _balances(session, world) == (9_500, 500)
    assert _stored_count(session, world) == 1


def test_the_same_bytes_twice_in_one_batch_are_accepted_once(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    raw = world.chain.pay(world.uid, 700)
    result = _ingest(session, world, [raw, raw], settings)
    assert [r.status for r in result.results] == [Outcome.ACCEPTED, Outcome.DUPLICATE]
    assert _balances(session, world) == (9_300, 700)


def test_a_void_reverses_its_payment_and_a_second_void_is_unknown_payment(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    records = [world.chain.pay(world.uid, 2_000), world.chain.void(1), world.chain.void(1)]
    result = _ingest(session, world, records, settings)
    assert [r.status for r in result.results] == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.REJECTED]
    assert result.results[2].reason == Reason.UNKNOWN_PAYMENT
    assert _balances(session, world) == (10_000, 0)
    assert result.acked_seq == 3  # a business rejection is stored: it counts for acked_seq


def test_a_void_with_another_amount_or_card_is_unknown_payment(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    records = [world.chain.pay(world.uid, 2_000), world.chain.void(1, amount_cents=1_999), world.chain.void(1, card_uid=new_uid())]
    result = _ingest(session, world, records, settings)
    assert [r.reason for r in result.results[1:]] == [Reason.UNKNOWN_PAYMENT, Reason.UNKNOWN_CARD]
    assert _balances(session, world) == (8_000, 2_000)


def test_a_void_of_a_payment_stored_in_an_earlier_batch_reverses_it(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    _ingest(session, world, [world.chain.pay(world.uid, 2_000)], settings)
    result = _ingest(session, world, [world.chain.void(1)], settings)
    assert result.results[0].status == Outcome.ACCEPTED
    assert _balances(session, world) == (10_000, 0)
    voided = session.execute(select(TransactionRecord.voided)
                             .where(TransactionRecord.seq == 1, TransactionRecord.terminal_id == world.terminal_id)).scalar_one()
    assert voided is True


def test_an_amount_above_the_maximum_is_over_limit_stored_and_posts_nothing(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=100_000)
    result = _ingest(session, world, [world.chain.pay(world.uid, settings.max_payment_cents + 1)], settings)
    assert result.results[0].reason == Reason.OVER_LIMIT
    assert result.acked_seq == 1
    assert _balances(session, world) == (100_000, 0)
    assert _stored_count(session, world) == 1


def test_an_unknown_card_is_rejected_and_stored(session: Session, settings: Settings) -> None:
    world = make_world(session)
    result = _ingest(session, world, [world.chain.pay(new_uid(), 100)], settings)
    assert result.results[0].reason == Reason.UNKNOWN_CARD
    assert _stored_count(session, world) == 1


def test_a_tap_after_the_block_is_card_blocked_and_a_tap_before_it_is_accepted(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    card_service.block_card(session, uid_hex=world.uid.hex())
    # The terminal syncs and proves it holds the block (a terminal that had not: tests/backend/cards/test_cards.py).
    sync.record_version_held(session, terminal_id=world.terminal_id, since=versions.current_cards_version(session))
    session.commit()
    now = int(__import__("time").time())
    records = [world.chain.pay(world.uid, 100, time=now - 3_600), world.chain.pay(world.uid, 200, time=now + 60)]
    result = _ingest(session, world, records, settings)
    assert [r.status for r in result.results] == [Outcome.ACCEPTED, Outcome.REJECTED]
    assert result.results[1].reason == Reason.CARD_BLOCKED
    assert _balances(session, world) == (9_900, 100)


def test_malformed_and_wrong_terminal_records_are_logged_not_stored(session: Session, settings: Settings) -> None:
    world = make_world(session)
    good = world.chain.pay(world.uid, 100)
    other = replace(protocol.decode(good), terminal_id=world.terminal_id + 1)
    records = [good[:100], protocol.signed(other, world.chain.key).encode()]
    result = _ingest(session, world, records, settings)
    assert [r.reason for r in result.results] == [Reason.MALFORMED, Reason.WRONG_TERMINAL]
    assert result.results[0].seq is None and result.results[0].detail
    assert _stored_count(session, world) == 0
    assert session.execute(select(func.count()).select_from(RejectedUpload)).scalar_one() == 2
    assert result.acked_seq == 0


def test_a_record_signed_by_another_key_is_bad_signature_and_leaves_the_seq_free(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    genuine = world.chain.pay(world.uid, 100)
    forged = protocol.signed(protocol.decode(genuine), new_key()).encode()
    assert _ingest(session, world, [forged], settings).results[0].reason == Reason.BAD_SIGNATURE
    assert _ingest(session, world, [genuine], settings).results[0].status == Outcome.ACCEPTED


def test_same_seq_with_other_bytes_is_seq_conflict_and_flags_the_terminal_suspect(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    genuine = world.chain.pay(world.uid, 100)
    _ingest(session, world, [genuine], settings)
    conflicting = protocol.signed(replace(protocol.decode(genuine), amount_cents=101), world.chain.key).encode()
    result = _ingest(session, world, [conflicting], settings)
    assert result.results[0].reason == Reason.SEQ_CONFLICT
    assert _terminal_status(session, world) == "suspect"
    # Its records not settled yet wait for a person: the money moved to the vendor's held account.
    held = ledger.vendor_held_code(world.vendor_id)
    assert (*_balances(session, world), ledger.balance_cents(session, code=held)) == (9_900, 0, 100)
    # A suspect terminal is still heard: its genuine records keep flowing, held as they arrive.
    assert _ingest(session, world, [world.chain.pay(world.uid, 50)], settings).results[0].status == Outcome.ACCEPTED
    assert (*_balances(session, world), ledger.balance_cents(session, code=held)) == (9_850, 0, 150)
    reviews = session.execute(select(TransactionRecord.review).where(TransactionRecord.terminal_id == world.terminal_id)).scalars().all()
    assert reviews == ["held", "held"]


def test_a_gap_is_allowed_and_the_link_is_checked_when_the_missing_record_arrives(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    first, second, third = (world.chain.pay(world.uid, amount) for amount in (100, 200, 300))
    result = _ingest(session, world, [third], settings)
    assert result.results[0].status == Outcome.ACCEPTED and result.acked_seq == 0
    result = _ingest(session, world, [first], settings)
    assert result.acked_seq == 1
    result = _ingest(session, world, [second], settings)
    assert result.results[0].status == Outcome.ACCEPTED and result.acked_seq == 3
    verified = session.execute(
        select(TransactionRecord.chain_verified).where(TransactionRecord.terminal_id == world.terminal_id).order_by(TransactionRecord.seq)
    ).scalars().all()
    assert verified == [True, True, True]
    assert _balances(session, world) == (9_400, 600)


def test_a_filled_gap_that_does_not_link_to_the_next_record_is_bad_chain(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    first, second, third = (world.chain.pay(world.uid, amount) for amount in (100, 200, 300))
    _ingest(session, world, [first, third], settings)
    # A validly signed seq 2 that third does not point to (different amount, same prev_hash).
    impostor = protocol.signed(replace(protocol.decode(second), amount_cents=999), world.chain.key).encode()
    result = _ingest(session, world, [impostor], settings)
    assert result.results[0].reason == Reason.BAD_CHAIN
    assert result.acked_seq == 1
    assert _terminal_status(session, world) == "suspect"
    assert _ingest(session, world, [second], settings).acked_seq == 3


def test_a_record_whose_prev_hash_misses_the_stored_predecessor_is_bad_chain(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    _ingest(session, world, [world.chain.pay(world.uid, 100)], settings)
    second = protocol.signed(
        protocol.Record(terminal_id=world.terminal_id, seq=2, time=T0, kind=protocol.Kind.PAYMENT, amount_cents=5,
                        card_uid=world.uid, prev_hash=b"\x01" * 32),
        world.chain.key,
    ).encode()
    assert _ingest(session, world, [second], settings).results[0].reason == Reason.BAD_CHAIN


def test_records_of_a_batch_may_come_in_any_order(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    records = [world.chain.pay(world.uid, 100 + i) for i in range(10)]
    result = _ingest(session, world, list(reversed(records)), settings)
    assert all(r.status == Outcome.ACCEPTED for r in result.results)
    assert [r.index for r in result.results] == list(range(10))
    assert result.acked_seq == 10


def test_a_void_whose_payment_has_not_arrived_is_refused_unstored_then_accepted_after_it(
    session: Session, settings: Settings
) -> None:
    world = make_world(session, balance_cents=10_000)
    payment, void = world.chain.pay(world.uid, 400), world.chain.void(1)
    early = _ingest(session, world, [void], settings)
    assert early.results[0].reason == Reason.UNKNOWN_PAYMENT and early.acked_seq == 0
    assert _stored_count(session, world) == 0
    assert _ingest(session, world, [payment], settings).acked_seq == 1
    assert _ingest(session, world, [void], settings).results[0].status == Outcome.ACCEPTED
    assert _balances(session, world) == (10_000, 0)


def _chain_with_voids(world: World) -> tuple[list[list[bytes]], int]:
    """Five batches of three: twelve payments, a void after every fourth. Returns (batches, spent)."""
    for i in range(12):
        world.chain.pay(world.uid, 100 * (i + 1))
        if i % 4 == 3:
            world.chain.void(len(world.chain.records))
    raws = [r.encode() for r in world.chain.records]
    spent = sum(100 * (i + 1) for i in range(12) if i % 4 != 3)
    return [raws[i : i + 3] for i in range(0, len(raws), 3)], spent


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_resending_batches_in_any_order_with_repeats_reaches_the_same_final_state(
    session: Session, settings: Settings, data: st.DataObject
) -> None:
    world = make_world(session, balance_cents=50_000)
    batches, spent = _chain_with_voids(world)
    repeats = data.draw(st.lists(st.sampled_from(range(len(batches))), max_size=10))
    order = data.draw(st.permutations(repeats + list(range(len(batches)))))
    for index in order:
        result = _ingest(session, world, batches[index], settings)
        assert all(r.status != Outcome.REJECTED or r.reason == Reason.UNKNOWN_PAYMENT for r in result.results)
    # The terminal's retry loop: everything not yet acknowledged, in seq order.
    for batch in batches:
        result = _ingest(session, world, batch, settings)
        assert all(r.status in (Outcome.ACCEPTED, Outcome.DUPLICATE) for r in result.results)
    assert _balances(session, world) == (50_000 - spent, spent)
    assert result.acked_seq == sum(len(b) for b in batches)
    assert _stored_count(session, world) == result.acked_seq


@hypothesis_settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_payments_uploaded_in_any_order_with_repeats_settle_exactly_without_retries(
    session: Session, settings: Settings, data: st.DataObject
) -> None:
    world = make_world(session, balance_cents=50_000)
    raws = [world.chain.pay(world.uid, 100 + i) for i in range(12)]
    batches = [raws[i : i + 4] for i in range(0, 12, 4)]
    repeats = data.draw(st.lists(st.sampled_from(range(len(batches))), max_size=6))
    for index in data.draw(st.permutations(repeats + list(range(len(batches))))):
        result = _ingest(session, world, batches[index], settings)
    spent = sum(100 + i for i in range(12))
    assert _balances(session, world) == (50_000 - spent, spent)
    assert result.acked_seq == 12


def test_signatures_checked_before_the_lock_with_a_stale_key_hint_are_checked_again(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(session, balance_cents=10_000)
    intruder = new_key()
    forged = protocol.signed(protocol.decode(world.chain.pay(world.uid, 100)), intruder).encode()
    # As if this process had last seen another key for this terminal id (another database).
    monkeypatch.setitem(ingest._key_hints, world.terminal_id, protocol.public_key_bytes(intruder))
    result = _ingest(session, world, [forged], settings)
    assert result.results[0].reason == Reason.BAD_SIGNATURE
    assert ingest._key_hints[world.terminal_id] == protocol.public_key_bytes(world.chain.key)
    assert _stored_count(session, world) == 0


def test_with_the_key_hint_in_place_forged_and_genuine_records_are_told_apart(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    _ingest(session, world, [world.chain.pay(world.uid, 100)], settings)  # leaves the hint
    genuine = world.chain.pay(world.uid, 200)
    forged = protocol.signed(replace(protocol.decode(genuine), seq=3, prev_hash=protocol.decode(genuine).digest()), new_key()).encode()
    result = _ingest(session, world, [genuine, forged], settings)
    assert [r.status for r in result.results] == [Outcome.ACCEPTED, Outcome.REJECTED]
    assert result.results[1].reason == Reason.BAD_SIGNATURE
