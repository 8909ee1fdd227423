"""The shared I2C bus, with a recovery for a bus stuck by a chip that holds SDA low.

A chip reset or a brown-out in the middle of a transfer can leave a slave waiting for clock
pulses with SDA held low: every transaction then fails (OSError). The standard cure (NXP
UM10204, section 3.1.16 "Bus clear"): up to nine clock pulses on SCL until SDA is released, a
STOP, then the controller made again. The drivers hold this object, so the new controller
replaces the old one under them.
"""

import time

from micropython import const

_PULSES = const(9)
_HALF_PERIOD_US = const(5)  # 100 kHz


class Bus:
    def __init__(self, make, scl=None, sda=None):
        """make(): a new machine.I2C; scl, sda: the GPIO numbers of the bus (for the bus
        clear; None in tests without pins)."""
        self._make = make
        self._scl = scl
        self._sda = sda
        self.i2c = make()
        self.recoveries = 0

    def writeto(self, addr, buf, stop=True):
        return self.i2c.writeto(addr, buf, stop)

    def writevto(self, addr, vector, stop=True):
        return self.i2c.writevto(addr, vector, stop)

    def readfrom_into(self, addr, buf, stop=True):
        return self.i2c.readfrom_into(addr, buf, stop)

    def readfrom(self, addr, nbytes, stop=True):
        return self.i2c.readfrom(addr, nbytes, stop)

    def scan(self):
        return self.i2c.scan()

    def recover(self):
        """Clock the bus free, send a STOP, make the controller again."""
        self.recoveries += 1
        if self._scl is not None and self._sda is not None:
            from machine import Pin
            scl = Pin(self._scl, Pin.OPEN_DRAIN, value=1)  # the pins leave the I2C controller
            sda = Pin(self._sda, Pin.OPEN_DRAIN, value=1)
            for _ in range(_PULSES):
                if sda.value():
                    break
                scl.value(0)
                time.sleep_us(_HALF_PERIOD_US)
                scl.value(1)
                time.sleep_us(_HALF_PERIOD_US)
            sda.value(0)  # STOP: SDA rises while SCL is high
            time.sleep_us(_HALF_PERIOD_US)
            sda.value(1)
        self.i2c = self._make()
