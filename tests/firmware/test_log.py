"""Log details not covered by the power-cut walk: CRC fallback, key storage, asyncio wiring."""

import asyncio
import binascii
import sys

from tests.firmware.mpy_runtime import ROOT, run

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

from caisse_terminal import log, sim  # noqa: E402
from caisse_terminal.hal import Card  # noqa: E402
from caisse_terminal.soft_signer import KEY_FILE, SoftwareSigner  # noqa: E402


def test_the_table_crc32_equals_binascii(monkeypatch):
    data = bytes(range(256)) * 3
    monkeypatch.setattr(log, "_crc32", None)
    assert log.crc32(data) == binascii.crc32(data)
    assert log.crc32(b"") == 0


def test_a_frame_with_one_flipped_bit_ends_the_scan_there():
    r = rig.Rig()
    for amount in ("1", "2", "3"):
        r.pay(amount, rig.CAROL)
        r.keys("V")
    [name] = [n for n in r.files if n.startswith("log")]
    r.files[name][-3] ^= 0x10  # inside the last SIG frame's CRC
    again = rig.Rig(files=r.files)
    assert again.log.next_seq == 4 and again.log.unsigned == [3] and again.log.torn_tails == 1
    assert again.terminal.background_sign() == 1  # appended where the torn frame was cut off
    assert len(again.log.pending(10)) == 3


def test_the_software_key_is_made_once_from_the_random_source_and_kept():
    storage = sim.MemoryStorage()
    draws = []

    def urandom(n):
        draws.append(n)
        return bytes([0xFF]) * n if len(draws) == 1 else bytes([7]) * n  # first draw is >= n

    signer = SoftwareSigner.load_or_create(storage, urandom)
    assert draws == [32, 32] and storage.read(KEY_FILE) == bytes([7]) * 32
    again = SoftwareSigner.load_or_create(sim.MemoryStorage(storage.files), lambda n: bytes(n))
    assert again.public_key() == signer.public_key() and len(signer.public_key()) == 65


def test_the_key_is_made_and_signs_under_micropython():
    out = run("""
from caisse_terminal import sim, p256
from caisse_terminal.soft_signer import SoftwareSigner
import random
st = sim.MemoryStorage()
s = SoftwareSigner.load_or_create(st, lambda n: bytes(random.getrandbits(8) for _ in range(n)))
again = SoftwareSigner.load_or_create(sim.MemoryStorage(st.files))
print(again.public_key() == s.public_key(), len(s.sign_digest(bytes(32))))
""")
    assert out.split() == ["True", "64"]


def test_the_asyncio_tasks_turn_keys_and_taps_into_a_signed_payment():
    r = rig.Rig()

    async def market():
        task = asyncio.create_task(r.terminal.run())
        r.keypad.press("4,2V")
        await asyncio.sleep(0.2)
        r.reader.card = Card(rig.ALICE)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if r.log.next_seq == 2 and not r.log.unsigned:
                break
        task.cancel()

    asyncio.run(market())
    assert r.display.lines[:2] == ["Paiement accepté", "4,20 EUR"]
    assert r.log.next_seq == 2 and r.log.unsigned == []
