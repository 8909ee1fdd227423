"""Time on a board without an RTC battery: a power cut sends the ESP32's clock back to 2000.

The terminal keeps time itself (caisse_terminal.clock): after a boot without a sync its time is
the last moment it knows passed plus the ticks since boot, its records say so (flag 0x02), and
the offline age limit keeps counting. Intervals survive the wrap of ticks_ms.
"""

import sys

from tests.firmware.mpy_runtime import ROOT, run

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

from caisse_terminal import clock, flow, record, sim  # noqa: E402
from tests.firmware.test_flow import records  # noqa: E402

HOUR = 3600


def power_cut(r: rig.Rig, **kw) -> rig.Rig:
    """The power fails and comes back: same flash, the RTC at 2000-01-01, ticks from zero."""
    return rig.Rig(files=r.files, now=rig.EPOCH_2000, **kw)


def test_a_power_cut_does_not_send_the_records_back_to_2000_and_flags_them():
    r = rig.Rig()
    r.clock.advance(HOUR)
    assert r.pay("2", rig.ALICE).startswith("Paiement accepté")
    after = power_cut(r)
    after.clock.advance(5)
    assert after.pay("3", rig.ALICE).startswith("Paiement accepté")
    before, cut = records(after)
    assert before.flags == 0 and before.time == rig.T0 + HOUR
    assert cut.flags == record.FLAG_UNTRUSTED_TIME
    assert cut.time == rig.T0 + HOUR + 5  # the newest record's time, plus the ticks since boot


def test_after_a_power_cut_payments_stop_once_the_ticks_exceed_what_remained_of_the_offline_limit():
    r = rig.Rig(limits={"offline_max_age_s": 3 * HOUR})
    r.clock.advance(HOUR)
    assert r.pay("1", rig.BOB).startswith("Paiement accepté")  # 2 h of the limit remain
    after = power_cut(r)
    after.clock.advance(2 * HOUR - 10)
    assert after.pay("1", rig.BOB).startswith("Paiement accepté")
    after.clock.advance(11)
    assert after.pay("1", rig.BOB) == "Synchronisation | requise"
    after.terminal.tick()  # the tick task writes the time at least once a minute
    again = power_cut(after)  # so a second cut does not give the limit back
    again.clock.advance(1)
    assert again.pay("1", rig.BOB) == "Synchronisation | requise"


def test_the_time_written_every_minute_bounds_what_a_power_cut_loses():
    r = rig.Rig(limits={"offline_max_age_s": HOUR})
    for _ in range(10):
        r.clock.advance(60)
        r.terminal.tick()
    after = power_cut(r)
    after.clock.advance(1)
    assert after.terminal.clock.now() == rig.T0 + 601
    assert not after.terminal.clock.trusted
    after.clock.advance(HOUR - 600)
    assert after.pay("1", rig.BOB) == "Synchronisation | requise"


def test_a_reset_that_kept_the_rtc_running_uses_it_but_still_flags_the_records():
    r = rig.Rig()
    after = rig.Rig(files=r.files, now=rig.T0 + 2 * HOUR)
    after.pay("1", rig.BOB)
    [rec] = records(after)
    assert rec.time == rig.T0 + 2 * HOUR and rec.flags == record.FLAG_UNTRUSTED_TIME


def test_a_sync_makes_the_time_trusted_again():
    r = power_cut(rig.Rig())
    r.terminal.clock.set(rig.T0 + 7 * HOUR)  # what the sync client does with server_time
    r.pay("1", rig.BOB)
    [rec] = records(r)
    assert rec.flags == 0 and rec.time == rig.T0 + 7 * HOUR


def test_a_card_timeout_fires_across_the_wrap_of_ticks_ms():
    r = rig.Rig(ticks_ms=clock.TICKS_PERIOD - 10_000)
    r.keys("5V")
    r.wait(29)
    assert r.flow.state == flow.WAIT_CARD
    r.wait(2)
    assert r.display.text() == "Délai dépassé"


def test_the_sync_backoff_ends_across_the_wrap_of_ticks_ms():
    from tests.firmware.test_sync import FakeBackend

    backend = FakeBackend()
    backend.down = True
    r = rig.Rig(transport=backend, ticks_ms=clock.TICKS_PERIOD - 5_000)
    client = r.terminal.sync
    assert r.terminal.sync_now().error is not None and not client.due()
    r.clock.advance(14)
    assert not client.due()
    r.clock.advance(1)
    assert client.due()


def test_the_clock_module_keeps_time_across_the_wrap_under_micropython():
    out = run("""
from caisse_terminal import clock, sim
hw = sim.ManualClock(946684800, clock.TICKS_PERIOD - 1500)
storage = sim.MemoryStorage()
storage.replace(clock.CLOCK_FILE, b'\\x69\\x56\\x2e\\x00')  # 1767255552
keeper = clock.TimeKeeper(hw, storage)
for _ in range(30):
    hw.ms += 100
    keeper.now()
print(keeper.now(), keeper.trusted, hw.ticks_ms(), clock.ticks_diff(5, clock.TICKS_PERIOD - 5))
""")
    assert out.split() == ["1767255555", "False", str(1500), "10"]


def test_time_keeper_never_goes_below_what_it_persisted_even_with_a_wrong_rtc():
    storage = sim.MemoryStorage()
    hw = sim.ManualClock(rig.T0)
    keeper = clock.TimeKeeper(hw, storage)
    hw.advance(61)
    assert keeper.persist_if_due() and not keeper.persist_if_due()
    rebooted = clock.TimeKeeper(sim.ManualClock(rig.EPOCH_2000), storage)
    assert rebooted.now() == rig.T0 + 61
