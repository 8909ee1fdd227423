"""A market stall for firmware/boot.py and main.py under the WebAssembly port.

The simulated chips (PN532, ATECC608, SSD1306) on one I2C bus that can fail on demand, the
keypad matrix, the fake network and backend, and a virtual-time loop; the flash is the harness's
/data (mounted with --persist, so a reset keeps it). Helpers type keys and put cards down at
given virtual times; what the screen showed and when the buzzer sounded is recorded.
"""

import socket

import machine
import vloop
from atecc608_sim import ATECC608Sim
from fake_backend import Backend
from i2c_bus import FakeI2C
from pins import KeyMatrix
from pn532_sim import BasicCard, PN532Sim
from ssd1306_sim import SSD1306Sim

import board

T0 = 1767254400
SIGN_SLICE_MS = 8  # virtual time between two pump calls of a software signature (44 of them: ~350 ms on an ESP32)


class FaultyI2C(FakeI2C):
    """failing[address] = [count, errno]: the next `count` transactions with it raise OSError."""

    def __init__(self, *chips):
        super().__init__(*chips)
        self.failing = {}

    def _fail(self, address):
        f = self.failing.get(address)
        if f is not None and f[0] > 0:
            f[0] -= 1
            raise OSError(f[1])

    def writeto(self, address, buf, stop=True):
        self._fail(address)
        return super().writeto(address, buf, stop)

    def readfrom_into(self, address, buf, stop=True):
        self._fail(address)
        return super().readfrom_into(address, buf, stop)


def key_position(k):
    from drivers.keypad import KEYMAP
    i = KEYMAP.index(k)
    return i // 4, i % 4


class Stall:
    def __init__(self, secret=None, atecc_config=None, latency_ms=300):
        """secret, atecc_config: a provisioned ATECC608 (its signing key, its locked
        configuration zone); without them the chip is factory-fresh."""
        self.clock = vloop.Clock(T0)
        self.loop = vloop.Loop(self.clock)
        self.pn = PN532Sim()
        self.se = ATECC608Sim(config=atecc_config, keys={0: secret} if secret is not None else None)
        self.oled = SSD1306Sim()
        self.bus = FaultyI2C((board.ADDR_PN532, self.pn), (board.ADDR_ATECC608, self.se),
                             (board.ADDR_OLED, self.oled))
        self.matrix = KeyMatrix()
        self.backend = Backend(self.clock)
        machine.bus = self.bus
        machine.matrix = self.matrix
        machine.loop = self.loop
        socket.server = self.backend
        socket.loop = self.loop
        socket.latency_ms = latency_ms
        self.terminal = None
        self.shown = []  # (ms, lines) of every screen drawn
        self.sounds = []  # (ms, sound, pages not sent yet, lines on the screen)
        self.screen = None
        self._capture()

    def _capture(self):
        import caisse_terminal.terminal as terminal_module
        from caisse_terminal import soft_signer
        from drivers import buzzer, keypad, screen
        stall = self

        show, show_amount = screen.Screen.show, screen.Screen.show_amount

        def shown(self, lines):
            stall.screen = self
            stall.shown.append((stall.clock.ms, tuple(lines)))
            show(self, lines)

        def shown_amount(self, title, cents, footer=""):
            stall.screen = self
            stall.shown.append((stall.clock.ms, (title, cents, footer)))
            show_amount(self, title, cents, footer)

        screen.Screen.show = shown
        screen.Screen.show_amount = shown_amount
        for sound in ("approve", "decline"):
            original = getattr(buzzer.BuzzerLed, sound)

            def played(self, original=original, sound=sound):
                last = stall.shown[-1][1] if stall.shown else ()
                stall.sounds.append((stall.clock.ms, sound, stall.screen.dirty, last))
                original(self)

            setattr(buzzer.BuzzerLed, sound, played)
        scan = keypad.MatrixKeypad.scan

        def scanned(self):
            stall.loop.scanned()
            scan(self)

        keypad.MatrixKeypad.scan = scanned
        sign = soft_signer.SoftwareSigner.sign_digest

        def sign_slowly(self, digest):
            pump = self.idle

            def idle():
                stall.loop.advance(SIGN_SLICE_MS)
                if pump is not None:
                    pump()

            self.idle = idle
            try:
                return sign(self, digest)
            finally:
                self.idle = pump

        soft_signer.SoftwareSigner.sign_digest = sign_slowly
        init = terminal_module.Terminal.__init__

        def remembered(self, **kw):
            init(self, **kw)
            stall.terminal = self

        terminal_module.Terminal.__init__ = remembered

    # ---- the market ------------------------------------------------------------------------

    def type(self, keys, at, press_ms=80, gap_ms=80):
        """Press each key for press_ms, gap_ms between them, from virtual time `at`."""
        t = at
        for k in keys:
            row, col = key_position(k)
            self.loop.at(t, lambda r=row, c=col: self.matrix.press(r, c))
            self.loop.at(t + press_ms, lambda r=row, c=col: self.matrix.release(r, c))
            t += press_ms + gap_ms
        return t

    def card(self, uid, at, hold_ms=600):
        card = BasicCard(uid)
        self.loop.at(at, lambda: self.pn.field.append(card))
        self.loop.at(at + hold_ms, lambda: card in self.pn.field and self.pn.field.remove(card))

    def boot(self, cause, until_ms):
        """A reset: boot.py, then main.py, until virtual time until_ms (SystemExit on a reset)."""
        machine.cause = cause
        self.loop.reset()
        self.loop.until_ms = until_ms
        with open("/flash/boot.py") as f:
            exec(f.read(), {})
        import main
        main.main(clock=self.clock, loop=self.loop)

    def screens(self, since=0):
        return [lines for ms, lines in self.shown if ms >= since]

    def dump(self):
        self.backend.dump()
        for ms, sound, dirty, lines in self.sounds:
            print("@@sound", ms, sound, dirty, "|".join(str(x) for x in lines))
