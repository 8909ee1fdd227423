"""Device entry point: build the reference terminal from board.py and run it.

The payment logic is caisse_terminal (hardware-free); this file only wires the drivers of
firmware/drivers/ to it, and the terminal to what provisioning wrote in /data
(caisse_terminal.config), including which key it registered: the secure element's or the
software key made at provisioning. A terminal that is not provisioned says so on the screen and stops, with
the REPL free for the provisioning tool.
"""

import asyncio
import time

import board
from caisse_terminal import config
from caisse_terminal.storage import FileStorage
from caisse_terminal.terminal import Terminal


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


def build():
    from machine import I2C, PWM, Pin

    from drivers.buzzer import BuzzerLed
    from drivers.keypad import MatrixKeypad
    from drivers.nfc_reader import NfcReader
    from drivers.pn532 import PN532
    from drivers.screen import Screen
    from drivers.ssd1306 import SSD1306_I2C

    i2c = I2C(board.I2C_ID, scl=Pin(board.I2C_SCL), sda=Pin(board.I2C_SDA), freq=board.I2C_FREQ_HZ)
    storage = FileStorage("/data")
    display = Screen(SSD1306_I2C(128, 64, i2c, board.ADDR_OLED))
    display.show(("Démarrage...",))
    try:
        settings = config.load(storage)
    except config.ConfigError as error:
        display.show(error.lines)
        return None
    keypad = MatrixKeypad([Pin(p, Pin.OPEN_DRAIN, value=1) for p in board.KEYPAD_ROWS],
                          [Pin(p, Pin.IN, Pin.PULL_UP) for p in board.KEYPAD_COLS])
    indicator = BuzzerLed(PWM(Pin(board.BUZZER), freq=2700, duty_u16=0),
                          Pin(board.LED_GREEN, Pin.OUT), Pin(board.LED_RED, Pin.OUT))
    reader = NfcReader(PN532(i2c, board.ADDR_PN532))
    try:
        from drivers.atecc608 import ATECC608
        secure_element = ATECC608(i2c, board.ADDR_ATECC608)
    except (ImportError, OSError):
        secure_element = None
    try:
        signer, inline = config.load_signer(storage, secure_element)
    except config.ConfigError as error:
        display.show(error.lines)
        return None
    from caisse_terminal.net import HttpTransport, Wifi
    wifi = None
    if settings.wifi_ssid is not None:
        wifi = Wifi(settings.wifi_ssid, settings.wifi_password)
        wifi.up()  # starts joining; the sync task asks again before each sync
    transport = HttpTransport(settings.backend_url, ca_pem=settings.ca_pem, link=wifi)
    terminal = Terminal(storage=storage, display=display, keypad=keypad, reader=reader,
                        indicator=indicator, clock=RtcClock(), signer=signer,
                        transport=transport, inline_signer=inline,
                        code_mac=config.load_code_mac(storage, secure_element))
    return terminal, keypad, indicator


async def _main() -> None:
    built = build()
    if built is None:
        return  # not provisioned: the screen says so
    terminal, keypad, indicator = built
    asyncio.create_task(keypad.run())
    asyncio.create_task(indicator.run())
    await terminal.run()


if __name__ == "__main__":
    asyncio.run(_main())
