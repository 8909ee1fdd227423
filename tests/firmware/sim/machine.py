"""machine, for firmware/main.py and boot.py under the WebAssembly port (which has none).

The test wires it before importing main: `bus` (a FakeI2C with the simulated chips), `matrix`
(pins.KeyMatrix: the keypad's GPIOs of board.py land on it), `loop` (vloop.Loop: the WDT runs
on its virtual time), `cause` (what reset_cause() says), `adc_uv` (the battery divider's
reading). reset() ends the instance the way a reset ends a run: SystemExit, after which the
harness keeps the flash (--persist) for the next boot.
"""

from pins import FakePWM, OutPin

import board

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

cause = PWRON_RESET
bus = None
matrix = None
loop = None
adc_uv = 1950000  # 3.90 V on the cell
wdts = []
pins = {}


def reset_cause():
    return cause


def reset():
    print("@@reset")
    raise SystemExit()


class WDT:
    def __init__(self, id=0, timeout=5000):
        from vloop import FakeWDT
        self._wdt = FakeWDT(loop.clock, timeout)
        loop.wdt = self._wdt
        wdts.append(self)

    def feed(self):
        self._wdt.feed()


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2

    def __new__(cls, id, mode=-1, pull=-1, value=None):
        if matrix is not None and id in board.KEYPAD_ROWS:
            pin = matrix.rows[board.KEYPAD_ROWS.index(id)]
        elif matrix is not None and id in board.KEYPAD_COLS:
            pin = matrix.cols[board.KEYPAD_COLS.index(id)]
        else:
            pin = pins.get(id)
            if pin is None:
                pin = pins[id] = OutPin()
        if value is not None:
            pin.value(value)
        return pin


def I2C(*args, **kwargs):
    return bus


def PWM(pin, freq=0, duty_u16=0):
    pwm = FakePWM()
    pwm.freq(freq)
    pwm.duty_u16(duty_u16)
    return pwm


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, atten=None):
        self.pin = pin

    def read_uv(self):
        return adc_uv


class RTC:
    def datetime(self, value=None):
        return value
