"""Secure cards at ingestion and the card lifecycle (docs/cards.md): SUN messages checked, each
(card, counter) used once whatever the upload order, suspicious payments held and their card
flagged, blocks that do not blame a vendor whose terminal had not been told, replace and return."""

from __future__ import annotations

import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from caisse.cards import authentication as card_auth
from caisse.cards import service as card_service
from caisse.cards import versions
from caisse.config import Settings
from caisse.db import session_factory
from caisse.errors import Conflict, InvalidInput
from caisse.ingest import review
from caisse.ingest import upload as ingest
from caisse.ingest.upload import Outcome, Reason
from caisse.members import households as household_service
from caisse.models import Card, CardCounter, TransactionRecord
from caisse.settlement import statements
from caisse.terminals import registry as terminal_registry
from caisse.terminals import sync
from caisse_common import protocol
from tests.backend.cards.test_sun import AN12196_MAC, AN12196_PICC, AN12196_UID, encode_sun
from tests.backend.factories import Chain, World, make_world, new_key, new_uid
from tests.fixtures.database import make_settings

META_KEY_HEX = "5c" * 16
MASTER_KEY_HEX = "a7" * 16


@pytest.fixture
def card_settings(engine: Engine) -> Settings:
    return make_settings(str(engine.url), card_meta_key_hex=META_KEY_HEX, card_master_key_hex=MASTER_KEY_HEX)


@dataclass
class SecureCard:
    """A personalized NTAG 424 DNA: every read advances its counter, as the chip does."""

    uid: bytes
    keys: card_auth.CardKeys
    counter: int = 0

    def read(self, counter: int | None = None) -> bytes:
        """card_auth of one read; `counter` replays or skips ahead, as a test needs."""
        if counter is None:
            self.counter += 1
            counter = self.counter
        picc, mac = encode_sun(meta_key=self.keys.meta_key, file_key=self.keys.file_key(self.uid), uid=self.uid,
                               counter=counter)
        return picc + mac


def _secure_card(session: Session, world: World, settings: Settings) -> SecureCard:
    uid = new_uid()
    card_service.issue_card(session, household_id=world.household_id, uid_hex=uid.hex(), card_type="secure")
    session.commit()
    return SecureCard(uid=uid, keys=card_auth.card_keys(settings))


def _second_terminal(session: Session, world: World) -> Chain:
    key = new_key()
    terminal = terminal_registry.register_terminal(session, vendor_id=world.vendor_id, public_key_hex=protocol.public_key_bytes(key).hex())
    session.commit()
    assert terminal.id is not None
    return Chain(terminal.id, key)


def _ingest(session: Session, chain: Chain, records: list[bytes], settings: Settings) -> list[Outcome]:
    result = ingest.ingest_batch(session, terminal_id=chain.terminal_id, raw_records=records, settings=settings)
    session.commit()
    return [r.status for r in result.results]


def _card(session: Session, uid: bytes) -> Card:
    session.expire_all()
    return card_service.get_card(session, uid_hex=uid.hex())


def _holds(session: Session, chain: Chain) -> dict[int, str]:
    """seq -> hold reason of the terminal's held records."""
    return {r.seq: r.reason for r in statements.held_for_review(session) if r.terminal_id == chain.terminal_id}


# SUN messages at ingestion --------------------------------------------------------------------

def test_a_genuine_secure_payment_is_accepted_unheld_and_its_counter_is_used(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    card = _secure_card(session, world, card_settings)
    outcomes = _ingest(session, world.chain, [world.chain.pay(card.uid, 900, card_auth=card.read())], card_settings)
    assert outcomes == [Outcome.ACCEPTED]
    assert _holds(session, world.chain) == {}
    assert _card(session, card.uid).status == "active"
    used = session.execute(select(CardCounter.counter, CardCounter.seq)).all()  # type: ignore[call-overload]
    assert [tuple(row) for row in used] == [(1, 1)]


def test_a_terminal_replaying_a_sun_message_it_read_is_held_and_made_suspect_the_card_stays_usable(
    session: Session, card_settings: Settings,
) -> None:
    world = make_world(session)
    card = _secure_card(session, world, card_settings)
    captured = card.read()
    result = ingest.ingest_batch(session, terminal_id=world.terminal_id, settings=card_settings, raw_records=[
        world.chain.pay(card.uid, 900, card_auth=captured), world.chain.pay(card.uid, 4_000, card_auth=captured)])
    session.commit()
    assert [r.status for r in result.results] == [Outcome.ACCEPTED, Outcome.ACCEPTED]  # the vendor handed the food over
    # The replay is held with its reason; the terminal now suspect, its other records wait too (docs/ledger.md).
    assert _holds(session, world.chain) == {1: review.HOLD_SUSPECT,
                                            2: "compteur SUN 1 déjà utilisé par ce même terminal : terminal suspect"}
    assert result.terminal_flagged_suspect and terminal_registry.get_terminal(session, terminal_id=world.terminal_id).status == "suspect"
    kept = _card(session, card.uid)  # one terminal's records prove nothing against the card
    assert (kept.status, kept.blocked_at, kept.blocked_version) == ("active", None, None)


def test_counters_read_out_of_order_are_all_accepted(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    card = _secure_card(session, world, card_settings)
    records = [world.chain.pay(card.uid, 100, card_auth=card.read(counter)) for counter in (5, 3, 9, 4)]
    assert _ingest(session, world.chain, records[2:], card_settings) == [Outcome.ACCEPTED] * 2
    assert _ingest(session, world.chain, records[:2], card_settings) == [Outcome.ACCEPTED] * 2
    assert _holds(session, world.chain) == {}
    assert _card(session, card.uid).status == "active"


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (lambda auth: bytes(24), "carte sécurisée payée sans message SUN : copie de son UID ?"),
        (lambda auth: auth[:16] + bytes([auth[16] ^ 1]) + auth[17:], "MAC SUN invalide : message falsifié"),
        (lambda auth: bytes([auth[0] ^ 0x80]) + auth[1:], "message SUN illisible : falsifié, ou clé de lecture différente"),
    ],
    ids=["zero card_auth (UID-only clone)", "flipped MAC bit", "damaged PICC data"],
)
def test_a_forged_sun_message_holds_the_payment_and_flags_the_card(session: Session, card_settings: Settings, forge, reason: str) -> None:  # type: ignore[no-untyped-def]
    world = make_world(session)
    card = _secure_card(session, world, card_settings)
    outcomes = _ingest(session, world.chain, [world.chain.pay(card.uid, 700, card_auth=forge(card.read()))], card_settings)
    assert outcomes == [Outcome.ACCEPTED]
    assert _holds(session, world.chain) == {1: reason}
    assert (_card(session, card.uid).status, _card(session, card.uid).flag_reason) == ("active", reason)  # flagged, not blocked


def test_the_sun_message_of_another_card_is_a_uid_mismatch(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    card, other = _secure_card(session, world, card_settings), _secure_card(session, world, card_settings)
    _ingest(session, world.chain, [world.chain.pay(card.uid, 700, card_auth=other.read())], card_settings)
    reason = f"le message SUN est celui de la carte {other.uid.hex()} : carte copiée ?"
    assert _holds(session, world.chain) == {1: reason}
    assert (_card(session, card.uid).status, _card(session, card.uid).flag_reason) == ("active", reason)
    assert (_card(session, other.uid).status, _card(session, other.uid).flag_reason) == ("active", None)


def test_a_message_made_with_the_undiversified_key_is_refused(session: Session) -> None:
    """AN12196's worked example uses the all-zero file key itself; our cards' file keys are
    diversified from the master, so even with an all-zero master that message does not pass."""
    world = make_world(session)
    card_service.issue_card(session, household_id=world.household_id, uid_hex=AN12196_UID.hex(), card_type="secure")
    session.commit()
    zero_keys = make_settings(str(session.get_bind().url))  # development keys: all zero
    message = AN12196_PICC + AN12196_MAC
    assert card_auth.check_sun(card_auth.card_keys(zero_keys), card_uid=AN12196_UID, card_auth=message) == (
        None, "MAC SUN invalide : message falsifié")
    assert _ingest(session, world.chain, [world.chain.pay(AN12196_UID, 500, card_auth=message)], zero_keys) == [Outcome.ACCEPTED]
    assert _holds(session, world.chain) == {1: "MAC SUN invalide : message falsifié"}


def test_uploading_a_flagged_batch_again_changes_nothing(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    card = _secure_card(session, world, card_settings)
    captured = card.read()
    records = [world.chain.pay(card.uid, 100, card_auth=captured), world.chain.pay(card.uid, 200, card_auth=captured)]
    _ingest(session, world.chain, records, card_settings)
    before = _card(session, card.uid)
    state = (before.sync_version, before.blocked_at, before.flag_reason)
    assert _ingest(session, world.chain, records, card_settings) == [Outcome.DUPLICATE] * 2
    after = _card(session, card.uid)
    assert (after.sync_version, after.blocked_at, after.flag_reason) == state
    assert len(_holds(session, world.chain)) == 2  # the replay, and the rest of its now suspect terminal


def test_two_offline_terminals_with_distinct_counters_are_accepted_in_any_order(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    second = _second_terminal(session, world)
    card = _secure_card(session, world, card_settings)
    # Read at stall A (1, 2), then stall B (3, 4), then A again (5); B uploads first.
    a = [world.chain.pay(card.uid, 100, card_auth=card.read()) for _ in range(2)]
    b = [second.pay(card.uid, 100, card_auth=card.read()) for _ in range(2)]
    a.append(world.chain.pay(card.uid, 100, card_auth=card.read()))
    assert _ingest(session, second, b, card_settings) == [Outcome.ACCEPTED] * 2
    assert _ingest(session, world.chain, a[::-1], card_settings) == [Outcome.ACCEPTED] * 3
    assert _holds(session, world.chain) == _holds(session, second) == {}
    assert _card(session, card.uid).status == "active"


def test_the_same_counter_on_two_terminals_holds_the_later_upload_and_flags_the_card(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    second = _second_terminal(session, world)
    card = _secure_card(session, world, card_settings)
    captured = card.read()  # skimmed at one stall, replayed by a clone at another
    assert _ingest(session, second, [second.pay(card.uid, 3_000, card_auth=captured)], card_settings) == [Outcome.ACCEPTED]
    assert _ingest(session, world.chain, [world.chain.pay(card.uid, 100, card_auth=captured)], card_settings) == [Outcome.ACCEPTED]
    assert _holds(session, second) == {}
    assert _holds(session, world.chain) == {1: "compteur SUN 1 déjà utilisé : carte copiée ou message rejoué"}
    blocked = _card(session, card.uid)  # two terminals hold one genuine message: a copy exists
    assert (blocked.status, blocked.block_reason) == ("blocked", "flagged")
    assert blocked.blocked_version == blocked.sync_version  # the version that carries the block to terminals
    assert terminal_registry.get_terminal(session, terminal_id=world.terminal_id).status == "active"


def test_a_cloned_basic_card_cannot_be_told_apart_only_its_lower_limit_protects(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    clone_terminal = _second_terminal(session, world)
    limit = card_settings.basic_card_max_payment_cents
    # The genuine card and its UID copy, at two stalls: the same bytes but for terminal and seq.
    assert _ingest(session, world.chain, [world.chain.pay(world.uid, limit)], card_settings) == [Outcome.ACCEPTED]
    assert _ingest(session, clone_terminal, [clone_terminal.pay(world.uid, limit)], card_settings) == [Outcome.ACCEPTED]
    assert _holds(session, world.chain) == _holds(session, clone_terminal) == {}
    result = ingest.ingest_batch(session, terminal_id=clone_terminal.terminal_id,
                                 raw_records=[clone_terminal.pay(world.uid, limit + 1)], settings=card_settings)
    assert result.results[0].reason == Reason.OVER_LIMIT


def test_a_secure_card_may_pay_above_the_basic_card_limit(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    card = _secure_card(session, world, card_settings)
    amount = card_settings.basic_card_max_payment_cents + 1
    assert _ingest(session, world.chain, [world.chain.pay(card.uid, amount, card_auth=card.read())], card_settings) == [Outcome.ACCEPTED]


def test_claiming_counters_grants_each_once_even_within_one_call(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    card_id = _card(session, _secure_card(session, world, card_settings).uid).id
    assert card_id is not None
    repeated = card_auth.claim_counters(session, terminal_id=world.terminal_id, claims=[(card_id, 7, 1), (card_id, 8, 2), (card_id, 7, 3)])
    assert repeated == [(card_id, 7, 3, world.terminal_id)]
    other = world.terminal_id + 1  # (card id, counter, seq, the terminal that used the counter first)
    assert card_auth.claim_counters(session, terminal_id=other, claims=[(card_id, 8, 4), (card_id, 9, 5)]) == [(card_id, 8, 4, world.terminal_id)]


# Blocks and the deny-list version ---------------------------------------------------------------

def test_a_tap_after_a_block_from_a_terminal_not_yet_told_is_accepted_but_held(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=10_000)
    told = _second_terminal(session, world)
    sync.record_version_held(session, terminal_id=world.terminal_id, since=versions.current_cards_version(session))
    card_service.block_card(session, uid_hex=world.uid.hex(), reason="stolen")
    sync.record_version_held(session, terminal_id=told.terminal_id, since=versions.current_cards_version(session))
    session.commit()
    now = int(__import__("time").time())
    assert _ingest(session, world.chain, [world.chain.pay(world.uid, 300, time=now + 60)], settings) == [Outcome.ACCEPTED]
    assert _holds(session, world.chain) == {
        1: "carte volée : liste de blocage pas encore reçue par ce terminal (pas la faute du commerçant)"}
    result = ingest.ingest_batch(session, terminal_id=told.terminal_id, raw_records=[told.pay(world.uid, 300, time=now + 60)],
                                 settings=settings)
    assert result.results[0].reason == Reason.CARD_BLOCKED


def test_blocking_twice_keeps_the_first_time_and_reason(session: Session) -> None:
    world = make_world(session)
    first = card_service.block_card(session, uid_hex=world.uid.hex(), reason="lost")
    stamp = (first.blocked_at, first.blocked_version, first.sync_version)
    again = card_service.block_card(session, uid_hex=world.uid.hex(), reason="stolen")
    assert (again.blocked_at, again.blocked_version, again.sync_version, again.block_reason) == (*stamp, "lost")
    with pytest.raises(InvalidInput):
        card_service.block_card(session, uid_hex=world.uid.hex(), reason="flagged")


# Lifecycle ----------------------------------------------------------------------------------

def test_replacing_a_card_blocks_the_old_one_and_the_balance_follows_the_household(session: Session, settings: Settings) -> None:
    world = make_world(session, balance_cents=8_000)
    new = new_uid()
    card = card_service.replace_card(session, uid_hex=world.uid.hex(), new_uid_hex=new.hex())
    session.commit()
    assert (card.household_id, card.card_type, card.status) == (world.household_id, "basic", "active")
    old = _card(session, world.uid)
    assert (old.status, old.block_reason) == ("blocked", "replaced")
    assert _ingest(session, world.chain, [world.chain.pay(new, 2_500)], settings) == [Outcome.ACCEPTED]
    assert household_service.household_balance_cents(session, household_id=world.household_id) == 5_500


def test_a_lost_card_replaced_keeps_lost_as_its_reason(session: Session) -> None:
    world = make_world(session)
    card_service.block_card(session, uid_hex=world.uid.hex(), reason="lost")
    card_service.replace_card(session, uid_hex=world.uid.hex(), new_uid_hex=new_uid().hex(), card_type="secure")
    assert _card(session, world.uid).block_reason == "lost"


def test_a_returned_card_is_refused_and_its_uid_can_be_issued_again_afresh(session: Session, card_settings: Settings) -> None:
    world = make_world(session)
    card = _secure_card(session, world, card_settings)
    _ingest(session, world.chain, [world.chain.pay(card.uid, 100, card_auth=card.read())], card_settings)
    returned = card_service.return_card(session, uid_hex=card.uid.hex())
    session.commit()
    assert returned.status == "returned" and returned.blocked_at is not None
    with pytest.raises(Conflict):
        card_service.replace_card(session, uid_hex=card.uid.hex(), new_uid_hex=new_uid().hex())
    other = household_service.create_household(session, name="Famille Martin", members=2, zone="Sud")
    assert other.id is not None
    again = card_service.issue_card(session, household_id=other.id, uid_hex=card.uid.hex(), card_type="secure")
    session.commit()
    assert (again.id, again.household_id, again.status, again.blocked_at, again.block_reason) == (
        returned.id, other.id, "active", None, None)
    assert session.execute(select(func.count()).select_from(CardCounter)).scalar_one() == 0  # the wipe may restart it
    card.counter = 0
    assert _ingest(session, world.chain, [world.chain.pay(card.uid, 100, card_auth=card.read())], card_settings) == [Outcome.ACCEPTED]
    assert _holds(session, world.chain) == {}


def test_an_issued_card_cannot_be_issued_twice(session: Session) -> None:
    world = make_world(session)
    with pytest.raises(Conflict):
        card_service.issue_card(session, household_id=world.household_id, uid_hex=world.uid.hex())


@pytest.mark.parametrize(("uid_hex", "card_type"), [("04a1b2c3", "secure"), ("04a1b2c3d4e5f6", "platinum")])
def test_a_secure_card_has_a_seven_byte_uid_and_types_are_a_closed_set(session: Session, uid_hex: str, card_type: str) -> None:
    world = make_world(session)
    with pytest.raises(InvalidInput):
        card_service.issue_card(session, household_id=world.household_id, uid_hex=uid_hex, card_type=card_type)


def test_records_keep_the_card_uid_and_household_they_were_made_with(session: Session, settings: Settings) -> None:
    world = make_world(session)
    _ingest(session, world.chain, [world.chain.pay(world.uid, 100)], settings)
    record = session.execute(select(TransactionRecord)).scalar_one()
    assert (record.card_uid, record.household_id) == (world.uid, world.household_id)


# Keys in the settings -------------------------------------------------------------------------

def test_production_refuses_the_public_development_card_keys() -> None:
    with pytest.raises(ValidationError, match="CAISSE_CARD_MASTER_KEY_HEX"):
        Settings(environment="production", admin_token="a-real-secret-token", card_meta_key_hex=META_KEY_HEX)
    with pytest.raises(ValidationError, match="CAISSE_CARD_META_KEY_HEX"):
        Settings(environment="production", admin_token="a-real-secret-token", card_master_key_hex=MASTER_KEY_HEX)
    Settings(environment="production", admin_token="a-real-secret-token", card_meta_key_hex=META_KEY_HEX,
             card_master_key_hex=MASTER_KEY_HEX, member_code_master_key_hex="33" * 32,
             database_url="postgresql+psycopg://caisse@localhost/caisse", debtor_iban="FR1420041010050500013M02606")


@pytest.mark.parametrize("field", ["card_master_key_hex", "card_meta_key_hex"])
def test_a_card_key_is_32_hex_characters(field: str) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: "00" * 15})  # type: ignore[arg-type]


# Admin API ----------------------------------------------------------------------------------

def test_the_admin_api_issues_blocks_replaces_returns_and_shows_cards(client: TestClient, admin_headers: dict[str, str],
                                                                      session: Session) -> None:
    world = make_world(session)
    cards = "/v1/admin/cards"
    issued = client.post(cards, headers=admin_headers, json={"household_id": world.household_id, "uid": "04a1b2c3d4e5f6",
                                                             "card_type": "secure"})
    assert (issued.status_code, issued.json()["card_type"]) == (201, "secure")
    stolen = client.post(f"{cards}/04a1b2c3d4e5f6/block", headers=admin_headers, json={"reason": "stolen"})
    assert (stolen.json()["status"], stolen.json()["block_reason"]) == ("blocked", "stolen")
    replaced = client.post(f"{cards}/{world.uid.hex()}/replace", headers=admin_headers, json={"uid": "04f6e5d4c3b2a1"})
    assert (replaced.status_code, replaced.json()["household_id"], replaced.json()["card_type"]) == (201, world.household_id, "basic")
    returned = client.post(f"{cards}/04f6e5d4c3b2a1/return", headers=admin_headers)
    assert returned.json()["status"] == "returned"
    shown = client.get(f"{cards}/{world.uid.hex()}", headers=admin_headers).json()
    assert (shown["status"], shown["block_reason"], shown["code_failures"]) == ("blocked", "replaced", [])
    refused = client.post(f"{cards}/04a1b2c3d4e5f6/block", headers=admin_headers, json={"reason": "flagged"})
    assert (refused.status_code, refused.json()["error"]) == (422, "invalid_request")


def test_two_terminals_uploading_the_same_counter_at_once_hold_exactly_one(engine: Engine, session: Session,
                                                                           card_settings: Settings) -> None:
    world = make_world(session)
    second = _second_terminal(session, world)
    card = _secure_card(session, world, card_settings)
    captured = card.read()
    uploads = [(chain, [chain.pay(card.uid, 500, card_auth=captured)] + [chain.pay(card.uid, 100, card_auth=card.read())])
               for chain in (world.chain, second)]
    factory = session_factory(engine)
    start = threading.Barrier(len(uploads))

    def upload(chain: Chain, records: list[bytes]) -> list[Outcome]:
        start.wait()
        with factory() as own:
            return _ingest(own, chain, records, card_settings)

    with ThreadPoolExecutor(len(uploads)) as pool:
        outcomes = list(pool.map(lambda u: upload(*u), uploads))
    assert outcomes == [[Outcome.ACCEPTED] * 2] * 2
    held = _holds(session, world.chain) | {-seq: reason for seq, reason in _holds(session, second).items()}
    assert list(held.values()) == ["compteur SUN 1 déjà utilisé : carte copiée ou message rejoué"]
    assert abs(next(iter(held))) == 1  # the replayed record, never the fresh counters
    assert session.execute(select(func.count()).select_from(CardCounter)).scalar_one() == 3


def test_a_terminal_is_told_of_a_block_by_the_sync_after_the_one_that_brought_it(client: TestClient, session: Session) -> None:
    world = make_world(session)

    def sync_since(since: int) -> int:
        now = int(time.time())
        signature = protocol.sign_digest(world.chain.key, protocol.sync_digest(world.terminal_id, now, since))
        return client.get(f"/v1/terminals/{world.terminal_id}/sync", params={"since": since},
                          headers={"X-Caisse-Time": str(now), "X-Caisse-Signature": signature.hex()}).json()["cards_version"]

    def tap() -> dict:
        record = base64.b64encode(world.chain.pay(world.uid, 100, time=int(time.time()) + 1)).decode()
        return client.post(f"/v1/terminals/{world.terminal_id}/batches", json={"records": [record]}).json()["results"][0]

    held = sync_since(0)
    card_service.block_card(session, uid_hex=world.uid.hex())
    session.commit()
    received = sync_since(held)  # the answer carries the block, but nothing proves it was applied
    assert tap()["status"] == "accepted"
    sync_since(received)  # this `since` proves it
    assert tap() == {"index": 0, "seq": 2, "status": "rejected", "reason": "card_blocked"}
    assert list(_holds(session, world.chain)) == [1]


def test_lost_cards_do_not_keep_a_household_from_getting_a_new_one(session: Session) -> None:
    world = make_world(session)
    card_service.block_card(session, uid_hex=world.uid.hex())
    for _ in range(card_service.MAX_CARDS_PER_HOUSEHOLD - 1):
        lost = card_service.issue_card(session, household_id=world.household_id, uid_hex=new_uid().hex())
        card_service.block_card(session, uid_hex=lost.uid.hex())
    card = card_service.issue_card(session, household_id=world.household_id, uid_hex=new_uid().hex())
    assert card.status == "active"


def test_ended_cards_stay_in_the_households_sync_version_so_their_number_is_bounded_too(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(session)
    card_service.block_card(session, uid_hex=world.uid.hex())
    # A balance change stamps every card of the household, the blocked one too: the group a
    # sync page must carry whole is all the household's cards, not its active ones.
    last = versions.bump_cards(session, household_ids=[world.household_id])
    assert {c.sync_version for c in household_service.household_cards(session, household_id=world.household_id)} == {last}
    assert card_service.MAX_CARDS_ATTACHED_PER_HOUSEHOLD <= sync.MAX_CARDS_PER_SYNC // 2
    monkeypatch.setattr(card_service, "MAX_CARDS_ATTACHED_PER_HOUSEHOLD", 3)
    for _ in range(2):
        card_service.issue_card(session, household_id=world.household_id, uid_hex=new_uid().hex())
    with pytest.raises(Conflict) as refused:
        card_service.issue_card(session, household_id=world.household_id, uid_hex=new_uid().hex())
    assert refused.value.code == "too_many_ended_cards"


def test_a_household_using_all_its_cards_can_still_replace_one(session: Session) -> None:
    world = make_world(session)
    for _ in range(card_service.MAX_CARDS_PER_HOUSEHOLD - 1):
        card_service.issue_card(session, household_id=world.household_id, uid_hex=new_uid().hex())
    new = card_service.replace_card(session, uid_hex=world.uid.hex(), new_uid_hex=new_uid().hex())
    cards = household_service.household_cards(session, household_id=world.household_id)
    assert sum(c.status == "active" for c in cards) == card_service.MAX_CARDS_PER_HOUSEHOLD
    assert new.status == "active" and card_service.get_card(session, uid_hex=world.uid.hex()).status == "blocked"


def test_a_refused_replacement_leaves_the_old_card_active_once_rolled_back(session: Session) -> None:
    world = make_world(session)
    taken = card_service.issue_card(session, household_id=world.household_id, uid_hex=new_uid().hex())
    session.commit()
    with pytest.raises(Conflict):
        card_service.replace_card(session, uid_hex=world.uid.hex(), new_uid_hex=taken.uid.hex())
    session.rollback()
    assert card_service.get_card(session, uid_hex=world.uid.hex()).status == "active"
