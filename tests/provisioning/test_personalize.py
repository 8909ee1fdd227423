"""`caisse card personalize` against the simulated NTAG 424 DNA behind a simulated USB PN532.

The PN532 is tests/firmware/sim/pn532_sim.py behind a fake serial port (HSU framing, wake-up
preamble); the card is the card model of tests/firmware/sim/ntag424_sim.py. The proof of a
personalization is a read afterwards whose SUN message caisse_common.sun verifies with the card's key.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caisse.cards.authentication import CardKeys, card_keys
from caisse.cli.main import app
from caisse.config import Settings
from caisse.db import make_engine, session_factory
from caisse.models import Card
from caisse_common import pn532_uart
from caisse_common.ntag424 import Ntag424
from caisse_common.personalize import PersonalizationError, personalize, sun_of, wipe
from caisse_common.sun import verify_sun

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/firmware/sim"))

from ntag424_sim import Ntag424Dna  # noqa: E402
from pn532_sim import BasicCard, PN532Sim  # noqa: E402

UID = bytes.fromhex("04A1B2C3D4E5F6")
KEYS = CardKeys(meta_key=bytes.fromhex("0f" * 16), master_key=bytes.fromhex("a5" * 16),
                application_id=b"", system_id=b"")


class SimSerial:
    """A serial port with a simulated PN532 on the other end (HSU: no I2C status byte)."""

    def __init__(self, sim: PN532Sim) -> None:
        self.sim = sim
        self.rx = bytearray()

    def write(self, data: bytes) -> int:
        start = data.find(b"\x00\x00\xff")  # after the wake-up preamble, if any
        if start >= 0:
            self.sim.write(data[start:])
            for sent in self.sim.out:
                self.rx += sent
            self.sim.out = []
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out = bytes(self.rx[:size])
        del self.rx[:size]
        return out


def reader_with(card) -> pn532_uart.PN532Uart:
    sim = PN532Sim()
    sim.field.append(card)
    return pn532_uart.PN532Uart(SimSerial(sim))


def verified_read(card: Ntag424Dna, keys: CardKeys = KEYS):
    card.leave_after = None
    reader = reader_with(card)
    assert reader.find_card() == (UID, card.ats)
    tag = Ntag424(reader.transceive)
    tag.select_ndef_application()
    message = tag.read_ndef()
    picc, mac = sun_of(message) or (b"", b"")
    return message, verify_sun(meta_key=keys.meta_key, file_key=keys.file_key(UID), picc_data=picc, mac=mac)


def test_a_blank_card_gets_its_own_keys_sdm_and_url_and_its_reads_verify_with_the_backend_keys():
    card = Ntag424Dna(UID)
    done = personalize(reader_with(card), KEYS, url_base="caisse.example/c", number="A-0042")
    assert done.uid == UID and done.counter == 1
    assert bytes(16) not in card.keys and len(set(card.keys)) == 5 and card.key_versions == [1] * 5
    message, sun = verified_read(card)
    assert message.startswith(b"\xd1\x01") and b"caisse.example/c?n=A-0042&picc_data=" in message
    assert sun.mac_valid and sun.uid == UID and sun.counter == 2
    assert card.files[2].write == 0 and card.files[2].change == 0  # nobody rewrites the URL


def test_a_card_pulled_away_at_any_step_is_finished_by_running_the_command_again():
    steps = len(_full_run_apdus())
    for leave_after in range(steps):
        card = Ntag424Dna(UID, leave_after=leave_after)
        with pytest.raises(PersonalizationError, match="relancez la même commande"):
            personalize(reader_with(card), KEYS, url_base="caisse.example/c", number="7")
        card.leave_after = None
        personalize(reader_with(card), KEYS, url_base="caisse.example/c", number="7")
        assert verified_read(card)[1].mac_valid, leave_after


def _full_run_apdus() -> list[bytes]:
    card = Ntag424Dna(UID)
    personalize(reader_with(card), KEYS, url_base="caisse.example/c")
    return card.apdus


def test_a_card_with_foreign_keys_no_card_and_a_basic_card_are_refused_in_french():
    foreign = Ntag424Dna(UID)
    foreign.keys[0] = bytes.fromhex("42" * 16)
    with pytest.raises(PersonalizationError, match="pas celles de la caisse"):
        personalize(reader_with(foreign), KEYS, url_base="x.fr")
    with pytest.raises(PersonalizationError, match="Aucune carte"):
        personalize(pn532_uart.PN532Uart(SimSerial(PN532Sim())), KEYS, url_base="x.fr")
    with pytest.raises(PersonalizationError, match="n'est pas une NTAG 424 DNA"):
        personalize(reader_with(BasicCard(UID)), KEYS, url_base="x.fr")


def test_a_command_the_card_refuses_is_told_in_french_with_the_protocol_detail_for_the_technical_team():
    card = Ntag424Dna(UID)
    card.files[2].change = 0xF  # the NDEF file's settings can never be changed on this card
    with pytest.raises(PersonalizationError) as refused:
        personalize(reader_with(card), KEYS, url_base="x.fr")
    assert str(refused.value).startswith("Personnalisation interrompue : la carte a refusé une commande (détail "
                                         "pour l'équipe technique : card refused command 0x5f: permission denied")


STAFF = ("--by", "accueil@caisse.test")


def test_the_cli_personalizes_then_issues_a_secure_card_to_the_household(cli_database: str, tmp_path, monkeypatch):
    url = cli_database
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    card = Ntag424Dna(UID)
    sim = PN532Sim()
    sim.field.append(card)
    ports = []
    monkeypatch.setattr(pn532_uart, "open_port", lambda port: ports.append(port) or SimSerial(sim))
    runner = CliRunner()
    household = runner.invoke(app, ["member", "add", "--name", "Famille Roux", "--members", "2", "--zone", "Sud"])
    assert household.exit_code == 0, household.output
    assert runner.invoke(app, ["user", "add", STAFF[1], "--password", "mot-de-passe-long"]).exit_code == 0
    refused = runner.invoke(app, ["card", "personalize", "--member", "99", *STAFF])
    assert refused.exit_code == 1 and card.apdus == []  # unknown household: the card is not touched
    nobody = runner.invoke(app, ["card", "personalize", "--member", "1", "--by", "personne@caisse.test"])
    assert nobody.exit_code == 1 and card.apdus == []  # nor for someone who is no active account
    done = runner.invoke(app, ["card", "personalize", "--member", "1", "--port", "/dev/ttyUSB3", "--number", "B-7", *STAFF])
    assert done.exit_code == 0, done.output
    assert ports == ["/dev/ttyUSB3"]
    engine = make_engine(url)
    with session_factory(engine)() as session:
        issued = session.get(Card, 1)
        assert issued is not None and (issued.uid, issued.household_id, issued.card_type) == (UID, 1, "secure")
    engine.dispose()
    assert verified_read(card, card_keys(Settings()))[1].mac_valid  # the keys the backend verifies with
    keys_before = list(card.keys)
    again = runner.invoke(app, ["card", "personalize", "--member", "1", *STAFF])  # an issued card: its counter must not restart
    assert again.exit_code == 1 and "déjà émise" in again.output and card.keys == keys_before
    assert card.sdm_read_counter == 2


def test_one_of_our_cards_can_be_personalized_again_with_a_new_number():
    card = Ntag424Dna(UID)
    personalize(reader_with(card), KEYS, url_base="caisse.example/c", number="A-1")
    keys_before = list(card.keys)
    again = personalize(reader_with(card), KEYS, url_base="caisse.example/c", number="A-2")
    assert again.counter == 1 and card.keys == keys_before  # enabling SDM again restarts the counter
    message, sun = verified_read(card)
    assert b"?n=A-2&" in message and sun.mac_valid


def personalized_card() -> tuple[Ntag424Dna, int]:
    """One of our cards, and how many APDUs it has answered so far."""
    card = Ntag424Dna(UID)
    personalize(reader_with(card), KEYS, url_base="caisse.example/c", number="A-1")
    return card, len(card.apdus)


def assert_factory_state(card: Ntag424Dna) -> None:
    assert card.keys == [bytes(16)] * 5 and card.key_versions == [0] * 5
    ndef = card.files[2]
    assert (bytes(ndef.data), ndef.sdm, ndef.comm_mode, ndef.write) == (bytes(256), b"", 0, 0xE)


def test_wiping_a_returned_card_restores_the_factory_state_even_after_a_card_pulled_away():
    card, start = personalized_card()
    assert wipe(reader_with(card), KEYS) == UID
    assert_factory_state(card)
    for leave_after in range(len(card.apdus) - start):  # at every APDU of a wipe
        card, start = personalized_card()
        card.leave_after = start + leave_after
        with pytest.raises(PersonalizationError, match="relancez la même commande"):
            wipe(reader_with(card), KEYS)
        card.leave_after = None
        wipe(reader_with(card), KEYS)
        assert_factory_state(card)
    personalize(reader_with(card), KEYS, url_base="caisse.example/c", number="A-2")  # ready to issue again
    assert verified_read(card)[1].mac_valid


def test_the_cli_wipes_a_card_and_records_its_return(cli_database: str, tmp_path, monkeypatch):
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    card = Ntag424Dna(UID)
    sim = PN532Sim()
    sim.field.append(card)
    monkeypatch.setattr(pn532_uart, "open_port", lambda port: SimSerial(sim))
    runner = CliRunner()
    runner.invoke(app, ["member", "add", "--name", "Famille Roux", "--members", "2", "--zone", "Sud"])
    runner.invoke(app, ["user", "add", STAFF[1], "--password", "mot-de-passe-long"])
    assert runner.invoke(app, ["card", "personalize", "--member", "1", *STAFF]).exit_code == 0
    wiped = runner.invoke(app, ["card", "wipe", *STAFF])
    assert wiped.exit_code == 0, wiped.output
    assert wiped.stdout.strip() == UID.hex() and "enregistrée comme rendue" in wiped.stderr
    assert card.keys == [bytes(16)] * 5
    shown = runner.invoke(app, ["card", "show", UID.hex()])
    assert "returned" in shown.output or "rendue" in shown.output, shown.output


def test_a_card_whose_sun_does_not_verify_after_personalization_is_set_aside():
    card = Ntag424Dna(UID)
    original = card._mirrored  # a card whose mirror is broken, as a damaged chip's would be

    def garbled(settings):
        content = bytearray(original(settings))
        at = content.index(b"picc_data=") + 10
        content[at:at + 32] = b"F" * 32
        return bytes(content)

    card._mirrored = garbled  # type: ignore[method-assign]
    with pytest.raises(PersonalizationError, match="ne se vérifie pas"):
        personalize(reader_with(card), KEYS, url_base="caisse.example/c")
