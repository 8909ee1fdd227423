"""Updating a terminal's firmware over USB with payments not yet uploaded loses none of them.

The board first runs the firmware of the previous release (PREVIOUS, from this repository's
history): it syncs (its card table is the single file cards.bin of that release), then takes
payments it cannot upload. Provisioning is run again with this tree's firmware (the technician
keeps the key), and the new firmware starts on the same flash: it moves the card table to its
new layout, still knows the cards offline, asks for every card again, and uploads every waiting
record, which the backend accepts.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from caisse_provisioning import bundle
from caisse_provisioning.backend import AdminClient
from caisse_provisioning.device import ANSWER_MARK, Board, serial_transport
from caisse_provisioning.errors import DeviceError
from caisse_provisioning.provision import Options, provision
from tests.provisioning.helpers import DEVICE_TERMINAL, Technician, firmware, settings_for

PREVIOUS = "40561b830492bfac51ab01ee15d2a6ff3f7c82cc"  # firmware 0.1.0: cards.bin, v1 sync
ROOT = Path(__file__).resolve().parents[2]
CARD = "04a1b2c3"

TERMINAL = DEVICE_TERMINAL + """
out = {'cards_version_at_boot': terminal.policy.cards_version, 'files': sorted(storage.names())}

def pay(amount):
    keypad.press(amount + 'V')
    terminal.poll_keys()
    reader.card = Card(binascii.unhexlify(UID))
    terminal.poll_card()
    reader.card = None
    terminal.poll_card()
    while terminal.background_sign():
        pass
    shown = terminal.flow._display.text()
    keypad.press('V')
    terminal.poll_keys()
    return shown
"""

OLD_DAY = TERMINAL + """
first = terminal.sync_now()
out['first_sync'] = [first.error, first.cards]
out['paid'] = [pay('1,10'), pay('2,20'), pay('3,30')]
out['waiting'] = len(terminal.log.pending(100))
print(MARK + json.dumps(out))
"""

NEW_DAY = TERMINAL + """
out['paid_before_sync'] = pay('4,40')  # the moved card table still knows the card
out['waiting'] = len(terminal.log.pending(100))
report = terminal.sync_now()
out['sync'] = [report.error, report.accepted, report.rejected, report.acked_seq, report.cards]
out['cards_version'] = terminal.policy.cards_version
print(MARK + json.dumps(out))
"""


def previous_firmware(tmp_path: Path) -> list[bundle.DeviceFile]:
    done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS, "firmware"],
                          capture_output=True)
    if done.returncode != 0:
        pytest.fail(f"the previous release's firmware is read from git history ({PREVIOUS[:8]}): "
                    f"{done.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(tmp_path, filter="data")
    return bundle.build(tmp_path / "firmware")


def install(backend, board, files: list[bundle.DeviceFile], vendor_id: int, technician: Technician):
    settings = settings_for(backend.url, backend.token)
    admin = AdminClient.connect(settings)
    try:
        return provision(Options(vendor_id=vendor_id, port=board.port, hardware_selftest=False),
                         settings=settings, admin=admin, find_port=lambda p: board.port,
                         open_board=lambda p: Board(serial_transport(p), p), hooks=technician.hooks(),
                         firmware=lambda: files)
    finally:
        admin.close()


def run_on_board(board, script: str) -> dict:
    device = Board(serial_transport(board.port), board.port)
    device.start()
    try:
        return device.ask(script.replace("UID", repr(CARD)).replace("MARK", repr(ANSWER_MARK)),
                          doing="une journée", timeout_s=120)
    except DeviceError as error:
        raise AssertionError(error.traceback) from error
    finally:
        device.finish()


def test_an_update_over_usb_keeps_the_waiting_payments_and_uploads_them(board, backend, vendor_id, tmp_path):
    with backend.admin() as client:
        household = client.post("/v1/admin/households", json={"name": "Famille Martin", "members": 3,
                                                               "zone": "Nord"}).json()
        assert client.post("/v1/admin/cards", json={"household_id": household["id"], "uid": CARD}).status_code == 201
        assert client.post(f"/v1/admin/households/{household['id']}/credits",
                           json={"amount_cents": 5000}).status_code == 201

    first = install(backend, board, previous_firmware(tmp_path), vendor_id, Technician())
    old = run_on_board(board, OLD_DAY)
    assert old["first_sync"] == [None, 1]
    assert all("Paiement accepté" in shown for shown in old["paid"]) and old["waiting"] == 3
    assert (board.flash_dir / "data" / "cards.bin").exists()  # the previous release's table

    again = install(backend, board, firmware(), vendor_id, Technician(answers=[False]))  # keep the key
    assert again.terminal_id == first.terminal_id and again.key_status == "conservée"
    assert again.files_copied > 0

    new = run_on_board(board, NEW_DAY)
    assert new["cards_version_at_boot"] == 0  # a full sync: the v1 entries had no household
    assert "cards.bin" not in new["files"]
    assert "Paiement accepté" in new["paid_before_sync"] and new["waiting"] == 4
    assert new["sync"] == [None, 4, [], 4, 1] and new["cards_version"] > 0
    with backend.admin() as client:
        terminal = client.get(f"/v1/admin/terminals/{first.terminal_id}").json()
        balance = client.get(f"/v1/admin/households/{household['id']}").json()["balance_cents"]
    assert terminal["acked_seq"] == 4
    assert balance == 5000 - 110 - 220 - 330 - 440
