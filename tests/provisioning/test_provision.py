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


def terminals_of(backend) -> list[dict]:
    from sqlmodel import select

    from caisse.models import Terminal

    with backend.session() as session:
        return [{"id": t.id, "status": t.status, "vendor_id": t.vendor_id} for t in session.exec(select(Terminal))]


def test_re_running_keeps_the_key_unless_asked_and_copies_nothing(board, backend, vendor_id):
    settings = settings_for(backend.url, backend.token)
    first = run_provision(settings, board.port, vendor_id)
    tech = Technician(answers=[False])
    again = run_provision(settings, board.port, vendor_id, tech)
    assert tech.questions and "déjà enregistré" in tech.questions[0]
    assert again.terminal_id == first.terminal_id and again.key_status == "conservée"
    assert again.files_copied == 0 and tech.files == []
    assert [t["status"] for t in terminals_of(backend)] == ["active"]


def test_rotating_the_key_on_request_revokes_the_old_terminal(board, backend, vendor_id):
    settings = settings_for(backend.url, backend.token)
    first = run_provision(settings, board.port, vendor_id)
    rotated = run_provision(settings, board.port, vendor_id, Technician(answers=[True]))
    assert rotated.public_key != first.public_key and rotated.key_status == "renouvelée"
    assert rotated.revoked_terminal_id == first.terminal_id
    statuses = {t["id"]: t["status"] for t in terminals_of(backend)}
    assert statuses == {first.terminal_id: "revoked", rotated.terminal_id: "active"}


def test_key_rotation_refused_leaves_board_and_backend_as_they_were(board, backend, vendor_id):
    settings = settings_for(backend.url, backend.token)
    first = run_provision(settings, board.port, vendor_id)
    with backend.admin() as client:
        other_vendor = client.post("/v1/admin/vendors", json={"name": "Épicerie", "kind": "shop", "zone": "Sud"}).json()["id"]
    key_before = (board.flash_dir / "data" / "key.bin").read_bytes()
    tech = Technician(answers=[False])
    with pytest.raises(KeyRotationRefused, match="Nouvelle clé refusée") as refused:
        run_provision(settings, board.port, other_vendor, tech)
    assert "autre commerçant" in tech.questions[0]
    assert "À vérifier" in str(refused.value)
    assert (board.flash_dir / "data" / "key.bin").read_bytes() == key_before
    assert terminals_of(backend) == [{"id": first.terminal_id, "status": "active", "vendor_id": vendor_id}]


def test_unknown_vendor_stops_before_touching_the_board(board, backend, vendor_id):
    with pytest.raises(VendorUnknown, match="n°999 n'existe pas"):
        run_provision(settings_for(backend.url, backend.token), board.port, 999)
    assert flash_files(board.flash_dir) == set()
    assert terminals_of(backend) == []


def test_unreachable_backend_says_what_to_check(board):
    with pytest.raises(BackendUnreachable) as error:
        run_provision(settings_for("http://127.0.0.1:9", "token"), board.port, 1)
    assert "ne répond pas" in str(error.value) and "--backend-url" in str(error.value)
    assert flash_files(board.flash_dir) == set()


def test_a_registration_from_before_member_code_keys_needs_a_new_key(board, backend, vendor_id):
    from sqlalchemy import update

    from caisse.models import Terminal

    settings = settings_for(backend.url, backend.token)
    first = run_provision(settings, board.port, vendor_id)
    with backend.session() as session:  # as registered before migration 0018: it gets v1 verifiers
        session.execute(update(Terminal).values(secure_element=None))
        session.commit()
    tech = Technician(answers=[True])
    again = run_provision(settings, board.port, vendor_id, tech)
    assert "enregistré avant les clés des codes membres" in tech.questions[0]
    assert again.revoked_terminal_id == first.terminal_id and again.key_status == "renouvelée"
    with backend.admin() as client:
        assert client.get(f"/v1/admin/terminals/{again.terminal_id}").json()["secure_element"] is False


def test_refusals_are_told_apart_by_status_code_not_by_their_text(backend, vendor_id):
    """An unknown vendor n°409 is not a key the server knows already, however its refusal reads."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from caisse_common.protocol import public_key_bytes
    from caisse_provisioning.backend import AdminClient
    from caisse_provisioning.errors import BackendRefused, KeyAlreadyRegistered

    admin = AdminClient.connect(settings_for(backend.url, backend.token))
    key = public_key_bytes(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(BackendRefused) as refused:
        admin.register(vendor_id=409, public_key=key, secure_element=False)
    assert "409" in str(refused.value) and refused.value.status_code == 404
    assert not isinstance(refused.value, KeyAlreadyRegistered)

    terminal = admin.register(vendor_id=vendor_id, public_key=key, secure_element=False)
    with pytest.raises(KeyAlreadyRegistered) as again:
        admin.register(vendor_id=vendor_id, public_key=key, secure_element=False)
    assert again.value.status_code == 409
    assert admin.terminal(terminal["id"])["status"] == "active"
    assert admin.terminal(terminal["id"] + 404) is None
    admin.close()
