"""Flash erases per market day of a terminal, and the time of a sync page (docs/performance.md).

    .venv/bin/python benchmarks/terminal_flash.py [--cards 10000] [--changes 3000] [--payments 300]

A day: 12 hours, a sync every 2 minutes (360), `--changes` card entries changed caisse-wide (each
payment anywhere changes its household's cards, so the sync pages carry them), `--payments` at
this terminal. The firmware of this tree runs under CPython on benchmarks/littlefs_wear.py's flash,
which counts the erases LittleFS would make. The previous release (git history, PREVIOUS) applies
the same pages to its single-file table for comparison. Then the time of a 512-card page and of a
day's usual page, decoded and applied under MicroPython (WebAssembly port), best of 3; the port's
binascii is Python where the ESP32's is C, so its time is left out.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "firmware"), str(ROOT / "benchmarks"), str(ROOT / "tests/firmware/scenarios")]

import rig  # noqa: E402
from littlefs_wear import WearStorage  # noqa: E402

from caisse_terminal import cards, policy, sim  # noqa: E402
from caisse_terminal.hal import Card  # noqa: E402
from caisse_terminal.soft_signer import SoftwareSigner  # noqa: E402
from caisse_terminal.terminal import Terminal  # noqa: E402
from tests.firmware.mpy_runtime import run  # noqa: E402

PREVIOUS = "40561b830492bfac51ab01ee15d2a6ff3f7c82cc"
SYNCS = 360


def entry(uid: bytes, balance: int, household: int) -> bytes:
    return rig.entry(uid, 0, balance, household=household)


class DayBackend:
    """Accepts every upload; each sync answers the cards changed since the last one."""

    def __init__(self, pages: list[list[bytes]]) -> None:
        self.pages = pages
        self.version = 1000
        self.acked = 0
        self.time = rig.T0

    def __call__(self, method, path, headers, body):
        if method == "POST":
            records = json.loads(body)["records"]
            first = self.acked + 1
            results = [{"index": i, "seq": first + i, "status": "accepted"} for i in range(len(records))]
            self.acked += len(records)
            return 200, json.dumps({"results": results, "acked_seq": self.acked}).encode()
        page = self.pages.pop(0) if self.pages else []
        self.version += 1
        wire = b"".join(e for e in page)
        return 200, json.dumps({"v": 2, "server_time": self.time, "acked_seq": self.acked, "cards_version": self.version,
                                "full": False, "more": False, "cards": base64.b64encode(wire).decode(),
                                "limits": {}}).encode()


def day_pages(uids: list[bytes], changes: int, rnd: random.Random) -> list[list[bytes]]:
    per_sync = [changes // SYNCS + (1 if i < changes % SYNCS else 0) for i in range(SYNCS)]
    rnd.shuffle(per_sync)
    return [[entry(u, rnd.randrange(100_000), i) for i, u in enumerate(rnd.sample(uids, k))] for k in per_sync]


def market_day(n_cards: int, changes: int, payments: int) -> dict:
    rnd = random.Random(2)
    uids = [b"\x04" + rnd.randbytes(6) for _ in range(n_cards)]
    storage = WearStorage()
    pol = policy.Policy(storage, None, sim.ManualClock(rig.T0))
    pol.terminal_id, pol.last_sync = rig.TERMINAL_ID, rig.T0
    pol.apply_cards(b"".join(entry(u, 500_000, i) for i, u in enumerate(uids)), True)
    pol.save()
    storage.reset()
    backend = DayBackend(day_pages(uids, changes, rnd))
    clock = sim.ManualClock(rig.T0)
    keypad, reader = sim.QueueKeypad(), sim.FieldReader()
    terminal = Terminal(storage=storage, display=sim.ScreenLog(), keypad=keypad, reader=reader,
                        indicator=sim.Beeper(), clock=clock, signer=SoftwareSigner(rig.SECRET), transport=backend)
    paid = 0
    page_erases = []
    for s in range(SYNCS):
        while paid < payments * (s + 1) // SYNCS:
            keypad.press("3,50V")
            terminal.poll_keys()
            reader.card = Card(uids[paid % n_cards])
            terminal.poll_card()
            reader.card = None
            terminal.poll_card()
            terminal.background_sign()
            keypad.press("V")
            terminal.poll_keys()
            paid += 1
        clock.advance(120)
        backend.time = clock.now()
        before = storage.total("card table")
        report = terminal.sync_now()
        assert report is not None and report.error is None, report
        page_erases.append(storage.total("card table") - before)
    assert backend.acked == paid == payments
    out = {kind: round(storage.total(kind)) for kind in ("card table", "log", "config")}
    out["total"] = round(storage.total())
    out["card table per sync (max)"] = round(max(page_erases), 1)
    # The monthly allowance: every card changes at once, 20 pages of 512 in one sync.
    storage.reset()
    backend.pages = [[entry(u, 600_000, i) for i, u in enumerate(uids[at:at + cards.PAGE_ENTRIES])]
                     for at in range(0, n_cards, cards.PAGE_ENTRIES)]
    full = len(backend.pages)
    for _ in range(full):
        terminal.sync_now()
    out["allowance day, card table (all cards)"] = round(storage.total("card table"))
    return out


OLD_PAGES = """
import json, random, struct, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from caisse_terminal import policy, sim
from littlefs_wear import WearStorage
rnd = random.Random(2)
n, k, pages = int(sys.argv[3]), int(sys.argv[4]), 3
uids = [b"\\x04" + rnd.randbytes(6) for _ in range(n)]
e = lambda u, b: struct.pack(">B10sBi8s8s", len(u), u, 0, b, bytes(8), bytes(8))
storage = WearStorage()
p = policy.Policy(storage, None, sim.ManualClock())
p.apply_cards(b"".join(e(u, 500000) for u in uids), True)
storage.reset()
for _ in range(pages):
    p.apply_cards(b"".join(e(u, rnd.randrange(100000)) for u in rnd.sample(uids, k)), False)
print(json.dumps(storage.total("card table") / pages))
"""


def previous_release_page(n_cards: int, k: int) -> float:
    """Erases of one k-card page on the previous release's table (it rewrites the whole file)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS, "firmware"],
                              capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
            archive.extractall(tmp, filter="data")
        out = subprocess.run([sys.executable, "-c", OLD_PAGES, str(Path(tmp) / "firmware"), str(ROOT / "benchmarks"),
                              str(n_cards), str(k)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)


PAGE_TIME = """
import sys, time, binascii, json
_spent = [0]
class _Timed:  # the port's binascii is Python, the ESP32's is C: its time is left out
    def a2b_base64(self, data):
        t = time.ticks_us()
        r = binascii.a2b_base64(data)
        _spent[0] += time.ticks_diff(time.ticks_us(), t)
        return r
    def __getattr__(self, name):
        return getattr(binascii, name)
sys.modules['binascii'] = _Timed()
sys.path.insert(0, '/scenarios')
import rig
from caisse_terminal import cards, page, sim
from caisse_terminal.storage import FileStorage

class Stream:
    def __init__(self, data):
        self.data, self.at = data, 0
    def readinto(self, buf):
        n = min(len(buf), len(self.data) - self.at)
        buf[:n] = self.data[self.at:self.at + n]
        self.at += n
        return n

spec = json.load(open('/spec/spec.json'))
storage = FileStorage('/table')
table = cards.CardTable(storage)
out = {}
for name, answer in spec.items():
    data = binascii.unhexlify(answer)
    _spent[0] = 0
    t = time.ticks_us()
    table.begin()
    for _ in page.PageReader().read(Stream(data), table):
        pass
    decoded = time.ticks_diff(time.ticks_us(), t) - _spent[0]
    for _ in table.commit(False):
        pass
    out[name] = [decoded / 1000, (time.ticks_diff(time.ticks_us(), t) - _spent[0]) / 1000]
    table.release()
print(json.dumps(out))
"""


def page_times(n_cards: int, usual: int) -> dict:
    """Decode and apply a 512-card page and a usual page under MicroPython (ms, best of the runs)."""
    rnd = random.Random(5)
    uids = [b"\x04" + rnd.randbytes(6) for _ in range(n_cards)]
    with tempfile.TemporaryDirectory() as tmp:
        table_dir, spec_dir = Path(tmp) / "table", Path(tmp) / "spec"
        table_dir.mkdir()
        spec_dir.mkdir()
        by_bucket: dict[int, list[bytes]] = {}
        for i, u in enumerate(uids):
            e = entry(u, 500_000, i)
            by_bucket.setdefault(cards.bucket_of(e, 0), []).append(e)
        for b, found in by_bucket.items():
            (table_dir / cards.bucket_name(b)).write_bytes(b"".join(sorted(found, key=lambda e: e[:11])))

        def answer(k: int) -> str:
            wire = b"".join(entry(u, 7, 0) for u in rnd.sample(uids, k))
            return json.dumps({"v": 2, "server_time": 1, "cards_version": 2, "cards": base64.b64encode(wire).decode()}).encode().hex()

        (spec_dir / "spec.json").write_text(json.dumps({"page of 512": answer(512), f"page of {usual}": answer(usual)}))
        best: dict = {}
        for _ in range(3):
            got = json.loads(run(PAGE_TIME, mounts={table_dir: "/table", spec_dir: "/spec",
                                                   ROOT / "tests/firmware/scenarios": "/scenarios"}))
            for name, (decode, total) in got.items():
                prev = best.get(name)
                best[name] = [min(decode, prev[0]) if prev else decode, min(total, prev[1]) if prev else total]
        return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=3_000, help="card entries changed caisse-wide in a day")
    parser.add_argument("--payments", type=int, default=300, help="payments at this terminal in a day")
    args = parser.parse_args()
    t = time.time()
    day = market_day(args.cards, args.changes, args.payments)
    print(f"market day: {args.cards} cards, {SYNCS} syncs, {args.changes} card changes, {args.payments} payments")
    for kind, erases in day.items():
        print(f"  erases, {kind:<36} {erases:>8,}")
    k = args.changes // SYNCS
    old = previous_release_page(args.cards, k)
    print(f"previous release ({PREVIOUS[:8]}): a {k}-card page erases {old:,.0f} blocks; "
          f"{SYNCS} pages a day: {old * SYNCS:,.0f}")
    for name, (decode, total) in page_times(args.cards, k).items():
        print(f"MicroPython (wasm), {name}: decode {decode:.1f} ms, decode + apply {total:.1f} ms "
              "(Python work: base64 decoding itself is C on the ESP32)")
    print(f"({time.time() - t:.0f} s)")


if __name__ == "__main__":
    main()
