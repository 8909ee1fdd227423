"""What one terminal's signed records can do to others, and the bounds on what a record says
(docs/protocol.md, "Bounds on what a record says"; docs/cards.md, "Ingestion check")."""

from __future__ import annotations

import time

from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.cards import versions
from caisse.config import Settings
from caisse.ingest import upload as ingest
from caisse.ingest.upload import Outcome, Reason, TimeBound
from caisse.settlement import statements
from caisse.terminals import sync
from caisse_common import protocol
from tests.backend.cards.test_cards import _second_terminal, _secure_card, card_settings  # noqa: F401 (fixture)
from tests.backend.factories import Chain, World, make_world


def _upload(session: Session, chain: Chain, records: list[bytes], settings: Settings) -> ingest.BatchResult:
    result = ingest.ingest_batch(session, terminal_id=chain.terminal_id, raw_records=records, settings=settings)
    session.commit()
    return result


def _holds(session: Session, chain: Chain) -> dict[int, str]:
    return {r.seq: r.reason for r in statements.held_for_review(session) if r.terminal_id == chain.terminal_id}


def _block_and_tell(session: Session, world: World) -> int:
    """Block the world's card now and have its terminal prove it holds the block; the block's time."""
    card_service.block_card(session, uid_hex=world.uid.hex(), reason="stolen")
    sync.record_version_held(session, terminal_id=world.terminal_id, since=versions.current_cards_version(session))
    session.commit()
    return int(time.time())


def test_one_terminal_cannot_block_a_secure_card_with_records_it_signs(session: Session, card_settings: Settings) -> None:  # noqa: F811
    world = make_world(session)
    rogue = _second_terminal(session, world)
    card = _secure_card(session, world, card_settings)
    over = _upload(session, rogue, [rogue.pay(card.uid, card_settings.max_payment_cents + 1)], card_settings)
    unsigned = _upload(session, rogue, [rogue.pay(card.uid, 200)], card_settings)
    assert (over.results[0].reason, unsigned.results[0].status) == (Reason.OVER_LIMIT, Outcome.ACCEPTED)
    assert _holds(session, rogue) == {2: "carte sécurisée payée sans message SUN : copie de son UID ?"}
    session.expire_all()
    flagged = card_service.get_card(session, uid_hex=card.uid.hex())
    assert (flagged.status, flagged.flag_reason) == ("active", "carte sécurisée payée sans message SUN : copie de son UID ?")
    genuine = _upload(session, world.chain, [world.chain.pay(card.uid, 300, card_auth=card.read())], card_settings)
    assert genuine.results[0].status == Outcome.ACCEPTED and _holds(session, world.chain) == {}


def test_a_tap_stamped_without_a_trusted_clock_is_judged_on_its_reception(session: Session, settings: Settings) -> None:
    world, other = make_world(session), make_world(session)
    blocked_at = _block_and_tell(session, world)
    _block_and_tell(session, other)
    before_block = blocked_at - 3_600
    trusted = _upload(session, other.chain, [other.chain.pay(other.uid, 100, time=before_block)], settings)
    untrusted = _upload(session, world.chain, [world.chain.pay(world.uid, 100, time=before_block,
                                                               flags=protocol.FLAG_UNTRUSTED_TIME)], settings)
    assert trusted.results[0].status == Outcome.ACCEPTED  # a tap before the block, uploaded after it
    assert untrusted.results[0].reason == Reason.CARD_BLOCKED  # its time says nothing: received after the block


def test_a_terminal_cannot_date_a_tap_before_the_record_it_wrote_before(session: Session, settings: Settings) -> None:
    world = make_world(session)
    spare = make_world(session).uid
    blocked_at = _block_and_tell(session, world)
    records = [world.chain.pay(spare, 100, time=blocked_at + 30), world.chain.pay(world.uid, 100, time=blocked_at - 86_400)]
    result = _upload(session, world.chain, records, settings)
    assert [r.status for r in result.results] == [Outcome.ACCEPTED, Outcome.REJECTED]
    assert result.results[1].reason == Reason.CARD_BLOCKED


def test_a_time_in_the_future_is_held_and_judged_on_reception(session: Session, settings: Settings) -> None:
    world = make_world(session)
    now = int(time.time())
    result = _upload(session, world.chain, [world.chain.pay(world.uid, 100, time=now + 60),
                                            world.chain.pay(world.uid, 100, time=now + 30 * 86_400)], settings)
    assert [r.status for r in result.results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert _holds(session, world.chain) == {2: ingest.hold_reason(TimeBound.IN_FUTURE)}


def test_a_void_outside_its_window_is_held(session: Session, settings: Settings) -> None:
    world = make_world(session)
    now = int(time.time())
    records = [world.chain.pay(world.uid, 100, time=now - 7_200), world.chain.pay(world.uid, 200, time=now - 60)]
    records += [world.chain.void(1, time=now), world.chain.void(2, time=now)]
    result = _upload(session, world.chain, records, settings)
    assert [r.status for r in result.results] == [Outcome.ACCEPTED] * 4
    assert _holds(session, world.chain) == {3: ingest.hold_reason(TimeBound.VOID_OUTSIDE_WINDOW)}


def test_every_hold_reason_fits_its_column_and_names_its_bound() -> None:
    for bound in TimeBound:
        reason = ingest.hold_reason(bound)
        assert len(reason) <= 200 and reason.endswith(f"({bound.value})")
