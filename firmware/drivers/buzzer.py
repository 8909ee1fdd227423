"""Buzzer and bicolour status LED (caisse_terminal.hal.Indicator).

Patterns are told apart by ear alone, in a noisy market: approve is one short high beep,
decline two long low beeps, error three fast mid beeps; the LED backs them up (green, red,
blinking red). A pattern is a tuple of (frequency_hz, duration_ms, led) steps, frequency 0 for
silence. approve() and friends return at once; the asyncio task run() (or tick() called with
the time) plays the steps, so the payment logic never waits on the buzzer.
"""

import asyncio
import time

from micropython import const

from caisse_terminal.hal import Indicator

LED_OFF = const(0)
LED_GREEN = const(1)
LED_RED = const(2)

_HIGH_HZ = const(2700)  # the magnetic buzzer's resonance: loudest
_MID_HZ = const(2000)
_LOW_HZ = const(900)

APPROVE = ((_HIGH_HZ, 150, LED_GREEN), (0, 1350, LED_GREEN))
DECLINE = ((_LOW_HZ, 300, LED_RED), (0, 150, LED_RED), (_LOW_HZ, 300, LED_RED), (0, 1000, LED_RED))
ERROR = (
    (_MID_HZ, 80, LED_RED), (0, 70, LED_OFF),
    (_MID_HZ, 80, LED_RED), (0, 70, LED_OFF),
    (_MID_HZ, 80, LED_RED), (0, 1000, LED_OFF),
)  # fmt: skip
CLICK = ((_HIGH_HZ, 15, LED_OFF),)
_DUTY_HALF = const(32768)


class BuzzerLed(Indicator):
    """pwm: a machine.PWM on the buzzer pin; green, red: machine.Pin outputs for the LED."""

    def __init__(self, pwm, green, red, *, ticks_ms=None):
        self.pwm = pwm
        self.green = green
        self.red = red
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._pattern = ()
        self._step = 0
        self._step_start = 0
        self._output(0, LED_OFF)

    def _output(self, freq, led):
        if freq:
            self.pwm.freq(freq)
            self.pwm.duty_u16(_DUTY_HALF)
        else:
            self.pwm.duty_u16(0)
        self.green.value(1 if led == LED_GREEN else 0)
        self.red.value(1 if led == LED_RED else 0)

    def play(self, pattern):
        """Start a pattern now, replacing the one playing."""
        self._pattern = pattern
        self._step = 0
        self._step_start = self._ticks_ms()
        freq, _, led = pattern[0]
        self._output(freq, led)

    def approve(self):
        self.play(APPROVE)

    def decline(self):
        self.play(DECLINE)

    def error(self):
        self.play(ERROR)

    def key_click(self):
        self.play(CLICK)

    @property
    def busy(self):
        return self._step < len(self._pattern)

    def tick(self, now_ms=None):
        """Advance the pattern to time now_ms; silent and dark once it is over."""
        if not self.busy:
            return
        now = self._ticks_ms() if now_ms is None else now_ms
        while self._step < len(self._pattern):
            duration = self._pattern[self._step][1]
            if time.ticks_diff(now, self._step_start) < duration:
                return
            self._step_start = time.ticks_add(self._step_start, duration)  # pyright: ignore[reportArgumentType]
            self._step += 1
            if self._step < len(self._pattern):
                freq, _, led = self._pattern[self._step]
                self._output(freq, led)
        self._output(0, LED_OFF)

    async def run(self, period_ms=10):
        while True:
            self.tick()
            await asyncio.sleep(period_ms / 1000)
