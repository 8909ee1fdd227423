"""The simulated NTAG 424 DNA (sim/ntag424_sim.py) against NXP AN12196 and the host commands."""

from __future__ import annotations

import sys

import pytest

from caisse_common.sun import verify_sun
from caisse_common.ntag424 import Ntag424, Ntag424Error, aes_cbc_decrypt
from caisse_common.personalize import sun_of

from tests.firmware.mpy_runtime import ROOT

sys.path.insert(0, str(ROOT / "tests/firmware/sim"))

from ntag424_sim import Ntag424Dna  # noqa: E402
from pn532_sim import ndef_file  # noqa: E402

h = bytes.fromhex
AN12196_UID = h("04DE5F1EACC040")
TEMPLATE = b"choose.url.com/ntag424?e=" + b"0" * 32 + b"&c=" + b"0" * 16
# FileOption SDM + plain, Read free, Write/RW/Change key 0; SDMOptions C1; meta-read 2,
# file-read 1, counter retrieval 1; PICC data at 0x20, MAC input and MAC at 0x43 (AN12196).
SDM_SETTINGS = h("4000E0C1F121200000430000430000")


def scripted(*chunks: bytes):
    queue = list(chunks)
    return lambda n: queue.pop(0)


def read_ndef(card: Ntag424Dna, chunk: int = 128) -> bytes:
    tag = Ntag424(card.apdu)
    tag.select_ndef_application()
    return tag.read_ndef(chunk)


def test_authenticate_ev2_first_replays_an12196():
    card = Ntag424Dna(AN12196_UID, random_bytes=scripted(h("B9E2FC789B64BF237CCCAA20EC7E6E48"), h("9D00C4DF")))
    card.apdu(h("00A4040007D276000085010100"))
    assert card.apdu(h("9071000002000000")) == h("A04C124213C186F22399D33AC2A30215 91AF")
    answer = card.apdu(h("90AF000020 35C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D 00"))
    assert answer == h("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663 9100")
    assert card.session is not None
    assert (card.session.enc_key, card.session.mac_key) == (h("1309C877509E5A215007FF0ED19CA564"),
                                                            h("4C6626F5E72EA694202139295C7A7FC7"))


def test_change_file_settings_from_an12196_is_accepted_and_answered_with_its_mac():
    card = Ntag424Dna(AN12196_UID, random_bytes=scripted(h("B9E2FC789B64BF237CCCAA20EC7E6E48"), h("9D00C4DF")))
    card.apdu(h("00A4040007D276000085010100"))
    card.apdu(h("9071000002000000"))
    card.apdu(h("90AF000020 35C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D 00"))
    card.session.counter = 1  # AN12196 sends it as the second command of the session
    assert card.apdu(h("905F0000190261B6D97903566E84C3AE5274467E89EAD799B7C1A0EF7A0400")) == h("57BFF87B1241E93D 9100")
    assert card.files[2].sdm == SDM_SETTINGS[3:]


def test_the_sun_message_of_an12196_comes_out_of_the_mirror():
    plain = aes_cbc_decrypt(bytes(16), bytes(16), h("EF963FF7828658A599F3041510671E88"))
    card = Ntag424Dna(AN12196_UID, random_bytes=scripted(plain[11:16]))
    ndef = card.files[2]
    ndef.data[:] = ndef_file(TEMPLATE).ljust(256, b"\x00")
    ndef.sdm = h("C1FE00" "200000" "430000" "430000")  # meta-read and file-read key 0
    card.sdm_read_counter = 0x3C
    picc, mac = sun_of(read_ndef(card)) or (b"", b"")
    assert (picc, mac) == (h("EF963FF7828658A599F3041510671E88"), h("94EED9EE65337086"))
    assert card.sdm_read_counter == 61


def personalized(uid: bytes, meta_key: bytes, file_key: bytes) -> Ntag424Dna:
    card = Ntag424Dna(uid)
    tag = Ntag424(card.apdu)
    tag.select_ndef_application()
    tag.authenticate(0, bytes(16))
    tag.change_file_settings(2, h("4300E0C1F121200000430000430000"))  # Full, Write key 0, SDM
    tag.write_data(2, 0, ndef_file(TEMPLATE))
    tag.change_key(1, file_key, old_key=bytes(16))
    tag.change_key(2, meta_key, old_key=bytes(16))
    assert tag.get_file_settings(2)[:2] == h("0043")
    tag.change_key(0, h("00112233445566778899aabbccddeeff"))
    return card


def test_host_commands_personalize_the_card_and_each_read_session_gives_a_fresh_verifiable_sun():
    uid, meta_key, file_key = h("04A1B2C3D4E5F6"), h("11" * 16), h("22" * 16)
    card = personalized(uid, meta_key, file_key)
    assert card.key_versions == [1, 1, 1, 0, 0]
    first = read_ndef(card, chunk=40)  # in chunks: one read session, one message
    second = read_ndef(card)
    counters = []
    for message in (first, second):
        picc, mac = sun_of(message) or (b"", b"")
        result = verify_sun(meta_key=meta_key, file_key=file_key, picc_data=picc, mac=mac)
        assert result.mac_valid and result.uid == uid
        counters.append(result.counter)
    assert counters == [1, 2]
    tag = Ntag424(card.apdu)
    tag.select_ndef_application()
    tag.authenticate(0, h("00112233445566778899aabbccddeeff"))
    assert b"e=" + b"0" * 32 in tag.read_ndef() and card.sdm_read_counter == 2  # authenticated: static data
    picc, mac = sun_of(second) or (b"", b"")
    assert not verify_sun(meta_key=meta_key, file_key=h("33" * 16), picc_data=picc, mac=mac).mac_valid


def test_the_card_refuses_wrong_keys_forged_macs_bad_crcs_and_unauthenticated_writes():
    card = personalized(h("04A1B2C3D4E5F6"), h("11" * 16), h("22" * 16))
    tag = Ntag424(card.apdu)
    tag.select_ndef_application()
    with pytest.raises(Ntag424Error) as wrong_key:
        tag.authenticate(0, bytes(16))  # the factory key is gone
    assert wrong_key.value.status == 0xAE
    # WriteData of one byte in plain: the URL can no longer be changed without key 0.
    assert card.apdu(h("908D000008020000000100007800")) == h("91AE")
    session = tag.authenticate(0, h("00112233445566778899aabbccddeeff"))
    forged = bytearray(session.wrap(0xF5, b"\x02", b"", full=False))
    forged[-2] ^= 1
    assert card.apdu(bytes(forged)) == h("911E") and card.session is None
    tag.authenticate(0, h("00112233445566778899aabbccddeeff"))
    with pytest.raises(Ntag424Error) as bad_crc:
        tag.change_key(3, h("44" * 16), old_key=h("55" * 16))  # not key 3's old value
    assert bad_crc.value.status == 0x1E and card.keys[3] == bytes(16)

