"""tests/vectors/protocol_v1.json, the truth shared with the firmware, read by the backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from caisse.cards import service as card_service
from caisse.config import Settings
from caisse.ingest.upload import Outcome, ingest_batch
from caisse.members import households as household_service
from caisse.models import Terminal
from caisse.vendors import service as vendor_service
from caisse_common import protocol
from tests.fixtures.database import make_settings

VECTORS = json.loads((Path(__file__).parents[2] / "vectors" / "protocol_v1.json").read_text())
TERMINAL = VECTORS["terminal"]


@pytest.fixture
def settings(engine: Engine) -> Settings:
    """The vectors pin the wire format, not card limits: their 99.99 EUR payment is made with a
    basic (UID-only) card, above the default basic-card ceiling."""
    return make_settings(str(engine.url), basic_card_max_payment_cents=15_000)


def _install_vector_terminal(session: Session) -> None:
    vendor = vendor_service.create_vendor(session, name="Vecteurs", kind="producer", zone="Nord")
    assert vendor.id is not None
    session.add(Terminal(id=TERMINAL["terminal_id"], vendor_id=vendor.id, public_key=bytes.fromhex(TERMINAL["public_key"])))
    household = household_service.create_household(session, name="Vecteurs", members=1, zone="Nord")
    assert household.id is not None
    for uid in sorted({entry["card_uid"] for entry in VECTORS["chain"]}):
        card_service.issue_card(session, household_id=household.id, uid_hex=uid)
    household_service.credit_household(session, household_id=household.id, amount_cents=50_000)
    session.commit()


def _chain_raw(seqs: list[int] | None = None) -> list[bytes]:
    return [bytes.fromhex(e["record"]) for e in VECTORS["chain"] if seqs is None or e["seq"] in seqs]


def test_every_chain_record_decodes_to_its_described_fields_and_verifies() -> None:
    key = protocol.load_public_key(bytes.fromhex(TERMINAL["public_key"]))
    previous = protocol.ZERO_HASH
    for entry in VECTORS["chain"]:
        record = protocol.decode(bytes.fromhex(entry["record"]))
        assert record.seq == entry["seq"]
        assert record.kind.name.lower() == entry["kind"]
        assert record.amount_cents == entry["amount_cents"]
        assert record.card_uid.hex() == entry["card_uid"]
        assert record.digest().hex() == entry["digest"]
        assert record.prev_hash == previous
        assert protocol.verify(key, record)
        previous = record.digest()


def test_the_sync_auth_vector_verifies() -> None:
    auth = VECTORS["sync_auth"]
    digest = protocol.sync_digest(auth["terminal_id"], auth["time"], auth["since"])
    assert digest.hex() == auth["digest"]
    key = protocol.load_public_key(bytes.fromhex(TERMINAL["public_key"]))
    assert protocol.verify_digest(key, digest, bytes.fromhex(auth["signature"]))


def test_the_vector_chain_is_accepted_through_ingestion(session: Session, settings: Settings) -> None:
    _install_vector_terminal(session)
    result = ingest_batch(session, terminal_id=TERMINAL["terminal_id"], raw_records=_chain_raw(), settings=settings)
    session.commit()
    assert [r.status for r in result.results] == [Outcome.ACCEPTED] * len(VECTORS["chain"])
    assert result.acked_seq == len(VECTORS["chain"])


@pytest.mark.parametrize("vector", VECTORS["tampered"], ids=[v["name"] for v in VECTORS["tampered"]])
def test_each_tampered_vector_is_rejected_with_its_expected_reason(session: Session, settings: Settings, vector: dict) -> None:
    _install_vector_terminal(session)
    terminal_id = TERMINAL["terminal_id"]
    ingest_batch(session, terminal_id=terminal_id, raw_records=_chain_raw(vector.get("after_seqs")), settings=settings)
    session.commit()
    result = ingest_batch(session, terminal_id=terminal_id, raw_records=[bytes.fromhex(vector["record"])], settings=settings)
    session.commit()
    assert result.results[0].status == Outcome.REJECTED
    assert result.results[0].reason == vector["reason"]


def test_the_untrusted_time_vector_decodes_with_its_flag_and_is_accepted_after_the_chain(
    session: Session, settings: Settings,
) -> None:
    vector = VECTORS["untrusted_time"]
    record = protocol.decode(bytes.fromhex(vector["record"]))
    assert record.flags == vector["flags"] == protocol.FLAG_UNTRUSTED_TIME
    assert record.prev_hash.hex() == VECTORS["chain"][-1]["digest"] and record.digest().hex() == vector["digest"]
    _install_vector_terminal(session)
    result = ingest_batch(session, terminal_id=TERMINAL["terminal_id"], raw_records=[*_chain_raw(), bytes.fromhex(vector["record"])],
                          settings=settings)
    assert [r.status for r in result.results] == [Outcome.ACCEPTED] * (len(VECTORS["chain"]) + 1)
