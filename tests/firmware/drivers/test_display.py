"""SSD1306 driver and the screen adapter against the simulated controller's display RAM."""

from tests.firmware.drivers.mp import mp, raises

SETUP = """
from i2c_bus import FakeI2C
from ssd1306_sim import SSD1306Sim
from drivers.ssd1306 import SSD1306_I2C
from drivers.screen import Screen, fold, DIGIT_SEGMENTS, DIGIT_W, DIGIT_H
sim = SSD1306Sim()
bus = FakeI2C((0x3C, sim))
screen = Screen(SSD1306_I2C(128, 64, bus))

def read_amount(y=18):
    # Decode the seven-segment digits from the simulated RAM, the way an eye would: find each
    # lit run of columns in the amount band, then read a digit's segments at their centres.
    probes = ((DIGIT_W // 2, 1), (DIGIT_W - 2, 7), (DIGIT_W - 2, 21), (DIGIT_W // 2, DIGIT_H - 2),
              (1, 21), (1, 7), (DIGIT_W // 2, DIGIT_H // 2))
    def lit(x):
        return any(sim.pixel(x, y + r) for r in range(DIGIT_H + 3))
    text = ""
    x = 0
    while x < 128:
        if not lit(x):
            x += 1
            continue
        w = 0
        while x + w < 128 and lit(x + w):
            w += 1
        if w == DIGIT_W:
            cell = x
        elif w == 3 and sim.pixel(x, y + 1):
            cell = x - (DIGIT_W - 3)  # a "1" lights only its right strokes
        elif w == 3:
            text += ","
            x += w
            continue
        else:
            break  # "EUR": the end of the amount
        mask = 0
        for i, (px, py) in enumerate(probes):
            mask |= sim.pixel(cell + px, y + py) << i
        text += str(DIGIT_SEGMENTS.index(mask)) if mask in DIGIT_SEGMENTS else "?"
        x += w
    return text
"""


def test_init_turns_the_panel_on_at_full_contrast_with_the_charge_pump():
    out = mp(SETUP + "print(sim.on, (0x81, 0xff) in sim.commands, (0x8d, 0x14) in sim.commands, sum(sim.ram))")
    assert out.split() == ["True", "True", "True", "0"]


def test_the_amount_is_drawn_in_large_digits_that_read_back():
    for cents, shown in ((1250, "12,50"), (7, "0,07"), (98765, "987,65"), (80, "0,80")):
        out = mp(SETUP + f"screen.show_amount('A payer', {cents}, 'Carte SVP')\nprint(read_amount())")
        assert out.strip() == shown


def test_text_lines_land_in_the_display_ram_and_accents_are_folded():
    out = mp(
        SETUP
        + """
screen.show(("Paiement accepté", "Reçu"))
print(sum(sim.ram[0:128]) > 0, sum(sim.ram[2 * 128:3 * 128]) > 0, sum(sim.ram[6 * 128:]) == 0)
print(fold("Payé à Noël, reçu"))
"""
    )
    assert out.splitlines() == ["True True True", "Paye a Noel, recu"]


def test_an_amount_beyond_the_display_is_refused():
    out = mp(SETUP + raises("screen.show_amount('x', 1000000)", "ValueError"))
    assert "raised" in out


def test_init_raises_with_the_bus_address_when_the_display_is_missing():
    out = mp("from i2c_bus import FakeI2C\nfrom drivers.ssd1306 import SSD1306_I2C\n" + raises("SSD1306_I2C(128, 64, FakeI2C())", "OSError"))
    assert "0x3c" in out
