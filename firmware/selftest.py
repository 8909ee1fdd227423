"""Self-test: is each part of the terminal present and answering? Run by the provisioning tool.

    import selftest; selftest.main()      # on the device, prints one line per part

Prints "OK   <part> : <detail>" or "ECHEC <part> : <detail>", then "SELFTEST PASS" or
"SELFTEST FAIL" on the last line for the provisioning tool. The texts are French: the
technician reads them.
"""

import board
from drivers.atecc608 import ATECC608
from drivers.pn532 import PN532
from drivers.screen import Screen
from drivers.ssd1306 import SSD1306_I2C


def _try(results, name, check):
    try:
        detail = check()
        results.append((name, True, detail))
        return detail
    except Exception as e:  # a self-test reports every failure, it never stops at the first
        results.append((name, False, str(e) or e.__class__.__name__))
        return None


def run(i2c, keypad=None, indicator=None, scans=5, software_key=False):
    """Check each part; return a list of (part, ok, detail).

    software_key: the terminal signs with the key in /data/key.bin (provisioned on a board
    without a secure element), so no ATECC608 is expected; one that answers would be used by
    main.py instead of the registered key, which is a failure.
    """
    results = []
    found = i2c.scan()

    def bus():
        missing = [
            "0x%02x" % a for a in (board.ADDR_PN532, board.ADDR_OLED) if a not in found
        ]  # the ATECC608 sleeps, so it is not in a scan
        if missing:
            raise OSError("absent(s) du bus I2C : " + ", ".join(missing))
        return "%d composant(s) sur le bus" % len(found)

    _try(results, "Bus I2C", bus)

    def display():
        screen = Screen(SSD1306_I2C(128, 64, i2c, board.ADDR_OLED))
        screen.show(("Auto-test", "en cours..."))
        return "SSD1306 128x64"

    _try(results, "Ecran", display)

    def nfc():
        pn = PN532(i2c, board.ADDR_PN532)
        pn.sam_configuration()
        return "PN532 version %d.%d" % pn.version

    _try(results, "Lecteur NFC", nfc)

    state = {}

    def secure_element():
        try:
            se = ATECC608(i2c, board.ADDR_ATECC608)
        except OSError:
            if software_key:
                return "absent : cle logicielle"
            raise
        if software_key:
            raise OSError("ATECC608 present mais la cle enregistree est logicielle : refaire la mise en service")
        state["se"] = se
        return "ATECC608 revision %s" % "".join("%02x" % b for b in se.revision)

    _try(results, "Element securise", secure_element)

    def locked():
        if software_key:
            return "cle logicielle (/data/key.bin)"
        se = state.get("se")
        if se is None:
            raise OSError("element securise absent")
        config_locked, data_locked = se.locks()
        if not (config_locked and data_locked):
            raise OSError("zones non verrouillees (config %s, donnees %s)" % (config_locked, data_locked))
        return "zones config et donnees verrouillees"

    _try(results, "Cle de signature", locked)

    if keypad is not None:

        def keys():
            for _ in range(scans):
                keypad.scan()
            if keypad.any_pressed():
                raise OSError("une touche reste enfoncee")
            return "aucune touche bloquee"

        _try(results, "Clavier", keys)

    if indicator is not None:

        def beep():
            indicator.approve()
            return "bip joue (a ecouter)"

        _try(results, "Buzzer et LED", beep)
    return results


def report(results):
    for name, ok, detail in results:
        print("%s %s : %s" % ("OK   " if ok else "ECHEC", name, detail))
    passed = all(ok for _, ok, _ in results)
    print("SELFTEST PASS" if passed else "SELFTEST FAIL")
    return passed


def _software_key(root="/data"):
    """True when provisioning left a software key and no secure-element marker in root."""
    import os

    try:
        names = os.listdir(root)
    except OSError:
        return False
    return "key.bin" in names and "key.se" not in names


def main():
    from machine import I2C, PWM, Pin  # only on the device

    from drivers.buzzer import BuzzerLed
    from drivers.keypad import MatrixKeypad

    i2c = I2C(board.I2C_ID, scl=Pin(board.I2C_SCL), sda=Pin(board.I2C_SDA), freq=board.I2C_FREQ_HZ)
    rows = [Pin(p, Pin.OPEN_DRAIN, value=1) for p in board.KEYPAD_ROWS]
    cols = [Pin(p, Pin.IN, Pin.PULL_UP) for p in board.KEYPAD_COLS]
    indicator = BuzzerLed(PWM(Pin(board.BUZZER), freq=2700, duty_u16=0), Pin(board.LED_GREEN, Pin.OUT), Pin(board.LED_RED, Pin.OUT))
    return report(run(i2c, MatrixKeypad(rows, cols), indicator, software_key=_software_key()))
