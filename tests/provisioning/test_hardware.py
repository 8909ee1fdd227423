"""Provisioning with the real hardware self-test on complete simulated boards (board_hw.py):
with and without a secure element, and with a part that does not answer."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from caisse_provisioning.errors import SecureElementNotReady, SelfTestFailed
from tests.provisioning.helpers import run_provision, settings_for
from tests.provisioning.simboard.launcher import Hardware
from tests.provisioning.test_provision import terminals_of


def public_point(secret_hex: str) -> str:
    key = ec.derive_private_key(int(secret_hex, 16), ec.SECP256R1())
    return key.public_key().public_bytes(serialization.Encoding.X962,
                                         serialization.PublicFormat.UncompressedPoint).hex()


def test_a_complete_board_without_secure_element_passes_the_hardware_self_test(board, backend, vendor_id):
    summary = run_provision(settings_for(backend.url, backend.token), board.port, vendor_id, hardware_selftest=True)
    assert summary.key_kind == "logiciel"
    assert summary.selftest == [
        "signature vérifiée avec la clé du serveur",
        "OK    Bus I2C : 2 composant(s) sur le bus",
        "OK    Ecran : SSD1306 128x64",
        "OK    Lecteur NFC : PN532 version 1.6",
        "OK    Element securise : absent : cle logicielle",
        "OK    Cle de signature : cle logicielle (/data/key.bin)",
        "OK    Clavier : aucune touche bloquee",
        "OK    Buzzer et LED : bip joue (a ecouter)",
    ]
    log = board.hardware_log()
    assert "pwm 23 freq 2700 duty 32768" in log and "led_green 1" in log, log
    assert [t["status"] for t in terminals_of(backend)] == ["active"]


def test_a_board_with_secure_element_gets_its_key_from_genkey(make_board, backend, vendor_id):
    board = make_board(Hardware(secure_element="locked"))
    settings = settings_for(backend.url, backend.token)
    summary = run_provision(settings, board.port, vendor_id, hardware_selftest=True)
    assert summary.key_kind == "atecc608" and summary.key_status == "créée"
    chip = board.secure_element_state()
    assert chip["genkeys"] == 1 and list(chip["keys"]) == ["0"]
    # The registered key is the one the chip made in slot 0, and the private key stayed there.
    assert public_point(chip["keys"]["0"]) == summary.public_key
    with backend.admin() as client:
        terminal = client.get(f"/v1/admin/terminals/{summary.terminal_id}").json()
    assert terminal["status"] == "active" and terminal["public_key"] == summary.public_key
    data = board.flash_dir / "data"
    assert (data / "key.se").exists() and not (data / "key.bin").exists()
    assert chip["keys"]["0"] not in summary.as_text()
    assert "signature vérifiée avec la clé du serveur" in summary.selftest  # the host challenge
    assert "OK    Cle de signature : zones config et donnees verrouillees" in summary.selftest
    assert "OK    Element securise : ATECC608 revision 00006003" in summary.selftest
    assert json.loads((data / "config.json").read_text())["terminal_id"] == summary.terminal_id

    # Re-run: the chip's key is read back (GenKey public mode), not made again.
    again = run_provision(settings, board.port, vendor_id, hardware_selftest=True)
    assert again.key_status == "conservée" and again.public_key == summary.public_key
    assert board.secure_element_state()["genkeys"] == 1


def test_rotating_a_secure_element_key_makes_a_new_one_in_the_chip(make_board, backend, vendor_id):
    from tests.provisioning.helpers import Technician

    board = make_board(Hardware(secure_element="locked"))
    settings = settings_for(backend.url, backend.token)
    first = run_provision(settings, board.port, vendor_id)
    rotated = run_provision(settings, board.port, vendor_id, Technician(answers=[True]))
    chip = board.secure_element_state()
    assert chip["genkeys"] == 2 and public_point(chip["keys"]["0"]) == rotated.public_key != first.public_key
    assert rotated.revoked_terminal_id == first.terminal_id


def test_an_unresponsive_nfc_reader_fails_the_self_test_and_rolls_back(make_board, backend, vendor_id):
    board = make_board(Hardware(secure_element=None, nfc="absent"))
    with pytest.raises(SelfTestFailed) as failed:
        run_provision(settings_for(backend.url, backend.token), board.port, vendor_id, hardware_selftest=True)
    text = str(failed.value)
    assert text.startswith("Auto-test du matériel en échec :")
    assert "ECHEC Lecteur NFC : PN532 not answering at I2C address 0x24" in text
    assert "ECHEC Bus I2C : absent(s) du bus I2C : 0x24" in text
    assert "Ecran" not in text and "Clavier" not in text  # only the failing parts are listed
    assert "À vérifier : les branchements des composants" in text
    assert [t["status"] for t in terminals_of(backend)] == ["revoked"]
    data = board.flash_dir / "data"
    assert not (data / "config.json").exists() and not (data / "key.bin").exists()


def test_a_silent_nfc_reader_and_a_stuck_key_are_both_reported(make_board, backend, vendor_id):
    board = make_board(Hardware(nfc="silent", stuck_key=(1, 2)))
    with pytest.raises(SelfTestFailed) as failed:
        run_provision(settings_for(backend.url, backend.token), board.port, vendor_id, hardware_selftest=True)
    failing = [line.strip().split(" : ")[0] for line in str(failed.value).splitlines() if "ECHEC" in line]
    assert failing == ["ECHEC Lecteur NFC", "ECHEC Clavier"]
    assert [t["status"] for t in terminals_of(backend)] == ["revoked"]
    assert not (board.flash_dir / "data" / "key.se").exists()


def test_an_unlocked_secure_element_stops_before_registering(make_board, backend, vendor_id):
    board = make_board(Hardware(secure_element="unlocked"))
    with pytest.raises(SecureElementNotReady) as refused:
        run_provision(settings_for(backend.url, backend.token), board.port, vendor_id, hardware_selftest=True)
    assert "n'est pas verrouillé" in str(refused.value) and "À vérifier" in str(refused.value)
    assert terminals_of(backend) == []
    assert board.secure_element_state()["genkeys"] == 0
    assert not (board.flash_dir / "data" / "key.se").exists()
