"""Power: the PN532's RF field only while a tap can mean something, the screen dimmed then off
when nobody uses the terminal, and the battery read through its divider.

The RF field (about 100 mA, the biggest consumer: hardware/power.md) is on while a card is
expected (WAIT_CARD, VOID_CARD) and, for a balance check, on the amount screen with nothing
typed until NFC_AWAKE_MS after the last key or tap; otherwise the PN532 is in power-down and
the card task does not poll it. Any key wakes it (and the screen): a member who wants their
balance asks the vendor to press a key, then taps.

The constants below are the duty cycle that hardware/power.toml computes battery life from;
tests/hardware checks the two agree.
"""

from .clock import ticks_diff
from .flow import AMOUNT, VOID_CARD, WAIT_CARD

NFC_AWAKE_MS = 10000
SCREEN_DIM_MS = 30000
SCREEN_OFF_MS = 120000
BATTERY_EVERY_MS = 60000
BATTERY_LOW_MV = 3550  # about 10 % of an 18650 left, an hour of market: the screen says so
FULL = 2
DIM = 1
OFF = 0


def battery_percent(mv: int) -> int:
    """Charge left of a Li-ion cell at rest from its voltage (typical 18650 curve, 0.2C)."""
    points = ((4150, 100), (4000, 85), (3900, 72), (3800, 55), (3700, 35), (3600, 15),
              (3500, 5), (3300, 0))
    if mv >= points[0][0]:
        return 100
    for i in range(1, len(points)):
        hi_mv, hi_pct = points[i - 1]
        lo_mv, lo_pct = points[i]
        if mv >= lo_mv:
            return lo_pct + (mv - lo_mv) * (hi_pct - lo_pct) // (hi_mv - lo_mv)
    return 0


class Power:
    def __init__(self, clock, display, reader, battery=None) -> None:
        self._clock = clock
        self._display = display
        self._reader = reader
        self._battery = battery
        self._activity_ms = clock.ticks_ms()
        self.screen = FULL
        self.nfc_on = True  # the reader comes out of its configuration awake
        self.battery_mv = None
        self.battery_low = False
        self._battery_ms = None

    def activity(self) -> None:
        """A key or a tap: full brightness, and the reader may be needed again."""
        self._activity_ms = self._clock.ticks_ms()
        if self.screen != FULL:
            self._set_screen(FULL)

    def idle_ms(self) -> int:
        return ticks_diff(self._clock.ticks_ms(), self._activity_ms)

    def nfc_wanted(self, flow) -> bool:
        state = flow.state
        if state == WAIT_CARD or state == VOID_CARD:
            return True
        return state == AMOUNT and not flow.typing and self.idle_ms() < NFC_AWAKE_MS

    def tick(self, flow) -> None:
        idle = self.idle_ms()
        level = FULL if idle < SCREEN_DIM_MS else DIM if idle < SCREEN_OFF_MS else OFF
        if level != self.screen:
            self._set_screen(level)
        wanted = self.nfc_wanted(flow)
        if wanted != self.nfc_on:
            method = getattr(self._reader, "wake" if wanted else "sleep", None)
            if method is not None:
                method()  # may raise: the supervisor recovers the reader, the next tick retries
            self.nfc_on = wanted
        now = self._clock.ticks_ms()
        if self._battery is not None and (self._battery_ms is None
                                          or ticks_diff(now, self._battery_ms) >= BATTERY_EVERY_MS):
            self._battery_ms = now
            self.read_battery()

    def read_battery(self) -> None:
        mv = self._battery.read_mv() if self._battery is not None else None
        self.battery_mv = mv
        self.battery_low = mv is not None and mv < BATTERY_LOW_MV

    def _set_screen(self, level: int) -> None:
        method = getattr(self._display, "brightness", None)
        if method is not None:
            method(level)
        self.screen = level
