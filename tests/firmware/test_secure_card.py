"""A secure card through the real reader stack under MicroPython: PN532 driver, NfcReader, flow.

MicroPython's WebAssembly port has no AES (no cryptolib), so the SUN URLs the card answers are
computed here, on CPython, with the card model's SUN encoder (sim/ntag424_sim.py), and handed to
the MicroPython-side card (pn532_sim.Ntag424) as one URL per read. The records the terminal
makes come back as hex; caisse_common.sun checks their card_auth, and the real backend app ingests them
(a genuine payment passes, a copy of the UID without SUN and a replayed SUN message are held).
"""

import base64
import sys

import pytest

from caisse.cards import authentication as card_auth
from caisse.cards import service as card_service
from caisse.db import session_factory
from caisse.settlement import statements
from caisse.terminals import registry as terminal_registry
from caisse_common.ntag424 import Ntag424
from caisse_common.personalize import url_template
from caisse_common.sun import diversify_key, verify_sun
from tests.firmware.mpy_runtime import ROOT, run
from tests.firmware.test_end_to_end import backend_app, register

SIM = ROOT / "tests/firmware/sim"
sys.path.insert(0, str(SIM))
sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import ntag424_sim  # noqa: E402
import rig  # noqa: E402

from caisse_terminal import p256, record  # noqa: E402

MOUNTS = {SIM: "/sim", ROOT / "tests/firmware/scenarios": "/scenarios"}
META_KEY = bytes.fromhex("5ea1ed0ff1ce0000000000000000d00d")
MASTER_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
SECURE_UID = rig.CAROL  # 7 bytes, in the rig's card table with 1000 EUR

TERMINAL = """
import sys
sys.path.insert(0, '/sim')
sys.path.insert(0, '/scenarios')
import binascii
import rig
from i2c_bus import FakeI2C
from pn532_sim import PN532Sim, Ntag424, BasicCard
from drivers.pn532 import PN532
from drivers.nfc_reader import NfcReader
from caisse_terminal import flow
sim = PN532Sim()
ticks = [0]
def ticks_ms():
    ticks[0] += 1
    return ticks[0]
pn = PN532(FakeI2C((0x24, sim)), timeout_ms=50, sleep_ms=lambda ms: None, ticks_ms=ticks_ms)
r = rig.Rig(reader=NfcReader(pn), limits={'pin_threshold_cents': 5000})
def tap(card):
    sim.field.append(card)
    r.terminal.poll_card()
    if card in sim.field:
        sim.field.remove(card)
    r.terminal.poll_card()
    return r.display.text()
def pay(amount, card):
    r.keys(amount + 'V')
    shown = tap(card)
    assert 'Paiement accepté' in shown, shown
    r.keys('V')
URLS = [URL_LIST]
"""


def sun_urls(count: int) -> list[bytes]:
    """What the card model answers to `count` reads: URLs with counters 1 .. count."""
    card = ntag424_sim.sun_card(SECURE_UID, meta_key=META_KEY, file_key=diversify_key(MASTER_KEY, SECURE_UID),
                                url=url_template("caisse.example/c", "A-0042"))
    tag = Ntag424(card.apdu)
    tag.select_ndef_application()
    return [tag.read_ndef()[5:] for _ in range(count)]  # after the record header


def terminal(script: str, urls: list[bytes]) -> list[str]:
    prelude = TERMINAL.replace("URL_LIST", ", ".join(repr(u) for u in urls))
    return run(prelude + script, mounts=MOUNTS).splitlines()


def test_secure_card_sun_reaches_the_record_and_the_backend_accepts_it_and_a_basic_card_leaves_it_zero():
    lines = terminal(
        """
pay('12,50', Ntag424(rig.CAROL, URLS))
pay('3', BasicCard(rig.ALICE))
pay('4', Ntag424(rig.CAROL, URLS[1:]))
r.keys('60V')
assert tap(Ntag424(rig.CAROL, URLS[2:])).startswith('Code PIN ?'), r.display.text()
r.keys(rig.CODE + 'V')
assert 'Paiement accepté' in r.display.text(), r.display.text()
while r.log.unsigned:
    r.terminal.background_sign()
for raw in r.log.pending(10):
    print(binascii.hexlify(raw).decode())
""",
        sun_urls(3),
    )
    secure, basic, again, with_code = (record.decode(bytes.fromhex(line)) for line in lines)
    assert (secure.card_uid, secure.amount_cents, basic.card_uid) == (SECURE_UID, 1250, rig.ALICE)
    assert basic.card_auth == bytes(24)
    file_key = diversify_key(MASTER_KEY, SECURE_UID)
    seen = []
    assert (secure.flags, with_code.flags, with_code.amount_cents) == (0, record.FLAG_PIN, 6000)
    for rec in (secure, again, with_code):
        message = verify_sun(meta_key=META_KEY, file_key=file_key, picc_data=rec.card_auth[:16], mac=rec.card_auth[16:])
        assert message.mac_valid and message.uid == rec.card_uid
        seen.append(message.counter)
    assert seen == [1, 2, 3]  # a fresh SUN message for each tap, kept through the code entry
    wrong_key = diversify_key(MASTER_KEY, rig.ALICE)
    assert not verify_sun(meta_key=META_KEY, file_key=wrong_key, picc_data=secure.card_auth[:16],
                          mac=secure.card_auth[16:]).mac_valid


def test_a_card_torn_away_mid_read_shows_a_french_screen_commits_nothing_and_a_new_tap_pays():
    lines = terminal(
        """
r.keys('5V')
for leave_after, status in ((1, 0x01), (3, 0x01), (4, 0x02)):  # timeout, or an RF error (CRC)
    shown = tap(Ntag424(rig.CAROL, URLS, leave_after=leave_after, leave_status=status))
    print(shown, '|', r.flow.state == flow.WAIT_CARD, r.log.next_seq)
print(tap(Ntag424(rig.CAROL, URLS[3:])))
while r.log.unsigned:
    r.terminal.background_sign()
[raw] = r.log.pending(10)
print(binascii.hexlify(raw).decode())
""",
        sun_urls(4),
    )
    for line in lines[:3]:
        assert line == "Carte retirée | trop tôt, | recommencez | True 1"
    assert lines[3].startswith("Paiement accepté | 5,00 EUR")
    rec = record.decode(bytes.fromhex(lines[4]))
    message = verify_sun(meta_key=META_KEY, file_key=diversify_key(MASTER_KEY, SECURE_UID),
                         picc_data=rec.card_auth[:16], mac=rec.card_auth[16:])
    assert message.mac_valid and message.counter == 4


@pytest.fixture
def backend(tmp_path):
    """The real backend app, CAROL's card issued as secure, and the rig's terminal registered."""
    with backend_app(tmp_path, [(SECURE_UID, "secure")]) as (client, engine, settings, vendor_id):
        yield client, engine, settings, register(client, vendor_id, p256.public_key(rig.SECRET))


def test_secure_card_payments_made_under_micropython_pass_the_backend_sun_check_and_a_uid_copy_or_replay_is_held(backend):
    client, engine, settings, terminal_id = backend
    keys = card_auth.card_keys(settings)
    card = ntag424_sim.sun_card(SECURE_UID, meta_key=keys.meta_key, file_key=keys.file_key(SECURE_UID),
                                url=url_template("caisse.example/c", None))
    tag = Ntag424(card.apdu)
    tag.select_ndef_application()
    urls = [tag.read_ndef()[5:]]
    lines = terminal(f"rig.TERMINAL_ID = {terminal_id}\n" + """
r = rig.Rig(reader=NfcReader(pn))
pay('12,50', Ntag424(rig.CAROL, URLS))
pay('3', BasicCard(rig.CAROL))  # a copy of the card's UID on a card without SUN
while r.log.unsigned:
    r.terminal.background_sign()
for raw in r.log.pending(10):
    print(binascii.hexlify(raw).decode())
""", urls)
    genuine, copy = (bytes.fromhex(line) for line in lines)
    replay = _signed_after(copy, record.decode(genuine).card_auth)  # the genuine SUN message sent again
    answer = client.post(f"/v1/terminals/{terminal_id}/batches",
                         json={"records": [base64.b64encode(r).decode() for r in (genuine, copy, replay)]})
    assert answer.status_code == 200, answer.text
    assert [r["status"] for r in answer.json()["results"]] == ["accepted"] * 3  # the food was handed over
    with session_factory(engine)() as session:
        holds = {r.seq: r.reason for r in statements.held_for_review(session)}
        flagged = card_service.get_card(session, uid_hex=SECURE_UID.hex())
        replaying = terminal_registry.get_terminal(session, terminal_id=terminal_id)
    # The replay makes its terminal suspect, and a suspect terminal's unsettled records all wait for
    # a person (docs/ledger.md, "Holds and review"): the genuine payment too, for its own reason.
    assert set(holds) == {1, 2, 3}
    assert "sans message SUN" in holds[2] and "déjà utilisé par ce même terminal" in holds[3]
    assert "sans message SUN" not in holds[1] and "déjà utilisé" not in holds[1]
    # One terminal's records prove nothing against the card: flagged for staff, not blocked; the
    # terminal that replayed a message it had read is suspect (docs/cards.md, "Ingestion check").
    assert (flagged.status, replaying.status) == ("active", "suspect")
    assert flagged.flag_reason is not None and "sans message SUN" in flagged.flag_reason


def _signed_after(previous: bytes, card_auth: bytes) -> bytes:
    """A payment chained after `previous`, signed with the rig terminal's key (a forged replay)."""
    prev = record.decode(previous)
    body = bytearray(record.BODY_SIZE)
    record.pack_body(body, record.KIND_PAYMENT, 0, SECURE_UID, prev.terminal_id, prev.seq + 1, prev.time + 60,
                     900, 0, card_auth, record.digest(previous[:record.BODY_SIZE]))
    return bytes(body) + p256.sign_digest(rig.SECRET, record.digest(body))
