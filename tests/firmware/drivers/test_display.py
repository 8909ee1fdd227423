"""SSD1306 driver and the screen adapter against the simulated controller's display RAM."""

import ast
import json

from tests.firmware.drivers.mp import mp, raises
from tests.firmware.mpy_runtime import FIRMWARE

SETUP = """
from i2c_bus import FakeI2C
from ssd1306_sim import SSD1306Sim
from drivers.ssd1306 import SSD1306_I2C
from drivers.screen import Screen, DIGIT_SEGMENTS, DIGIT_W, DIGIT_H
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


def test_text_lines_land_in_the_display_ram_by_line():
    out = mp(
        SETUP
        + """
screen.show(("Paiement accepté", "Reçu"))
print(sum(sim.ram[0:128]) > 0, sum(sim.ram[2 * 128:3 * 128]) > 0, sum(sim.ram[6 * 128:]) == 0)
"""
    )
    assert out.split() == ["True", "True", "True"]


CELLS = """
import framebuf
def cell(x, y):
    # The 8x8 cell at (x, y) as 8 rows of '#' and '.', read back from the simulated RAM.
    return [''.join('#' if sim.pixel(x + c, y + r) else '.' for c in range(8)) for r in range(8)]
def font(ch):
    # framebuf's own glyph for an ASCII character.
    buf = bytearray(8)
    fb = framebuf.FrameBuffer(buf, 8, 8, framebuf.MONO_VLSB)
    fb.text(ch, 0, 0, 1)
    return [''.join('#' if buf[c] >> r & 1 else '.' for c in range(8)) for r in range(8)]
"""


def test_an_accented_letter_is_drawn_with_its_accent_not_as_its_base_letter():
    out = mp(
        SETUP + CELLS
        + """
screen.show(("Présentez la carte",))
e_acute, e = cell(2 * 8, 4), cell(4 * 8, 4)
print(e == font('e'), e_acute != e, e_acute[2:] == e[2:], '#' in e_acute[0] + e_acute[1])
print(cell(0, 4) == font('P'), cell(3 * 8, 4) == font('s'), cell(15 * 8, 4) == font('r'))
print('\\n'.join(e_acute))
"""
    )
    lines = out.splitlines()
    assert lines[0].split() == ["True", "True", "True", "True"], out
    assert lines[1].split() == ["True", "True", "True"], out  # the cells after é did not shift


def test_a_character_without_a_glyph_shows_as_a_question_mark_in_one_cell():
    out = mp(SETUP + CELLS + "screen.show(('a€b',))\nprint(cell(8, 4) == font('?'), cell(16, 4) == font('b'))")
    assert out.split() == ["True", "True"]


def _firmware_texts():
    """Every string literal of firmware/ with a non-ASCII character, docstrings excepted."""
    texts = set()
    for source in FIRMWARE.rglob("*.py"):
        tree = ast.parse(source.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and any(ord(ch) > 127 for ch in node.value)):
                texts.add(node.value)
    return texts


def test_every_character_of_the_firmware_texts_is_drawable():
    texts = _firmware_texts()
    assert any("Présentez" in t for t in texts) and len(texts) > 10  # the collection works
    letters = sorted({ch for t in texts for ch in t if ord(ch) > 127})
    out = mp(
        SETUP + CELLS
        + f"""
import json
bad = []
for ch in json.loads({json.dumps(json.dumps(letters))}):
    screen.show((ch,))
    drawn = cell(0, 4)
    if drawn == font('?') or drawn == font(' ') or sum(sim.ram[8:128]) != 0:
        bad.append(ch)
print(json.dumps(bad))
"""
    )
    assert json.loads(out) == []


def test_an_amount_beyond_the_display_is_refused():
    out = mp(SETUP + raises("screen.show_amount('x', 1000000)", "ValueError"))
    assert "raised" in out


def test_init_raises_with_the_bus_address_when_the_display_is_missing():
    out = mp("from i2c_bus import FakeI2C\nfrom drivers.ssd1306 import SSD1306_I2C\n" + raises("SSD1306_I2C(128, 64, FakeI2C())", "OSError"))
    assert "0x3c" in out
