"""Recovery under the WebAssembly port: boot.py and main.py on the simulated chips, with the
faults a market day brings (I2C errors, PN532 frame errors, ATECC608 errors, a full flash, a
watchdog reset, a crash loop). The terminal keeps taking payments and loses nothing: every
approved payment reaches the backend once, and `cryptography` verifies each record's signature
and chain (tests/firmware/sim/market.py is the harness).
"""

import base64
import hashlib
import json
import struct
import sys
from pathlib import Path

from caisse_common import protocol
from caisse_provisioning import atecc

from tests.firmware.mpy_runtime import ROOT, run

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))
sys.path.insert(0, str(ROOT / "firmware"))

import rig  # noqa: E402
from caisse_terminal import p256  # noqa: E402
from caisse_terminal.storage import FileStorage  # noqa: E402

SIM = ROOT / "tests/firmware/sim"
SCENARIOS = ROOT / "tests/firmware/scenarios"
PUBLIC = protocol.load_public_key(p256.public_key(rig.SECRET))
PRELUDE = """
import sys
sys.path.insert(0, '/sim')
sys.path.insert(0, '/scenarios')
import machine
import rig
from market import Stall
"""


def provision(flash: Path, *, secure_element: bool) -> None:
    """What provisioning and a first sync leave on the flash (the software key, or the marker of
    the ATECC608's)."""
    storage = FileStorage(str(flash))
    rig.provision(storage)
    storage.replace("provision.json", json.dumps({"backend_url": "http://caisse.test", "wifi": None,
                                                  "ca_file": None}).encode())
    if secure_element:
        storage.replace("key.se", b"slot 0")
    else:
        storage.replace("key.bin", rig.SECRET)


def stall(code: str, flash: Path) -> str:
    return run(PRELUDE + code, mounts={SIM: "/sim", SCENARIOS: "/scenarios"}, persist={flash: "/data"},
               heap_bytes=4 * 1024 * 1024)


def marks(out: str, tag: str) -> list[list[str]]:
    return [line.split(" ")[1:] for line in out.splitlines() if line.startswith("@@" + tag + " ")]


def check_records(out: str, amounts: list[int]) -> None:
    """The backend got exactly these payments, seq 1.., signed by the terminal's key, chained."""
    raws = [bytes.fromhex(hex_) for (hex_,) in marks(out, "record")]
    prev = protocol.ZERO_HASH
    for seq, raw in enumerate(raws, start=1):
        rec = protocol.decode(raw)
        assert rec.seq == seq and rec.prev_hash == prev and protocol.verify(PUBLIC, rec), seq
        prev = rec.digest()
    assert [protocol.decode(raw).amount_cents for raw in raws] == amounts


def health_reports(out: str) -> list[dict]:
    """Every health report the backend got, its signature checked with `cryptography`."""
    reports = []
    for body_b64, sig_hex, time_s in marks(out, "health"):
        body = base64.b64decode(body_b64)
        digest = hashlib.sha256(b"caisse-health-v1" + struct.pack(">II", rig.TERMINAL_ID, int(time_s))
                                + hashlib.sha256(body).digest()).digest()
        assert protocol.verify_digest(PUBLIC, digest, bytes.fromhex(sig_hex))
        reports.append(json.loads(body))
    return reports


def test_a_watchdog_reset_loses_no_payment_and_boot_counts_it(tmp_path):
    flash = tmp_path / "flash"
    provision(flash, secure_element=False)
    # The first boot: a payment is committed, then the background signature hangs without
    # pumping (a stuck computation): the loop stops feeding the watchdog, which resets the chip.
    out = stall("""
st = Stall()
st.type('5V', at=500)
st.card(rig.ALICE, at=1500)
from caisse_terminal import soft_signer
def hang(self, digest):
    while True:
        st.loop.advance(100)
def install():
    soft_signer.SoftwareSigner.sign_digest = hang
st.loop.at(1510, install)  # after the first sync, as the card is read
st.boot(machine.PWRON_RESET, until_ms=120000)
print('@@not reset')
""", flash)
    assert "@@not reset" not in out and len(marks(out, "watchdog")) == 1
    reset_at = int(marks(out, "watchdog")[0][-1])
    assert 30000 < reset_at < 40000  # WATCHDOG_TIMEOUT_MS after the last feed
    # The second boot, a fresh instance over the same flash: the payment is there, unsigned; it
    # is signed and uploaded, and the health report tells the watchdog reset.
    out = stall("""
st = Stall()
st.boot(machine.WDT_RESET, until_ms=8000)
t = st.terminal
print('@@state', t.log.next_seq, len(t.log.unsigned), t.health.watchdog_resets, t.health.streak)
st.dump()
""", flash)
    assert marks(out, "state") == [["2", "0", "1", "1"]]
    check_records(out, [500])
    (report,) = health_reports(out)
    assert report["watchdog_resets"] == 1 and report["boots"] == 2 and report["unsent_records"] == 1


def test_bus_reader_secure_element_and_flash_faults_cost_no_payment(tmp_path):
    flash = tmp_path / "flash"
    provision(flash, secure_element=True)
    image = bytearray(atecc.config_image())
    image[86] = image[87] = 0x00  # both zones locked, as provisioning leaves them
    out = stall(f"""
from caisse_terminal import storage
st = Stall(secret=rig.SECRET, atecc_config={bytes(image)!r})
full = []
append, replace = storage.FileStorage.append, storage.FileStorage.replace
def full_append(self, name, data):
    if full:
        append(self, name, data[:len(data) // 2])  # what fits, then ENOSPC, as LittleFS
        raise OSError(28)
    append(self, name, data)
def full_replace(self, name, data):
    if full:
        raise OSError(28)
    replace(self, name, data)
storage.FileStorage.append, storage.FileStorage.replace = full_append, full_replace
at = st.loop.at
st.type('5V', at=1000); st.card(rig.ALICE, at=1500)
at(2500, lambda: st.bus.failing.update({{0x24: [3, 5]}}))  # EIO from the PN532's address
st.type('6V', at=4000); at(4400, lambda: st.pn.faults.extend(['bad_dcs2', 'truncate']))
st.card(rig.CAROL, at=4600, hold_ms=800)
st.type('7V', at=7000); at(7400, lambda: st.se.faults.append(0x0F))  # execution error
st.card(rig.ALICE, at=7500, hold_ms=400); st.card(rig.ALICE, at=8300, hold_ms=500)
st.type('8V', at=9500); at(9900, lambda: st.se.faults.append('no_wake'))
st.card(rig.CAROL, at=10000, hold_ms=400); st.card(rig.CAROL, at=10800, hold_ms=500)
at(12000, lambda: full.append(1))
st.type('9V', at=12100); st.card(rig.ALICE, at=12500, hold_ms=500)
at(14000, full.clear)
st.type('9V', at=14500); st.card(rig.ALICE, at=15200, hold_ms=500)
st.type('M3', at=16500)  # the vendor asks for a sync from the menu
st.boot(machine.PWRON_RESET, until_ms=19000)
t = st.terminal
print('@@errors', t.health.errors['i2c'], t.health.errors['nfc'], t.health.errors['secure_element'],
      t.health.errors['flash'], t.supervisor.reboot)
for ms, lines in st.shown:
    print('@@screen', ms, '|'.join(str(x) for x in lines))
st.dump()
""", flash)
    check_records(out, [500, 600, 700, 800, 900])
    i2c, nfc, secure_element, flash_errors, reboot = marks(out, "errors")[0]
    assert int(i2c) >= 1 and int(nfc) >= 1 and int(secure_element) >= 2 and int(flash_errors) >= 1
    assert reboot == "None"  # recovered each time: no reset was needed
    screens = [" ".join(line[1:]) for line in marks(out, "screen")]
    assert sum(s.startswith("Erreur signature|Paiement refusé") for s in screens) == 2
    assert sum(s.startswith("Erreur mémoire|Paiement refusé") for s in screens) == 1
    # The buzzer sounded each time after the screen had said why, every page sent.
    sounds = marks(out, "sound")
    assert [s[1] for s in sounds].count("approve") == 5
    for _, sound, dirty, *lines in sounds:
        text = " ".join(lines)
        assert dirty == "0" and text.startswith("Paiement accepté" if sound == "approve" else "Erreur")
    first, report = health_reports(out)  # the sync at boot, then the one asked from the menu
    assert first["errors"] == {kind: 0 for kind in first["errors"]}
    assert report["errors"]["secure_element"] >= 2 and report["errors"]["flash"] >= 1
    assert report["task_restarts"] >= 5 and report["unsent_records"] == 5


def test_a_crash_loop_ends_in_safe_mode_that_leaves_the_console_free(tmp_path):
    flash = tmp_path / "flash"
    provision(flash, secure_element=False)
    # The PN532 dies mid-market: the card task fails, recovery cannot help, the supervisor asks
    # for a reset; then every boot crashes building the reader. The third crash in a row boots
    # into safe mode, where V retries; the reader is back, the terminal takes a payment again.
    # Every boot here is a reset of the same instance (SystemExit), over the same flash.
    out = stall("""
import main
from caisse_terminal.health import Health
from caisse_terminal.storage import FileStorage
st = Stall()
def boot(cause, until_ms):
    try:
        st.boot(cause, until_ms)
        print('@@boot returned')
    except SystemExit:
        print('@@boot reset')
    h = Health(FileStorage('/data'))
    print('@@counters', h.boots, h.streak, h.crash_resets, h.safe_mode, h.safe_mode_boots)
st.type('5V', at=1000); st.card(rig.ALICE, at=1500)
pn = st.bus.chips[0x24]
st.loop.at(3000, lambda: st.bus.chips.pop(0x24))
boot(machine.PWRON_RESET, until_ms=60000)
for _ in range(2):
    boot(machine.SOFT_RESET, until_ms=120000)
st.bus.chips[0x24] = pn  # the technician reseated the reader's cable
st.matrix.press(*market.key_position('V'))
boot(machine.SOFT_RESET, until_ms=120000)  # safe mode: V means retry, and resets
print('@@screen', '|'.join(st.shown[-1][1]))
st.matrix.release()
st.loop.until_ms = None
t0 = st.clock.ms
st.type('6V', at=t0 + 1000); st.card(rig.CAROL, at=t0 + 1500)
st.type('M3', at=t0 + 3000)
boot(machine.SOFT_RESET, until_ms=t0 + 70000)  # a healthy minute clears the streak
# A technician's Ctrl-C on the USB console: reset into technician mode, which hands over the
# REPL on the next Ctrl-C instead of waiting for V.
def interrupt():
    raise KeyboardInterrupt()
st.loop.at(st.clock.ms + 1000, interrupt)
boot(machine.SOFT_RESET, until_ms=st.clock.ms + 5000)
from drivers import keypad
keypad.MatrixKeypad.scan = lambda self: interrupt()
boot(machine.SOFT_RESET, until_ms=st.clock.ms + 5000)
print('@@screen', '|'.join(st.shown[-1][1]))
st.dump()
""".replace("import main\n", "import main, market\n"), flash)
    boots = [b[0] for b in marks(out, "boot")]
    # the supervisor's reset, two crashes at boot, safe mode left with V, a healthy run, Ctrl-C,
    # then technician mode handing the console over
    assert boots == ["reset", "reset", "reset", "reset", "returned", "reset", "returned"]
    # boots, streak, crash resets, safe mode, safe-mode boots, after each boot
    assert marks(out, "counters") == [
        ["1", "0", "0", "False", "0"], ["2", "1", "1", "False", "0"], ["3", "2", "2", "False", "0"],
        ["4", "2", "3", "False", "1"], ["5", "0", "3", "False", "1"], ["6", "0", "3", "False", "1"],
        ["7", "0", "3", "True", "2"]]
    assert marks(out, "screen") == [["Mode", "secours|Pannes", "répétées|V", ":", "réessayer|sinon", "technicien"],
                                    ["Mode", "technicien|Console", "USB|V", ":", "redémarrer"]]
    check_records(out, [500, 600])
