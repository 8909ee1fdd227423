"""Device entry point: build the reference terminal from board.py and run it, supervised.

The payment logic is caisse_terminal (hardware-free); this file wires the drivers of
firmware/drivers/ to it, and the terminal to what provisioning wrote in /data
(caisse_terminal.config), including which key it registered: the secure element's or the
software key made at provisioning. A terminal that is not provisioned says so on the screen and
stops, with the REPL free for the provisioning tool.

What happens when things go wrong (docs/firmware.md, "Boot, supervisor and safe mode"):
- a task that raises is recovered and restarted by the supervisor (caisse_terminal.supervisor);
- a task that keeps failing, or any other exception, resets the chip after noting why in
  health.json; so does the watchdog (machine.WDT) if the loop stops feeding it;
- boot.py counts those resets; after health.SAFE_MODE_AFTER in a row the terminal starts in
  safe mode: no watchdog, no payment, a screen that says so, the USB console free;
- Ctrl-C on the USB console (a technician, the provisioning tool) resets into the same mode for
  one boot, since the watchdog cannot be stopped once started.
"""

import asyncio
import time

import board
from caisse_terminal import config
from caisse_terminal.health import CRASH, SAFE_MODE_AFTER, TECHNICIAN, Health
from caisse_terminal.storage import FileStorage
from caisse_terminal.supervisor import WATCHDOG_TIMEOUT_MS
from caisse_terminal.terminal import Terminal

SAFE_MODE = ("Mode secours", "Pannes répétées", "V : réessayer", "sinon technicien")
TECHNICIAN_MODE = ("Mode technicien", "Console USB", "V : redémarrer")


class RtcClock:
    """hal.Clock on the ESP32 RTC (kept across deep sleep, set from the sync server)."""

    def __init__(self) -> None:
        # Ports before 1.23 count from 2000-01-01, later ones from 1970-01-01.
        self._epoch_s = 946684800 if time.gmtime(0)[0] == 2000 else 0

    def now(self) -> int:
        return int(time.time()) + self._epoch_s

    def set(self, unix_s: int) -> None:
        import machine
        t = time.gmtime(unix_s - self._epoch_s)
        machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))

    def ticks_ms(self) -> int:
        return time.ticks_ms()  # type: ignore[return-value]  (the stubs use a tagged int)


class Device:
    """The reference board's parts, made once from board.py; recover(kind) puts one back in a
    known state after a failure (the supervisor calls it through the terminal)."""

    def __init__(self) -> None:
        from machine import I2C, Pin

        from drivers.bus import Bus
        from drivers.keypad import MatrixKeypad
        from drivers.screen import Screen
        from drivers.ssd1306 import SSD1306_I2C

        def make_i2c():
            return I2C(board.I2C_ID, scl=Pin(board.I2C_SCL), sda=Pin(board.I2C_SDA),
                       freq=board.I2C_FREQ_HZ)

        self.bus = Bus(make_i2c, board.I2C_SCL, board.I2C_SDA)
        self.panel = SSD1306_I2C(128, 64, self.bus, board.ADDR_OLED)
        self.display = Screen(self.panel)
        self.keypad = MatrixKeypad([Pin(p, Pin.OPEN_DRAIN, value=1) for p in board.KEYPAD_ROWS],
                                   [Pin(p, Pin.IN, Pin.PULL_UP) for p in board.KEYPAD_COLS])
        self.reader = None
        self.secure_element = None
        self._pump = None  # the terminal's pump, once it exists

    def _sleep_ms(self, ms: int) -> None:
        """The drivers' waits (PN532 ready polls, ATECC608 execution): the keypad is scanned."""
        if self._pump is not None:
            self._pump()
        time.sleep_ms(ms)

    def terminal(self, storage, health, clock):
        """The terminal on these parts, or None when provisioning is missing (the screen says why)."""
        from machine import ADC, PWM, Pin

        from drivers.battery import Battery
        from drivers.buzzer import BuzzerLed
        from drivers.nfc_reader import NfcReader
        from drivers.pn532 import PN532

        display = self.display
        display.show(("Démarrage...",))
        try:
            settings = config.load(storage)
        except config.ConfigError as error:
            display.show(error.lines)
            return None
        indicator = BuzzerLed(PWM(Pin(board.BUZZER), freq=2700, duty_u16=0),
                              Pin(board.LED_GREEN, Pin.OUT), Pin(board.LED_RED, Pin.OUT))
        self.reader = NfcReader(PN532(self.bus, board.ADDR_PN532,
                                      reset=Pin(board.NFC_RESET, Pin.OUT, value=1),
                                      sleep_ms=self._sleep_ms))
        try:
            from drivers.atecc608 import ATECC608
            self.secure_element = ATECC608(self.bus, board.ADDR_ATECC608, sleep_ms=self._sleep_ms)
        except (ImportError, OSError):
            self.secure_element = None
        try:
            signer, inline = config.load_signer(storage, self.secure_element)
        except config.ConfigError as error:
            display.show(error.lines)
            return None
        battery = Battery(ADC(Pin(board.BATTERY_SENSE), atten=ADC.ATTN_11DB))
        from caisse_terminal.net import HttpTransport, Wifi
        wifi = None
        if settings.wifi_ssid is not None:
            wifi = Wifi(settings.wifi_ssid, settings.wifi_password)
            wifi.up()  # starts joining; the sync task asks again before each sync
        transport = HttpTransport(settings.backend_url, ca_pem=settings.ca_pem, link=wifi)
        terminal = Terminal(storage=storage, display=display, keypad=self.keypad, reader=self.reader,
                            indicator=indicator, clock=clock, signer=signer, transport=transport,
                            inline_signer=inline, code_mac=config.load_code_mac(storage, self.secure_element),
                            health=health, battery=battery, recover=self.recover)
        if inline is None:
            signer.public_key()  # the P-256 comb table (4-5 s) now, under "Démarrage...", not in the loop
        transport.idle = terminal.pump
        self._pump = terminal.pump
        display.deferred = True  # from now on the loop sends the screen page by page
        return terminal

    def recover(self, kind: str) -> None:
        if kind == "i2c":
            self.bus.recover()
            self.panel.init_display()
            self.display.invalidate()
        if kind in ("i2c", "nfc") and self.reader is not None:
            self.reader.recover()
        if kind in ("i2c", "secure_element") and self.secure_element is not None:
            self.secure_element.recover()

    def wait_for_retry(self, health, lines) -> None:
        """Safe or technician mode: the screen says so; V resets into a normal boot; Ctrl-C on
        the USB console leaves the REPL to the technician. No watchdog runs here."""
        import machine
        self.display.show(lines)
        try:
            while True:
                self.keypad.scan()
                if self.keypad.read_key() == "V":
                    health.retry()
                    machine.reset()
                time.sleep_ms(10)
        except KeyboardInterrupt:
            return


def main(*, clock=None, loop=None) -> None:
    """clock, loop: the RTC and asyncio on the device; tests pass a virtual-time loop (with
    run(coroutine), sleep_ms and spawn)."""
    import machine
    clock = clock or RtcClock()
    storage = FileStorage("/data")
    health = Health(storage, clock)
    try:
        device = Device()
        if health.safe_mode:
            device.wait_for_retry(health, SAFE_MODE if health.streak >= SAFE_MODE_AFTER else TECHNICIAN_MODE)
            return
        terminal = device.terminal(storage, health, clock)
        if terminal is None:
            return  # not provisioned: the screen says so, the REPL is free
        wdt = machine.WDT(timeout=WATCHDOG_TIMEOUT_MS)
        if loop is None:
            asyncio.run(terminal.run(wdt=wdt))
        else:
            loop.run(terminal.run(wdt=wdt, sleep_ms=loop.sleep_ms, spawn=loop.spawn))
    except KeyboardInterrupt:
        health.before_reset(TECHNICIAN)
        machine.reset()
    except Exception as e:  # a task that keeps failing (supervisor.Reboot), or anything else
        health.before_reset(CRASH, e)
        machine.reset()


if __name__ == "__main__":
    main()
