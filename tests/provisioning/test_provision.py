"""Provisioning a simulated board against the real backend, and its failure paths."""

from __future__ import annotations

import json

import pytest

from caisse_provisioning.errors import BackendUnreachable, KeyRotationRefused, VendorUnknown
from tests.provisioning.helpers import Technician, firmware, flash_files, run_provision, settings_for


def test_provisioning_registers_the_key_made_on_the_device_and_configures_it(board, backend, vendor_id):
    tech = Technician()
    summary = run_provision(settings_for(backend.url, backend.token), board.port, vendor_id, tech,
                            wifi_ssid="MarcheJaures", wifi_password="secret-wifi")
    assert summary.terminal_id is not None and summary.key_status == "créée"
    with backend.admin() as client:
        terminal = client.get(f"/v1/admin/terminals/{summary.terminal_id}").json()
    assert terminal["status"] == "active" and terminal["vendor_id"] == vendor_id
    assert terminal["public_key"] == summary.public_key
    key_on_flash = (board.flash_dir / "data" / "key.bin").read_bytes()
    assert len(key_on_flash) == 32 and key_on_flash.hex() not in summary.as_text()
    config = json.loads((board.flash_dir / "data" / "config.json").read_text())
    assert config["terminal_id"] == summary.terminal_id
    network = json.loads((board.flash_dir / "data" / "provision.json").read_text())
    assert network["backend_url"] == backend.url and network["wifi"]["ssid"] == "MarcheJaures"
    assert {f.path for f in firmware()} <= flash_files(board.flash_dir)
    assert "signature vérifiée avec la clé du serveur" in summary.selftest
    assert f"n°{summary.terminal_id}" in summary.as_text()
