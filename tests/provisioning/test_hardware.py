"""Provisioning with the real hardware self-test on complete simulated boards (board_hw.py):
with and without a secure element (factory-fresh, or locked by someone else), and with a part
that does not answer. The chip's key and member-code key are checked with `cryptography` and
Python's hmac against what the simulated chip keeps."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from caisse.config import Settings
from caisse.terminals.sync import terminal_code_key
from caisse_provisioning import atecc
from caisse_provisioning.errors import SecureElementNotReady, SelfTestFailed
from tests.provisioning.helpers import Technician, run_provision, settings_for
from tests.provisioning.simboard.launcher import Hardware, SimBoard
from tests.provisioning.test_provision import terminals_of


def code_key(terminal_id: int) -> str:
    """The key the test backend (development master) derives for a terminal."""
    return terminal_code_key(Settings(), terminal_id).hex()


def locks(chip: dict) -> tuple[bool, bool]:
    config = bytes.fromhex(chip["config"])
    return config[87] == 0x00, config[86] == 0x00


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


def test_a_factory_fresh_secure_element_is_configured_locked_and_gets_its_keys(make_board, backend, vendor_id):
    board = make_board(Hardware(secure_element="factory"))
    settings = settings_for(backend.url, backend.token)
    summary = run_provision(settings, board.port, vendor_id, hardware_selftest=True)
    assert summary.key_kind == "atecc608" and summary.key_status == "créée"
    chip = board.secure_element_state()
    assert chip["genkeys"] == 1 and list(chip["keys"]) == ["0"]
    assert locks(chip) == (True, True) and atecc.is_caisse_layout(bytes.fromhex(chip["config"]))
    assert chip["slots"]["1"][:64] == code_key(summary.terminal_id)
    assert "zone de configuration verrouillée" in summary.secure_element
    assert summary.member_codes == "clé écrite dans l'ATECC608, zone de données verrouillée, vérifiée"
    assert code_key(summary.terminal_id) not in summary.as_text()
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
    assert (data / "code.se").exists()
    with backend.admin() as client:
        assert client.get(f"/v1/admin/terminals/{summary.terminal_id}").json()["secure_element"] is True

    # Re-run on the locked chip: its key is read back (GenKey public mode), nothing is written.
    again = run_provision(settings, board.port, vendor_id, hardware_selftest=True)
    assert again.key_status == "conservée" and again.public_key == summary.public_key
    assert again.secure_element == "ATECC608 déjà configuré pour la caisse"
    assert again.member_codes == "clé déjà dans l'ATECC608, vérifiée"
    assert board.secure_element_state() == chip


def test_rotating_a_secure_element_key_makes_a_new_one_in_the_locked_chip_with_the_new_code_key(
        make_board, backend, vendor_id):
    board = make_board(Hardware(secure_element="factory"))
    settings = settings_for(backend.url, backend.token)
    first = run_provision(settings, board.port, vendor_id)
    rotated = run_provision(settings, board.port, vendor_id, Technician(answers=[True]))
    chip = board.secure_element_state()
    assert chip["genkeys"] == 2 and public_point(chip["keys"]["0"]) == rotated.public_key != first.public_key
    assert rotated.revoked_terminal_id == first.terminal_id
    assert chip["slots"]["1"][:64] == code_key(rotated.terminal_id) != code_key(first.terminal_id)
    assert rotated.member_codes.startswith("clé écrite")


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


def test_a_secure_element_locked_by_someone_else_stops_before_registering(make_board, backend, vendor_id):
    board = make_board(Hardware(secure_element="foreign"))
    with pytest.raises(SecureElementNotReady) as refused:
        run_provision(settings_for(backend.url, backend.token), board.port, vendor_id, hardware_selftest=True)
    assert "verrouillé avec une autre configuration" in str(refused.value) and "À vérifier" in str(refused.value)
    assert terminals_of(backend) == []
    assert board.secure_element_state() == {"keys": {}, "slots": {}, "genkeys": 0}  # nothing written
    assert not (board.flash_dir / "data" / "key.se").exists()


def test_a_failure_after_the_data_lock_rolls_back_and_a_second_run_finishes_on_the_locked_chip(
        tmp_path, backend, vendor_id):
    settings = settings_for(backend.url, backend.token)
    with SimBoard(tmp_path / "b", hardware=Hardware(nfc="absent")) as board:
        with pytest.raises(SelfTestFailed):
            run_provision(settings, board.port, vendor_id, hardware_selftest=True)
        chip = board.secure_element_state()
        assert locks(chip) == (True, True)  # the chip stays locked: a lock is for good
        assert [t["status"] for t in terminals_of(backend)] == ["revoked"]
    with SimBoard(tmp_path / "b") as board:
        summary = run_provision(settings, board.port, vendor_id, Technician(answers=[True]), hardware_selftest=True)
        chip = board.secure_element_state()
    assert [t["status"] for t in terminals_of(backend)] == ["revoked", "active"]
    assert chip["slots"]["1"][:64] == code_key(summary.terminal_id)  # rewritten after the lock
    assert summary.member_codes.startswith("clé écrite") and chip["genkeys"] == 2
