"""A responsive terminal under the WebAssembly port (boot.py and main.py on the simulated
chips, tests/firmware/sim/market.py): keys typed while a sync and a software signature run are
all taken, in order; a sync never starts while someone types; the buzzer waits for the screen;
the PN532 sleeps between taps and a key wakes it; the screen dims; the status screen and the
low-battery warning speak French and fit. The power states are also walked under CPython.
"""

import sys

import pytest

from tests.firmware.mpy_runtime import ROOT
from tests.firmware.test_recovery import check_records, health_reports, marks, provision, stall

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))
sys.path.insert(0, str(ROOT / "firmware"))

import rig  # noqa: E402

from caisse_terminal import flow, hal, power, status  # noqa: E402
from caisse_terminal.health import Health  # noqa: E402

MARKET = """
st = Stall()
t_sync, t_sign = [], []
from caisse_terminal import log, terminal
sync_now, sign_pending = terminal.Terminal.sync_now, log.Log.sign_pending
def timed_sync(self):
    start = st.clock.ms
    try:
        return sync_now(self)
    finally:
        t_sync.append((start, st.clock.ms))
def timed_sign(self, signer, limit=8):
    start = st.clock.ms
    try:
        return sign_pending(self, signer, limit)
    finally:
        if st.clock.ms > start:
            t_sign.append((start, st.clock.ms))
terminal.Terminal.sync_now, log.Log.sign_pending = timed_sync, timed_sign
presses = []
def typed(keys, at):
    t = at
    for k in keys:
        presses.append((t, k))
        t += 160
    return st.type(keys, at)
typed('12,34V', at=100)                       # while the sync at boot runs
st.card(rig.CAROL, at=3000)
typed('0,5', at=3150)                         # while the payment's signature runs
typed('X', at=3800)
def probe(name):
    contrast = [c[1] for c in st.oled.commands if c[0] == 0x81]
    on = [c[0] == 0xAF for c in st.oled.commands if c[0] in (0xAE, 0xAF)]
    print('@@probe', name, st.clock.ms, st.pn.powered_down,
          sum(1 for c, _ in st.pn.received if c == 0x4A), contrast[-1], on[-1])
st.loop.at(20000, lambda: probe('idle20'))
st.loop.at(60000, lambda: probe('idle60'))
st.loop.at(50000, lambda: setattr(machine, 'adc_uv', 1700000))   # 3.40 V: low
for i, k in enumerate('12<<'):
    typed(k, at=116000 + 2000 * i)            # slow typing when the next sync is due
st.type('M4', at=140000)
st.type('4', at=141000)
st.type('X', at=142000)
st.loop.at(142500, lambda: probe('woken'))
st.boot(machine.PWRON_RESET, until_ms=145000)
for start, end in t_sync:
    print('@@sync', start, end)
for start, end in t_sign:
    print('@@sign', start, end)
for t, k in presses:
    print('@@press', t, k)
for ms, lines in st.shown:
    print('@@screen', ms, '|'.join(str(x) for x in lines))
print('@@pause', st.loop.max_step_us, st.loop.max_scan_gap_us, st.loop.steps)
for level in (1, 0, 2):
    st.screen.brightness(level)
    print('@@level', level, st.oled.commands[-2:])
st.dump()
"""


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    flash = tmp_path_factory.mktemp("responsive") / "flash"
    provision(flash, secure_element=False)
    return stall(MARKET, flash)


def screens(out):
    lines = [line.split(" ", 2)[1:] for line in out.splitlines() if line.startswith("@@screen ")]
    return [(int(ms), text) for ms, text in lines]


def test_keys_typed_during_a_sync_and_a_signature_are_all_taken_in_order(market):
    syncs = [(int(a), int(b)) for a, b in marks(market, "sync")]
    signs = [(int(a), int(b)) for a, b in marks(market, "sign")]
    presses = [(int(t), k) for t, k in marks(market, "press")]
    first_sync, payment_sign = syncs[0], signs[0]
    # the keys really were pressed (and released) while each ran
    during_sync = [k for t, k in presses if first_sync[0] < t and t + 80 < first_sync[1]]
    during_sign = [k for t, k in presses if payment_sign[0] < t < payment_sign[1]]
    assert len(during_sync) >= 4 and len(during_sign) >= 1
    shown = [s for _, s in screens(market)]
    assert "Présentez|1234|la carte" in shown  # 1, 2, comma, 3, 4, V: nothing lost, in order
    assert "Montant ?|50|Carte: solde" in shown  # 0, comma, 5 typed over the signature
    check_records(market, [1234])


def test_a_sync_never_starts_while_the_keypad_is_in_use(market):
    syncs = [(int(a), int(b)) for a, b in marks(market, "sync")]
    last_key = max(int(t) for t, _ in marks(market, "press") if 116000 <= int(t) < 130000)
    later = [start for start, _ in syncs if start > 100000]
    assert later and later[0] >= last_key + 80 + 5000  # SYNC_QUIET_MS after the last release


def test_the_buzzer_sounds_only_once_the_screen_says_why(market):
    sounds = marks(market, "sound")
    assert [s[1] for s in sounds] == ["approve"]
    _, _, dirty, *lines = sounds[0]
    assert dirty == "0" and " ".join(lines).startswith("Paiement accepté|12,34 EUR")


def test_the_reader_sleeps_between_taps_and_a_key_wakes_it(market):
    probes = {p[0]: p[1:] for p in marks(market, "probe")}
    _, down20, polls20, _ = probes["idle20"][:3] + [None]
    _, down60, polls60 = probes["idle60"][:3]
    assert down20 == "True" and down60 == "True" and polls20 == polls60  # no poll while asleep
    _, down_after, polls_after = probes["woken"][:3]
    assert down_after == "False" and int(polls_after) > int(polls60)


def test_the_screen_dims_when_idle_and_a_key_brings_it_back(market):
    probes = {p[0]: p[1:] for p in marks(market, "probe")}
    assert probes["idle20"][3:] == ["255", "True"]
    assert probes["idle60"][3:] == ["16", "True"]  # contrast 0x10, still on
    assert probes["woken"][3:] == ["255", "True"]
    levels = {int(p[0]): "".join(p[1:]) for p in marks(market, "level")}
    assert levels == {1: "[(129,16),(175,)]", 0: "[(175,),(174,)]", 2: "[(129,255),(175,)]"}


def test_the_status_screen_and_the_low_battery_warning(market):
    shown = [s for ms, s in screens(market) if ms >= 140000]
    assert "Batterie faible|Non envoyés 0|Synchro : <1 min|Erreurs : 0" in shown
    assert "Logiciel 0.1.0|Redémarrages 0|Mém. libre 99 %|Terminal 7" in shown
    assert shown[-1] == "Montant ?|0|Batterie faible"
    report = health_reports(market)[-1]
    assert report["battery_low"] is True and report["battery_mv"] == 3400


# ---- under CPython: the states, the texts -------------------------------------------------------

class Reader:
    def __init__(self):
        self.calls = []

    def sleep(self):
        self.calls.append("sleep")

    def wake(self):
        self.calls.append("wake")


def test_power_states_follow_the_flow_and_the_idle_time():
    r = rig.Rig()
    reader = Reader()
    p = power.Power(r.clock, r.display, reader)
    p.tick(r.flow)
    assert p.nfc_on and p.screen == power.FULL and reader.calls == []
    r.clock.advance(power.NFC_AWAKE_MS // 1000)
    p.tick(r.flow)
    assert not p.nfc_on and reader.calls == ["sleep"]
    r.keys("5V")  # a card is expected: the field is on whatever the idle time
    r.clock.advance(20)
    p.tick(r.flow)
    assert p.nfc_on and reader.calls == ["sleep", "wake"]
    r.keys("X1")  # typing an amount: a tap would be ignored, so no field
    p.activity()
    p.tick(r.flow)
    assert not p.nfc_on
    r.clock.advance(power.SCREEN_DIM_MS // 1000)
    p.tick(r.flow)
    assert p.screen == power.DIM and r.display.level == 1
    r.clock.advance((power.SCREEN_OFF_MS - power.SCREEN_DIM_MS) // 1000)
    p.tick(r.flow)
    assert p.screen == power.OFF and r.display.level == 0
    p.activity()
    assert p.screen == power.FULL and r.display.level == 2


@pytest.mark.parametrize(("mv", "pct"), [(4200, 100), (4150, 100), (3850, 63), (3550, 10), (3300, 0), (3000, 0)])
def test_battery_percent_follows_the_cell_curve(mv, pct):
    assert power.battery_percent(mv) == pct


def test_every_status_line_fits_the_screen_even_with_huge_counters():
    r = rig.Rig()
    health = Health(r.storage)
    health.watchdog_resets = health.crash_resets = 10**9
    health.errors["i2c"] = 10**9

    class Battery:
        battery_mv, battery_low = 4190, False

    for last_sync in (0, rig.T0 - 30, rig.T0 - 3000, rig.T0 - 20000, rig.T0 - 10**9):
        r.terminal.policy.last_sync = last_sync
        r.terminal.policy.terminal_id = 4294967295
        for page in range(status.PAGES):
            lines = status.lines(page, health=health, log=r.log, policy=r.terminal.policy, clock=r.clock,
                                 power=Battery)
            assert len(lines) <= hal.LINES and all(len(line) <= hal.LINE_CHARS for line in lines), lines


def test_the_menu_opens_the_status_screen_and_any_key_turns_its_pages():
    r = rig.Rig()
    r.keys("M")
    assert r.display.lines == list(flow.MENU_LINES)
    r.keys("4")
    assert r.flow.state == flow.STATUS and r.display.lines[1] == "Non envoyés 0"
    r.keys("4")
    assert r.display.lines[0].startswith("Logiciel ")
    r.keys("V")
    assert r.display.lines[1] == "Non envoyés 0"
    r.keys("X")
    assert r.flow.state == flow.AMOUNT
