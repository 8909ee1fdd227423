"""Unix time that never goes backwards, on a board whose clock forgets it at every power cut.

The reference board has no RTC battery: after a power cut the ESP32's clock restarts at
2000-01-01 (1970 on recent ports). A terminal that trusted it would stamp its records in 2000
and, worse, find its last sync in the future, so the offline age limit would never end.

`TimeKeeper` wraps the hardware clock (`hal.Clock`) and keeps the time itself:
- at boot the time is the latest moment known to have passed: what it persisted in `clock.bin`
  (every minute, `persist_if_due`), the last sync's server time, the newest record of the log
  (`at_least`), or the hardware clock when it is ahead (a reset that kept the RTC running);
  then the ticks since boot are added. That time is *untrusted* (`trusted` False) and a record
  made with it carries `record.FLAG_UNTRUSTED_TIME`;
- `set(unix_s)`, from a sync, makes it trusted until the next boot (and sets the RTC too).
Untrusted time is a lower bound of the real time, so the policy's `now - last_sync >
offline_max_age_s` refuses payments once the ticks since boot exceed what remained of the limit
at boot. Time spent without power is not counted: the bound is on powered time
(docs/security.md, "Stolen terminal").

Every interval is measured with `ticks_diff`: `time.ticks_ms()` wraps (every 2**30 ms, 12.4 days,
on MicroPython), so `a - b` on two readings is wrong across the wrap. The elapsed time is summed
on each reading, which the terminal's tick task does ten times a second, far within the half
period (6.2 days) that `ticks_diff` can tell apart.
"""

import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

from .hal import Clock

TICKS_PERIOD = const(1 << 30)  # MicroPython's ticks_ms period on 32-bit ports
TICKS_MAX = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)

try:
    from time import ticks_add, ticks_diff  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython: the same arithmetic as MicroPython's, on the same period
    def ticks_diff(end, start):
        return ((end - start + _TICKS_HALF) & TICKS_MAX) - _TICKS_HALF

    def ticks_add(ticks, delta):
        return (ticks + delta) & TICKS_MAX

CLOCK_FILE = "clock.bin"
PERSIST_EVERY_S = const(60)


class TimeKeeper(Clock):
    def __init__(self, hardware, storage) -> None:
        self._hardware = hardware
        self._storage = storage
        self.trusted = False
        raw = storage.read(CLOCK_FILE)
        saved = struct.unpack(">I", raw)[0] if raw is not None and len(raw) == 4 else 0
        self._base_s = max(saved, hardware.now())  # the time when _elapsed_s was 0
        self._ticks = hardware.ticks_ms()
        self._elapsed_s = 0
        self._ms = 0  # below a second, kept apart so the sums stay small integers (no allocation)
        self._persisted_s = 0

    def _advance(self) -> None:
        ticks = self._hardware.ticks_ms()
        step = ticks_diff(ticks, self._ticks)
        if step > 0:
            self._ms += step
            if self._ms >= 1000:
                self._elapsed_s += self._ms // 1000
                self._ms %= 1000
        self._ticks = ticks

    def now(self) -> int:
        self._advance()
        return self._base_s + self._elapsed_s

    def ticks_ms(self) -> int:
        return self._hardware.ticks_ms()

    def at_least(self, unix_s: int) -> None:
        """Untrusted time moves up to a moment known to have passed (a record, the last sync)."""
        behind = unix_s - self.now()
        if not self.trusted and behind > 0:
            self._base_s += behind

    def set(self, unix_s: int) -> None:
        """The backend's time (a sync): trusted from now until the next boot."""
        self._advance()
        self._base_s = unix_s
        self._elapsed_s = self._ms = self._persisted_s = 0
        self.trusted = True
        self._hardware.set(unix_s)

    def persist_if_due(self) -> bool:
        """Write the time to flash once a minute: a power cut then loses at most that much."""
        now = self.now()
        if self._elapsed_s - self._persisted_s < PERSIST_EVERY_S:
            return False
        self._storage.replace(CLOCK_FILE, struct.pack(">I", now))
        self._storage.sync()
        self._persisted_s = self._elapsed_s
        return True
