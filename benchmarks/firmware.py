"""Terminal firmware numbers, measured inside the real MicroPython (WebAssembly port, Node).

    .venv/bin/python benchmarks/firmware.py

Prints heap allocated per tap (gc.mem_alloc delta, gc disabled during the tap), flash bytes
written per tap, payments per MiB of log, and software P-256 signing time. The wasm port is
not an ESP32: docs/performance.md#terminal turns these into a latency budget for the device.
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.firmware.mpy_runtime import run  # noqa: E402

SCRIPT = r"""
import sys, gc, time, json
sys.path.insert(0, '/scenarios')
import rig
from caisse_terminal import log, p256, record, sim

out = {}

# --- signing -----------------------------------------------------------------------------
t = time.ticks_us()
p256.public_key(rig.SECRET)  # builds the comb table once
out['first_public_key_ms'] = time.ticks_diff(time.ticks_us(), t) / 1000
N = 20
t = time.ticks_us()
for i in range(N):
    p256.sign_digest(rig.SECRET, bytes([i]) * 32)
out['sign_ms'] = time.ticks_diff(time.ticks_us(), t) / 1000 / N
gc.collect()
before = gc.mem_alloc()
gc.disable()
p256.sign_digest(rig.SECRET, b'\x07' * 32)
out['sign_heap_bytes'] = gc.mem_alloc() - before
gc.enable()

# --- one tap -------------------------------------------------------------------------------
r = rig.Rig()
for i in range(3):  # warm up: first segment, imports, caches
    r.pay('1', rig.CAROL); r.keys('V')
taps = 10
heap = []
flash = []
tap_us = []
sign_flash = []
for i in range(taps):
    r.keys('12,5')
    gc.collect()
    w0 = r.storage.bytes_written
    before = gc.mem_alloc()
    gc.disable()
    t = time.ticks_us()
    r.keys('V')
    r.tap(rig.CAROL)  # amount validated, card read, policy, commit + sync, beep, screen
    tap_us.append(time.ticks_diff(time.ticks_us(), t))
    heap.append(gc.mem_alloc() - before)
    gc.enable()
    assert r.display.lines[0] == 'Paiement accepté', r.display.text()
    w1 = r.storage.bytes_written
    flash.append(w1 - w0)
    r.terminal.background_sign()
    sign_flash.append(r.storage.bytes_written - w1)
    r.keys('V')
out['tap_heap_bytes'] = sum(heap) // taps
out['tap_heap_max_bytes'] = max(heap)
out['tap_ms'] = sum(tap_us) / taps / 1000
out['tap_flash_bytes'] = sum(flash) // taps
out['signature_flash_bytes'] = sum(sign_flash) // taps

# --- capacity ------------------------------------------------------------------------------
class Instant:
    def sign_digest(self, digest):
        return b'\x01' * 64

storage = sim.MemoryStorage()
lg = log.Log(storage, 32768, 32)  # 1 MiB
lg.recover()
body = bytearray(record.BODY_SIZE)
n = 0
while lg.has_room_for_payment():
    record.pack_body(body, 1, 0, rig.CAROL, 7, lg.next_seq, rig.T0 + n, 100, 0, None, lg.prev_hash)
    lg.commit(body)
    lg.sign_pending(Instant())
    n += 1
out['payments_per_mib'] = n
out['log_bytes_used'] = sum(len(v) for v in storage.files.values())
t = time.ticks_us()
again = log.Log(sim.MemoryStorage(storage.files), 32768, 32)
again.recover()
out['recover_full_mib_ms'] = time.ticks_diff(time.ticks_us(), t) / 1000
print(json.dumps(out))
"""


def main() -> None:
    out = json.loads(run(SCRIPT, mounts={ROOT / "tests/firmware/scenarios": "/scenarios"}))
    width = max(map(len, out))
    for key in sorted(out):
        print(f"{key:<{width}}  {out[key]}")


if __name__ == "__main__":
    main()
