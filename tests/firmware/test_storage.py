"""FileStorage, the hal.Storage of the device (LittleFS) and of CPython runs."""

from tests.firmware.mpy_runtime import run

SCRIPT = """
from caisse_terminal.storage import FileStorage
from caisse_terminal import policy, sim

storage = FileStorage(ROOT)
storage.replace("t.bin", bytes(range(64)))
buf = bytearray(4)
with storage.reader("t.bin") as r:
    print(r.readinto(8, buf), list(buf), r.readinto(62, buf), list(buf[:2]))

# The card table searched through one open file gives what the in-memory table gives.
entries = b"".join(bytes([7]) + bytes([4, 0xA0 + i, 1, 2, 3, 4, 5]) + bytes(3) + bytes([i % 2]) + (1000 * i).to_bytes(4, "big")
                   + bytes(16) + bytes([0, 0, 0, i]) for i in range(40))  # no member code: zero salt and verifier
for s in (storage, sim.MemoryStorage()):
    p = policy.Policy(s, None, sim.ManualClock())
    p.apply_cards(entries, True)
    print(p.card_count(), p.lookup(bytes([4, 0xA0 + 17, 1, 2, 3, 4, 5])), p.lookup(bytes([4, 0xFF, 1, 2, 3, 4, 5])))
"""

EXPECTED = ["4 [8, 9, 10, 11] 2 [62, 63]", "40 (1, 17000) None", "40 (1, 17000) None"]


def test_a_reader_reads_at_offsets_and_the_card_lookup_agrees_under_cpython(tmp_path, capsys):
    exec(f"ROOT = {str(tmp_path)!r}\n" + SCRIPT, {})
    assert capsys.readouterr().out.splitlines() == EXPECTED


def test_a_reader_reads_at_offsets_and_the_card_lookup_agrees_under_micropython():
    assert run("ROOT = '/flash_data'\n" + SCRIPT).splitlines() == EXPECTED
