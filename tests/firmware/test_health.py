"""Under CPython: a full flash never hides a committed payment, the boot streak that decides
safe mode, health counters that survive a full flash, the part each error is blamed on."""

import json
import sys

import pytest

from tests.firmware.mpy_runtime import ROOT

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))
sys.path.insert(0, str(ROOT / "firmware"))

import rig  # noqa: E402

from caisse_terminal import flow, health, sim  # noqa: E402
from caisse_terminal.hal import Card  # noqa: E402
from caisse_terminal.health import Health, kind_of  # noqa: E402


@pytest.mark.parametrize("room", [0, 1, 50, 95])  # a BODY frame is 96 bytes
def test_a_write_refused_by_a_full_flash_never_hides_a_later_payment(room):
    # Before: the log went on appending after the fragment the refused write left, and the next
    # boot's recovery stopped at the fragment: an approved payment written after it was lost.
    r = rig.Rig()
    assert "Paiement accepté" in r.pay("1", rig.ALICE)
    r.keys("V")
    r.storage.capacity = sum(len(d) for d in r.files.values()) + room
    r.keys("2V")
    r.reader.card = Card(rig.ALICE)
    with pytest.raises(OSError):
        r.terminal.poll_card()
    assert list(r.display.lines) == list(flow.STORAGE_ERROR) and r.beeper.events[-1] == "decline"
    assert r.log.next_seq == 2  # nothing committed
    r.reader.card = None
    r.terminal.poll_card()
    r.storage.capacity = -1  # room again (the supervisor's log.recover() is not even needed)
    r.keys("V")
    assert "Paiement accepté" in r.pay("3", rig.ALICE)
    r.terminal.background_sign()
    again = rig.Rig(files=r.files)
    assert again.log.next_seq == 3
    assert [int.from_bytes(b[16:20], "big") for b in again.log.bodies()] == [100, 300]


def test_a_frame_that_landed_whole_before_the_error_counts_as_committed():
    r = rig.Rig()
    append = r.storage.append

    def append_then_fail(name, data):
        append(name, data)
        if len(data) == 96:  # the BODY frame
            raise OSError(5)

    r.storage.append = append_then_fail
    assert "Paiement accepté" in r.pay("4", rig.ALICE)
    r.storage.append = append
    assert rig.Rig(files=r.files).log.next_seq == 2 == r.log.next_seq


def test_crash_and_watchdog_resets_in_a_row_boot_into_safe_mode_power_on_does_not():
    storage = sim.MemoryStorage()
    h = Health(storage)
    assert h.on_boot(watchdog_reset=False) is False  # power-on
    h.before_reset(health.CRASH, ValueError("boom"))
    assert Health(storage).on_boot(watchdog_reset=False) is False
    assert Health(storage).on_boot(watchdog_reset=True) is False  # streak 2
    assert Health(storage).on_boot(watchdog_reset=False) is False  # a power-on does not count
    assert Health(storage).on_boot(watchdog_reset=True) is True  # the third in a row
    h = Health(storage)
    assert (h.boots, h.streak, h.crash_resets, h.watchdog_resets, h.safe_mode) == (5, 3, 1, 2, True)
    assert h.last_error == "ValueError: boom"
    assert Health(storage).on_boot(watchdog_reset=False) is True  # switching it off and on is no way out
    h = Health(storage)
    h.retry()
    assert Health(storage).on_boot(watchdog_reset=False) is False
    assert Health(storage).on_boot(watchdog_reset=True) is True  # one more reset: back to safe mode
    h = Health(storage)
    h.healthy()
    assert Health(storage).streak == 0


def test_a_technician_reset_is_one_safe_mode_boot():
    storage = sim.MemoryStorage()
    Health(storage).before_reset(health.TECHNICIAN)
    assert Health(storage).on_boot(watchdog_reset=False) is True
    assert Health(storage).on_boot(watchdog_reset=False) is False


def test_counters_live_on_when_the_flash_is_full_and_a_corrupt_file_is_not_fatal():
    storage = sim.MemoryStorage()
    h = Health(storage)
    h.error("i2c", OSError(19))
    storage.capacity = 0
    h.error("flash", OSError(28))
    assert h.save() is False and h.save_failures >= 1 and h.errors["flash"] == 1
    storage.capacity = -1
    assert h.save() is True and json.loads(storage.read(health.HEALTH_FILE))["errors"]["flash"] == 1
    storage.replace(health.HEALTH_FILE, b"\xff{not json")
    assert Health(storage).boots == 0


class PN532Timeout(Exception):
    pass


class ATECCCommError(Exception):
    pass


@pytest.mark.parametrize(("exc", "default", "kind"), [
    (PN532Timeout(), "other", "nfc"), (ATECCCommError(), "nfc", "secure_element"), (OSError(28), "nfc", "flash"),
    (OSError(19), "other", "i2c"), (OSError(110), "sync", "i2c"), (OSError(2), "sync", "sync"),
    (ValueError(), "other", "other"),
])
def test_each_error_is_blamed_on_the_part_it_names(exc, default, kind):
    assert kind_of(exc, default) == kind


def test_an_error_text_is_printable_ascii_and_short():
    assert health.describe(OSError("é" * 200)) == ("OSError: " + "?" * 71)
