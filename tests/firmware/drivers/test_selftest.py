"""The self-test reports each part present or missing, on simulated parts."""

from tests.firmware.drivers.mp import mp
from tests.firmware.drivers.test_atecc608 import SETUP as ATECC_SETUP

SETUP = ATECC_SETUP + """
from i2c_bus import FakeI2C
from pn532_sim import PN532Sim
from atecc608_sim import ATECC608Sim
from ssd1306_sim import SSD1306Sim
from pins import KeyMatrix, FakePWM, OutPin
from drivers.keypad import MatrixKeypad
from drivers.buzzer import BuzzerLed
import selftest
m = KeyMatrix()
kp = MatrixKeypad(m.rows, m.cols)
ind = BuzzerLed(FakePWM(), OutPin(), OutPin())
def bus(pn532=True, atecc=None):
    b = FakeI2C((0x3C, SSD1306Sim()), (0x60, atecc or provisioned()[0]))
    if pn532:
        b.add(0x24, PN532Sim())
    return b
"""


def test_every_part_answers_on_a_complete_terminal():
    out = mp(SETUP + "print(selftest.report(selftest.run(bus(), kp, ind)))")
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines[:-2]] == ["OK"] * 7
    assert lines[-2:] == ["SELFTEST PASS", "True"]
    assert "OK    Lecteur NFC : PN532 version 1.6" in lines


def test_a_missing_reader_a_factory_fresh_chip_and_a_stuck_key_are_reported():
    out = mp(
        SETUP
        + """
m.press(0, 0)
print(selftest.report(selftest.run(bus(pn532=False, atecc=ATECC608Sim()), kp, ind)))
"""
    )
    failed = [line.split(" : ")[0].replace("ECHEC ", "") for line in out.splitlines() if line.startswith("ECHEC")]
    assert failed == ["Bus I2C", "Lecteur NFC", "Cle de signature", "Clavier"]
    assert out.strip().splitlines()[-2:] == ["SELFTEST FAIL", "False"]


def test_a_software_key_board_needs_no_secure_element_but_must_not_have_one():
    out = mp(
        SETUP
        + """
b = bus()
del b.chips[0x60]
print(selftest.report(selftest.run(b, kp, ind, software_key=True)))
print(selftest.report(selftest.run(bus(), kp, ind, software_key=True)))
"""
    )
    lines = out.strip().splitlines()
    assert "OK    Element securise : absent : cle logicielle" in lines
    assert "OK    Cle de signature : cle logicielle (/data/key.bin)" in lines
    assert lines[7:9] == ["SELFTEST PASS", "True"]
    assert any(line.startswith("ECHEC Element securise : ATECC608 present mais") for line in lines[9:])
    assert lines[-2:] == ["SELFTEST FAIL", "False"]
