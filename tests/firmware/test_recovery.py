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

from caisse import protocol

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
