"""The terminal loop's worst pause, measured inside the real MicroPython (WebAssembly port).

    .venv/bin/python benchmarks/firmware_loop.py

The terminal boots (boot.py, main.py) on the simulated PN532, ATECC608 and SSD1306 of
tests/firmware/sim/market.py, then each piece of work the loop runs without scanning the keypad
is timed on its own: a step of each task, and the longest stretch between two pump calls
inside a signature, the first signature's comb table, and a sync. The port's clock ticks in
milliseconds, so each block is repeated and averaged. The longest block is the loop's worst
pause; a key press shorter than it plus three scans (the debounce) could go unseen.

The wasm port is not an ESP32. The estimate multiplies Python time by 30 (the factor of
docs/performance.md#terminal) and adds the I2C bus time the simulation does not spend: 90 us a
byte at 100 kHz (9 clocks), one more byte a transaction for the address. DNS, connect and the
TLS handshake of a sync are not measured here (there is no network).
"""

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.firmware.test_recovery import provision, stall  # noqa: E402

ESP32_FACTOR = 30
BUS_US_PER_BYTE = 90

SCRIPT = r"""
import gc, json, time, binascii
import rig
from i2c_bus import FakeI2C
from pn532_sim import BasicCard
from caisse_terminal import p256, policy as policy_module

st = Stall()
st.boot(machine.PWRON_RESET, until_ms=3000)  # boot, first sync (the comb table), idle
t = st.terminal
bus = [0]
writeto, readfrom_into = FakeI2C.writeto, FakeI2C.readfrom_into
def counted_write(self, address, buf, stop=True):
    bus[0] += len(buf) + 1
    return writeto(self, address, buf, stop)
def counted_read(self, address, buf, stop=True):
    bus[0] += len(buf) + 1
    return readfrom_into(self, address, buf, stop)
FakeI2C.writeto, FakeI2C.readfrom_into = counted_write, counted_read
out = {}

def block(name, fn, n):
    gc.collect()
    b = bus[0]
    t0 = time.ticks_ms()
    for _ in range(n):
        fn()
    ms = time.ticks_diff(time.ticks_ms(), t0)
    out[name] = [ms * 1000 / n, (bus[0] - b) / n]

keypad = t._keypad
block('keypad scan', keypad.scan, 500)
block('key: amount digit typed and drawn', lambda: (t.flow.key('1'), t.flow.key('<')), 200)
screen = st.screen
def one_page():
    screen.dirty = 1
    screen.flush_step()
block('screen: one page sent', one_page, 200)
t.power.nfc_on = True
st.pn.powered_down = False
block('card poll, empty field', t.poll_card, 200)
block('tick (timers, power, battery)', t.tick, 200)

# A tap that pays: the PN532 read, the policy, the commit, the result drawn.
taps = []
for i in range(20):
    t.flow.key('X'); t.flow.key('1'); t.flow.key('V')
    card = BasicCard(rig.CAROL)
    st.pn.field.append(card)
    gc.collect()
    b = bus[0]
    t0 = time.ticks_ms()
    t.poll_card()
    taps.append((time.ticks_diff(time.ticks_ms(), t0), bus[0] - b))
    st.pn.field.remove(card)
    t.poll_card()
    t.indicator.pending = None
    t.flow.key('V')
out['card poll: a tap that pays'] = [sum(m for m, _ in taps) * 1000 / len(taps), sum(b for _, b in taps) / len(taps)]

# Inside a signature and the comb table: the average stretch between two pump calls.
calls = [0]
def idle():
    calls[0] += 1
signer = t.signer
signer.idle = idle
gc.collect()
t0 = time.ticks_ms()
for i in range(10):
    p256.sign_digest(rig.SECRET, bytes([i]) * 32, idle)
ms = time.ticks_diff(time.ticks_ms(), t0)
out['signature: between two pump calls'] = [ms * 1000 / calls[0], 0]
out['signature: whole, pumped (not a pause)'] = [ms * 1000 / 10, 0]
k = int.from_bytes(bytes(range(1, 33)), 'big')
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # p256's order (its _N is compiled away)
block('signature: one inversion (the longest piece)', lambda: p256._inverse(k, N), 50)
calls[0] = 0
p256._table = None
gc.collect()
t0 = time.ticks_ms()
p256._mul_g(5, idle)
ms = time.ticks_diff(time.ticks_ms(), t0)
out['comb table at the first signature: between two pump calls'] = [ms * 1000 / calls[0], 0]

# The sync's work between two network waits: a page of 512 cards decoded and merged, the
# upload batch built from the log, the health report.
cards = b''.join(rig.entry(bytes([4, i >> 8, i & 255, 1, 2, 3, 4]), 0, 1000 + i) for i in range(512))
answer = json.dumps({'server_time': rig.T0, 'acked_seq': 0, 'cards_version': 9, 'full': False, 'more': False,
                     'cards': binascii.b2a_base64(cards).decode().strip(), 'limits': {}}).encode()
parsed = json.loads(answer)
packed = binascii.a2b_base64(parsed['cards'].encode())
block('sync: a page answer parsed (json, 22 KB)', lambda: json.loads(answer), 3)
block('sync: a page merged into the card table (512 cards)', lambda: t.policy.apply_cards(packed, False), 3)
delta = packed[:16 * 32]
block('sync: a delta of 16 cards merged', lambda: t.policy.apply_cards(delta, False), 10)
block('sync: an upload batch built (32 records)', lambda: json.dumps(
    {'records': [binascii.b2a_base64(r).decode().strip() for r in t.log.pending(32)]}), 10)
block('sync: health report body', lambda: t.health.report(log=t.log, unsent=0, uptime_s=1, battery_mv=3900,
                                                          battery_low=False), 50)
# What the simulated chips and pins cost in Python (real hardware on the device, where their
# time is the bus time added to the estimate instead).
page = b'\x40' + bytes(128)
block('sim: SSD1306 taking one page', lambda: st.oled.write(page), 200)
poll = st.pn
frame = b'\x00\x00\xff\x04\xfc\xd4\x4a\x01\x00\xe1\x00'
rx = bytearray(80)
def pn_poll():
    poll.write(frame); poll.read(rx[:1]); poll.read(rx[:7]); poll.read(rx[:1]); poll.read(rx[:80])
block('sim: PN532 answering one poll', pn_poll, 200)
pins = keypad.cols + keypad.rows
block('sim: the 16 key pin reads and 8 row writes of a scan',
      lambda: [c.value() for c in keypad.cols for _ in range(4)] + [r.value(1) for r in keypad.rows for _ in range(2)], 200)
print('@@bench ' + json.dumps(out))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        flash = Path(folder) / "flash"
        provision(flash, secure_element=False)
        out = stall(SCRIPT, flash)
    line = next(x for x in out.splitlines() if x.startswith("@@bench "))
    data = json.loads(line[len("@@bench "):])

    def esp32_ms(us: float, nbytes: float) -> float:
        return (us * ESP32_FACTOR + nbytes * BUS_US_PER_BYTE) / 1000

    sims = {"screen: one page sent": "sim: SSD1306 taking one page",
            "card poll, empty field": "sim: PN532 answering one poll",
            "card poll: a tap that pays": "sim: PN532 answering one poll",
            "keypad scan": "sim: the 16 key pin reads and 8 row writes of a scan"}
    width = max(map(len, data))
    print(f"{'block':<{width}}  {'wasm ms':>8}  {'sim ms':>7}  {'bus bytes':>9}  {'ESP32 est. ms':>13}")
    rows = []
    for name, (us, nbytes) in data.items():
        if name.startswith("sim: "):
            continue
        sim_us = data[sims[name]][0] if name in sims else 0.0
        rows.append((esp32_ms(max(0.0, us - sim_us), nbytes), name, us, sim_us, nbytes))
    for estimate, name, us, sim_us, nbytes in sorted(rows, reverse=True):
        print(f"{name:<{width}}  {us / 1000:>8.3f}  {sim_us / 1000:>7.3f}  {nbytes:>9.0f}  {estimate:>13.1f}")
    print("ESP32 estimate: (wasm - sim) x 30 + bus bytes x 90 us. Not pauses: the whole pumped signature.")


if __name__ == "__main__":
    main()
