"""The simulated board's peripherals, behind machine.I2C, machine.Pin and machine.PWM.

Runs inside the board's MicroPython (simboard.mjs copies it to /sim/_hw.py, and the bus-level
simulators of tests/firmware/sim/ to /sim/hwsim/, outside the flash). The parts sit at the
addresses and GPIOs of firmware/board.py:

    I2C 0x24  PN532 with a virtual card in its field   ("nfc": "ok" | "absent" | "silent")
    I2C 0x60  ATECC608                                  ("se": "factory" | "foreign" | null)
    I2C 0x3C  SSD1306 128x64                            ("display": true | false)
    GPIO 13 14 27 26 / 25 33 19 18  4x4 keypad matrix   ("stuck_key": [row, col] | null)
    GPIO 23 buzzer (PWM), 16 / 17 green / red LED

The configuration is the launcher's JSON (`_simboard.hardware()`); "bare": true is an ESP32 alone
on the bench (nothing on the bus, nothing on the pins). The ATECC608's key slots live in the
board folder (`_simboard.load_state` / `save_state`), as they live in the chip across resets;
every tone and LED change is appended to the board's hardware log (`_simboard.event`).
"factory" is a chip as it leaves Microchip (both zones unlocked, no key); "foreign" one whose
zones someone else locked with their own configuration.
"""

import json

import _simboard

_ENODEV = 19
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

ROWS = (13, 14, 27, 26)
COLS = (25, 33, 19, 18)
BUZZER = 23
LEDS = {16: "led_green", 17: "led_red"}

_config = None
_bus = None
_levels = {}  # GPIO -> level driven by the firmware


def config():
    global _config
    if _config is None:
        _config = {"bare": False, "nfc": "ok", "se": "factory", "display": True, "stuck_key": None,
                   "card_uid": "04a1b2c3d4e5f6"}
        _config.update(json.loads(_simboard.hardware() or "{}"))
    return _config


def _hex(data):
    return "".join("%02x" % b for b in data)


def _secure_element(kind):
    import os

    from hwsim.atecc608_sim import ATECC608Sim, factory_config

    class PersistentATECC608(ATECC608Sim):
        """Zones kept in the board folder, as the chip keeps them; GenKey draws a fresh random key."""

        def __init__(self):
            saved = json.loads(_simboard.load_state("atecc608") or "{}")
            config = factory_config()
            if "config" in saved:
                config = bytes.fromhex(saved["config"])
            elif kind == "foreign":
                config[86] = config[87] = 0x00  # locked elsewhere, with a configuration not ours
            super().__init__(config=config,
                             slots={int(s): bytes.fromhex(v) for s, v in saved.get("slots", {}).items()},
                             keys={int(s): bytes.fromhex(v) for s, v in saved.get("keys", {}).items()})
            self.genkeys = saved.get("genkeys", 0)

        def _new_secret(self, slot):
            while True:
                d = os.urandom(32)
                if 0 < int.from_bytes(d, "big") < _N:
                    break
            self.genkeys += 1
            return d

        def on_change(self):
            # Saved before the answer leaves the chip: a write survives an unplugged cable.
            _simboard.save_state("atecc608", json.dumps({
                "config": _hex(self.config), "genkeys": self.genkeys,
                "slots": {str(s): _hex(v) for s, v in self.slots.items()},
                "keys": {str(s): _hex(k) for s, k in self.keys.items()}}))

    return PersistentATECC608()


def bus():
    """The one I2C bus of the board, built on first use."""
    global _bus
    if _bus is None:
        from hwsim.i2c_bus import FakeI2C

        _bus = FakeI2C()
        cfg = config()
        if not cfg["bare"]:
            if cfg["display"]:
                from hwsim.ssd1306_sim import SSD1306Sim

                _bus.add(0x3C, SSD1306Sim())
            if cfg["nfc"] != "absent":
                from hwsim.pn532_sim import BasicCard, PN532Sim

                reader = PN532Sim()
                if cfg["nfc"] == "silent":
                    reader.faults = ["silent"] * 1000  # acknowledges its address, never answers
                if cfg["card_uid"]:
                    reader.field.append(BasicCard(bytes.fromhex(cfg["card_uid"])))
                _bus.add(0x24, reader)
            if cfg["se"]:
                _bus.add(0x60, _secure_element(cfg["se"]))
    return _bus


class I2C:
    """machine.I2C (hardware I2C 0 or 1) on the simulated bus."""

    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        if id not in (0, 1):
            raise ValueError("I2C(%s) doesn't exist" % id)
        self.id = id
        self.frequency = freq
        self._bus = bus() if id == 0 else _empty_bus()

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        self.frequency = freq

    def deinit(self):
        pass

    def scan(self):
        return self._bus.scan()

    def writeto(self, addr, buf, stop=True):
        self._bus.writeto(addr, buf, stop)
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        return self._bus.writevto(addr, vector, stop)

    def readfrom(self, addr, nbytes, stop=True):
        return self._bus.readfrom(addr, nbytes, stop)

    def readfrom_into(self, addr, buf, stop=True):
        self._bus.readfrom_into(addr, buf, stop)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._bus.writeto(addr, bytes([memaddr]) + bytes(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        self._bus.writeto(addr, bytes([memaddr]), False)
        return self._bus.readfrom(addr, nbytes)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self._bus.writeto(addr, bytes([memaddr]), False)
        self._bus.readfrom_into(addr, buf)


_EMPTY = None


def _empty_bus():
    global _EMPTY
    if _EMPTY is None:
        from hwsim.i2c_bus import FakeI2C

        _EMPTY = FakeI2C()
    return _EMPTY


SoftI2C = I2C


class Pin:
    """machine.Pin on the ESP32 (constants as in the stubs); column inputs read the keypad."""

    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if not (0 <= id <= 39) or 6 <= id <= 11 or id in (20, 24, 28, 29, 30, 31):
            raise ValueError("invalid pin")
        self.id = id
        self._mode = mode
        self._pull = pull
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, hold=None):
        if mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._read()
        level = 1 if v else 0
        if _levels.get(self.id) != level and self.id in LEDS:
            _simboard.event("%s %d" % (LEDS[self.id], level))
        _levels[self.id] = level
        return None

    def _read(self):
        cfg = config()
        if self.id in COLS and not cfg["bare"]:
            stuck = cfg["stuck_key"]
            col = COLS.index(self.id)
            for r, row in enumerate(ROWS):
                if _levels.get(row, 1) == 0 and stuck and tuple(stuck) == (r, col):
                    return 0
            return 1  # pull-up
        if self.id in _levels:
            return _levels[self.id]
        return 1 if self._pull == Pin.PULL_UP else 0

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, *, wake=None, hard=False):
        return None

    def __repr__(self):
        return "Pin(%d)" % self.id


class PWM:
    """machine.PWM; every change of tone is written to the board's hardware log."""

    def __init__(self, dest, *, freq=5000, duty_u16=None, duty_ns=None, invert=False):
        self.pin = dest.id if isinstance(dest, Pin) else int(dest)
        self._freq = freq
        self._duty = 0
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def init(self, *, freq=None, duty_u16=None, duty_ns=None, invert=False):
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def deinit(self):
        self.duty_u16(0)

    def freq(self, value=None):
        if value is None:
            return self._freq
        self._freq = value
        return None

    def duty_u16(self, value=None):
        if value is None:
            return self._duty
        if value != self._duty:
            _simboard.event("pwm %d freq %d duty %d" % (self.pin, self._freq, value))
        self._duty = value
        return None
