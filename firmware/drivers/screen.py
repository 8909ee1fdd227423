"""The terminal's screen (caisse_terminal.hal.Display) on a 128x64 framebuf display.

Text lines use framebuf's 8x8 font: 4 lines of 16 characters. That font has no accents, so
French letters are drawn as their base letter (é -> e). Amounts use large seven-segment digits
drawn with fill_rect (12 x 28 pixels: 12 mm tall on the 2.42in panel), readable at arm's length.
"""

from micropython import const

from caisse_terminal.hal import LINE_CHARS, LINES, Display

_FOLD = {
    "à": "a", "â": "a", "ä": "a", "ç": "c", "é": "e", "è": "e", "ê": "e", "ë": "e",
    "î": "i", "ï": "i", "ô": "o", "ö": "o", "ù": "u", "û": "u", "ü": "u", "ÿ": "y",
    "À": "A", "Â": "A", "Ç": "C", "É": "E", "È": "E", "Ê": "E", "Î": "I", "Ô": "O", "Ù": "U",
    "Û": "U", "€": "E", "œ": "oe", "Œ": "OE",
}  # fmt: skip

# Seven segments a..g, as (x, y, w, h) in a DIGIT_W x DIGIT_H cell with T-thick strokes.
DIGIT_W = const(12)
DIGIT_H = const(28)
_T = const(3)
_HALF = DIGIT_H // 2
_SEGMENTS = (
    (0, 0, DIGIT_W, _T),  # a top
    (DIGIT_W - _T, 0, _T, _HALF + 1),  # b top right
    (DIGIT_W - _T, _HALF, _T, DIGIT_H - _HALF),  # c bottom right
    (0, DIGIT_H - _T, DIGIT_W, _T),  # d bottom
    (0, _HALF, _T, DIGIT_H - _HALF),  # e bottom left
    (0, 0, _T, _HALF + 1),  # f top left
    (0, _HALF - 1, DIGIT_W, _T),  # g middle
)
# Which segments light for 0..9 (bit 0 = a .. bit 6 = g).
DIGIT_SEGMENTS = (0x3F, 0x06, 0x5B, 0x4F, 0x66, 0x6D, 0x7D, 0x07, 0x7F, 0x6F)
_GAP = const(3)
_AMOUNT_Y = const(18)


def fold(text):
    """The text with French accented letters replaced by ASCII the 8x8 font can draw."""
    if all(ord(ch) < 128 for ch in text):
        return text
    return "".join(_FOLD.get(ch, ch if ord(ch) < 128 else "?") for ch in text)


def format_cents(amount_cents):
    """12,50: euros, a comma, two digits (French notation)."""
    return "%d,%02d" % (amount_cents // 100, amount_cents % 100)


class Screen(Display):
    def __init__(self, fb, width=128, height=64):
        self.fb = fb
        self.width = width
        self.height = height

    def show(self, lines):
        self.fb.fill(0)
        for row, text in enumerate(tuple(lines)[:LINES]):
            self.fb.text(fold(text)[:LINE_CHARS], 0, row * 16 + 4, 1)
        self.fb.show()

    def draw_digit(self, x, y, digit):
        mask = DIGIT_SEGMENTS[digit]
        for i in range(7):
            if mask & (1 << i):
                sx, sy, w, h = _SEGMENTS[i]
                self.fb.fill_rect(x + sx, y + sy, w, h, 1)

    def show_amount(self, title, amount_cents, footer=""):
        if not 0 <= amount_cents <= 999999:
            raise ValueError("amount out of display range")
        self.fb.fill(0)
        self.fb.text(fold(title)[:LINE_CHARS], 0, 0, 1)
        digits = format_cents(amount_cents)
        width = 0
        for ch in digits:
            width += (_T + _GAP) if ch == "," else (DIGIT_W + _GAP)
        width += 3 * 8  # "EUR" in the small font
        x = max(0, (self.width - width) // 2)
        for ch in digits:
            if ch == ",":
                self.fb.fill_rect(x, _AMOUNT_Y + DIGIT_H - _T, _T, _T + 3, 1)
                x += _T + _GAP
            else:
                self.draw_digit(x, _AMOUNT_Y, ord(ch) - 48)
                x += DIGIT_W + _GAP
        self.fb.text("EUR", x, _AMOUNT_Y + DIGIT_H - 8, 1)
        self.fb.text(fold(footer)[:LINE_CHARS], 0, self.height - 8, 1)
        self.fb.show()
