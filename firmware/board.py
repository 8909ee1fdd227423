"""Pin and bus assignments of the reference terminal.

GENERATED from hardware/pinmap.toml by hardware/tools/gen_board.py: edit the pin map, not
this file (tests/hardware checks they agree).
"""

from micropython import const

# ESP32-DevKitC-32E (ESP32-WROOM-32E, 4 MB)
I2C_ID = const(0)
I2C_FREQ_HZ = const(100000)

# 7-bit I2C addresses
ADDR_PN532 = const(0x24)
ADDR_ATECC608 = const(0x60)
ADDR_OLED = const(0x3C)

# GPIO numbers
I2C_SDA = const(21)  # io, pull ext: PN532.SDA, ATECC608.SDA, OLED.SDA
I2C_SCL = const(22)  # io, pull ext: PN532.SCL, ATECC608.SCL, OLED.SCL
NFC_IRQ = const(34)  # in, pull ext: PN532.IRQ
NFC_RESET = const(32)  # out, pull none: PN532.RSTO
KEY_ROW1 = const(13)  # out, pull none: KEYPAD.R1
KEY_ROW2 = const(14)  # out, pull none: KEYPAD.R2
KEY_ROW3 = const(27)  # out, pull none: KEYPAD.R3
KEY_ROW4 = const(26)  # out, pull none: KEYPAD.R4
KEY_COL1 = const(25)  # in, pull up: KEYPAD.C1
KEY_COL2 = const(33)  # in, pull up: KEYPAD.C2
KEY_COL3 = const(19)  # in, pull up: KEYPAD.C3
KEY_COL4 = const(18)  # in, pull up: KEYPAD.C4
BUZZER = const(23)  # out, pull none: BUZZER.BASE
LED_GREEN = const(16)  # out, pull none: LED.GREEN
LED_RED = const(17)  # out, pull none: LED.RED
BATTERY_SENSE = const(35)  # in, pull none: POWER.VBAT/2
CHARGING = const(39)  # in, pull ext: POWER.CHRG

KEYPAD_ROWS = (13, 14, 27, 26)
KEYPAD_COLS = (25, 33, 19, 18)
