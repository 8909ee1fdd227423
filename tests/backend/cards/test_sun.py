"""SUN message verification (caisse_common.sun) against NXP's published examples and a test-side card."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from caisse.cli.main import app
from caisse.simulation.cards import encode_sun
from caisse_common.sun import SunError, decrypt_picc_data, diversify_key, sdm_mac, session_mac_key, verify_sun

# AN12196: SUN with encrypted PICC data, meta-read and file-read keys all zero.
ZERO_KEY = bytes(16)
AN12196_PICC = bytes.fromhex("EF963FF7828658A599F3041510671E88")
AN12196_MAC = bytes.fromhex("94EED9EE65337086")
AN12196_UID = bytes.fromhex("04DE5F1EACC040")
AN12196_COUNTER = 0x3D
AN12196_SESSION_KEY = bytes.fromhex("3FB5F6E3A807A03D5E3570ACE393776F")

# AN10922 worked example (AES-128): UID, AID 3042F5, system identifier "NXP Abu".
AN10922_MASTER = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
AN10922_UID = bytes.fromhex("04782E21801D80")
AN10922_KEY = bytes.fromhex("A8DD63A3B89D54B37CA802473FDA9175")

keys = st.binary(min_size=16, max_size=16)
uids = st.binary(min_size=7, max_size=7)
counters = st.integers(min_value=0, max_value=(1 << 24) - 1)


def test_the_an12196_picc_data_decrypts_to_its_uid_and_counter() -> None:
    assert decrypt_picc_data(ZERO_KEY, AN12196_PICC) == (AN12196_UID, AN12196_COUNTER)


def test_the_an12196_session_key_and_mac_are_reproduced() -> None:
    assert session_mac_key(ZERO_KEY, AN12196_UID, AN12196_COUNTER) == AN12196_SESSION_KEY
    assert sdm_mac(ZERO_KEY, AN12196_UID, AN12196_COUNTER) == AN12196_MAC


def test_the_an12196_message_verifies() -> None:
    message = verify_sun(meta_key=ZERO_KEY, file_key=ZERO_KEY, picc_data=AN12196_PICC, mac=AN12196_MAC)
    assert (message.uid, message.counter, message.mac_valid) == (AN12196_UID, AN12196_COUNTER, True)


@pytest.mark.parametrize("bit", [0, 7, 33, 63])
def test_a_flipped_mac_bit_fails(bit: int) -> None:
    forged = bytearray(AN12196_MAC)
    forged[bit // 8] ^= 1 << (bit % 8)
    message = verify_sun(meta_key=ZERO_KEY, file_key=ZERO_KEY, picc_data=AN12196_PICC, mac=bytes(forged))
    assert not message.mac_valid
    assert message.uid == AN12196_UID  # still readable, so the card can be flagged


def test_a_wrong_file_key_fails_the_mac() -> None:
    wrong = bytes(15) + b"\x01"
    assert not verify_sun(meta_key=ZERO_KEY, file_key=wrong, picc_data=AN12196_PICC, mac=AN12196_MAC).mac_valid


def test_a_wrong_meta_key_is_an_error() -> None:
    with pytest.raises(SunError) as error:
        verify_sun(meta_key=bytes(15) + b"\x01", file_key=ZERO_KEY, picc_data=AN12196_PICC, mac=AN12196_MAC)
    assert error.value.code == "bad_picc_tag"


@pytest.mark.parametrize("tag", [0x47, 0x87, 0xC4, 0x07, 0x00, 0xFF])
def test_a_forged_picc_tag_is_an_error(tag: int) -> None:
    picc, mac = encode_sun(meta_key=ZERO_KEY, file_key=ZERO_KEY, uid=AN12196_UID, counter=1, tag=tag)
    with pytest.raises(SunError) as error:
        verify_sun(meta_key=ZERO_KEY, file_key=ZERO_KEY, picc_data=picc, mac=mac)
    assert error.value.code == "bad_picc_tag"


@pytest.mark.parametrize(
    ("meta_key", "picc", "mac", "code"),
    [
        (bytes(15), AN12196_PICC, AN12196_MAC, "bad_key"),
        (ZERO_KEY, AN12196_PICC[:15], AN12196_MAC, "bad_length"),
        (ZERO_KEY, AN12196_PICC, AN12196_MAC[:7], "bad_length"),
    ],
)
def test_malformed_inputs_are_named_errors(meta_key: bytes, picc: bytes, mac: bytes, code: str) -> None:
    with pytest.raises(SunError) as error:
        verify_sun(meta_key=meta_key, file_key=ZERO_KEY, picc_data=picc, mac=mac)
    assert error.value.code == code


def test_the_an10922_diversification_example_is_reproduced() -> None:
    key = diversify_key(AN10922_MASTER, AN10922_UID, application_id=bytes.fromhex("3042F5"), system_id=b"NXP Abu")
    assert key == AN10922_KEY


def test_diversification_is_deterministic_and_differs_per_uid() -> None:
    first = diversify_key(AN10922_MASTER, AN10922_UID, system_id=b"caisse")
    assert first == diversify_key(AN10922_MASTER, AN10922_UID, system_id=b"caisse")
    assert first != diversify_key(AN10922_MASTER, bytes.fromhex("04782E21801D81"), system_id=b"caisse")
    assert first != diversify_key(bytes(16), AN10922_UID, system_id=b"caisse")


@pytest.mark.parametrize("length", [0, 32])
def test_diversification_input_out_of_bounds_is_an_error(length: int) -> None:
    with pytest.raises(SunError) as error:
        diversify_key(AN10922_MASTER, bytes(length))
    assert error.value.code == "bad_diversification"


def test_a_31_byte_diversification_input_takes_the_unpadded_path() -> None:
    key = diversify_key(AN10922_MASTER, AN10922_UID, system_id=bytes(24))
    assert len(key) == 16 and key != diversify_key(AN10922_MASTER, AN10922_UID, system_id=bytes(23))


@given(meta_key=keys, master=keys, uid=uids, counter=counters)
def test_generated_cards_round_trip(meta_key: bytes, master: bytes, uid: bytes, counter: int) -> None:
    file_key = diversify_key(master, uid, system_id=b"caisse")
    picc, mac = encode_sun(meta_key=meta_key, file_key=file_key, uid=uid, counter=counter)
    message = verify_sun(meta_key=meta_key, file_key=file_key, picc_data=picc, mac=mac)
    assert (message.uid, message.counter, message.mac_valid) == (uid, counter, True)


@given(meta_key=keys, file_key=keys, uid=uids, counter=counters)
def test_a_mac_for_another_counter_fails(meta_key: bytes, file_key: bytes, uid: bytes, counter: int) -> None:
    picc, _ = encode_sun(meta_key=meta_key, file_key=file_key, uid=uid, counter=counter)
    replayed_mac = sdm_mac(file_key, uid, (counter + 1) % (1 << 24))
    assert not verify_sun(meta_key=meta_key, file_key=file_key, picc_data=picc, mac=replayed_mac).mac_valid


# `caisse card verify-sun`: needs no database, so a bare CliRunner is enough.
AN12196_ARGS = ("card", "verify-sun", "--meta-key", "00" * 16, "--file-key", "00" * 16, "--picc", AN12196_PICC.hex())


def test_verify_sun_prints_the_uid_counter_and_a_valid_mac() -> None:
    result = CliRunner().invoke(app, [*AN12196_ARGS, "--cmac", AN12196_MAC.hex()])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "UID 04de5f1eacc040, compteur de lecture 61, MAC valide"


def test_verify_sun_as_json() -> None:
    result = CliRunner().invoke(app, [*AN12196_ARGS, "--cmac", AN12196_MAC.hex(), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"uid": "04de5f1eacc040", "counter": 61, "mac_valid": True}


def test_verify_sun_exits_1_when_the_mac_is_invalid() -> None:
    result = CliRunner().invoke(app, [*AN12196_ARGS, "--cmac", "94EED9EE65337087", "--json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["mac_valid"] is False


@pytest.mark.parametrize(("cmac", "message"), [("not-hex", "hexadécimal"), ("94EED9EE653370", "bad_length")])
def test_verify_sun_refuses_bad_input_with_a_message(cmac: str, message: str) -> None:
    result = CliRunner().invoke(app, [*AN12196_ARGS, "--cmac", cmac])
    assert result.exit_code == 2
    assert "Erreur :" in result.stderr and message in result.stderr
    assert result.stdout == ""
