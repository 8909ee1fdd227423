"""The terminal's screen (caisse_terminal.hal.Display) on a 128x64 framebuf display.

Text lines use framebuf's 8x8 font: 4 lines of 16 characters. That font is ASCII only, so the
French accented letters of the terminal's texts are drawn from _GLYPHS, a small table in the
same format; any other non-ASCII character shows as "?". Amounts use large seven-segment digits
drawn with fill_rect (12 x 28 pixels: 12 mm tall on the 2.42in panel), readable at arm's length.
"""

import framebuf
from micropython import const

from caisse_terminal.hal import LINE_CHARS, LINES, Display

# 8x8 glyphs like framebuf's font: 8 bytes a letter, one byte a column, bit 0 the top row. The
# lower-case letters are framebuf's, with the accent in the two empty rows above the x-height;
# É is a shorter E under its accent.
ACCENTED = "àâçèéêëîïôùûÉ"  # the letters _GLYPHS draws, in its order
_GLYPHS = (
    b"\x00\x20\x75\x57\x56\x7c\x78\x00"  # à
    b"\x00\x20\x76\x55\x55\x7e\x78\x00"  # â
    b"\x00\x38\x7c\xc4\xc4\x6c\x28\x00"  # ç
    b"\x00\x38\x7d\x57\x56\x5c\x58\x00"  # è
    b"\x00\x38\x7c\x56\x57\x5d\x58\x00"  # é
    b"\x00\x38\x7e\x55\x55\x5e\x58\x00"  # ê
    b"\x00\x39\x7d\x54\x54\x5d\x59\x00"  # ë
    b"\x00\x00\x02\x7d\x7d\x02\x00\x00"  # î
    b"\x00\x01\x01\x7c\x7c\x01\x01\x00"  # ï
    b"\x00\x38\x7e\x45\x45\x7e\x38\x00"  # ô
    b"\x00\x3c\x7d\x43\x42\x7c\x3c\x00"  # ù
    b"\x00\x3c\x7e\x41\x41\x7e\x3c\x00"  # û
    b"\x00\xfc\xfc\x94\x95\x85\x84\x00"  # É
)
# These letters are U+00C0..U+00FF, in UTF-8 the byte 0xC3 then 0x80 + (code point & 0x3F):
# _SLOTS[code point & 0x3F] is 1 + the letter's index in _GLYPHS, 0 for a letter it lacks.
_UTF8_LATIN1 = const(0xC3)
_SLOTS = (
    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0d\x00\x00\x00\x00\x00\x00"  # U+00C0..
    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"  # U+00D0..
    b"\x01\x00\x02\x00\x00\x00\x00\x03\x04\x05\x06\x07\x00\x00\x08\x09"  # U+00E0..
    b"\x00\x00\x00\x00\x0a\x00\x00\x00\x00\x0b\x00\x0c\x00\x00\x00\x00"  # U+00F0..
)
_SPACE = const(32)
_UNKNOWN = const(63)  # "?"

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
DIM_CONTRAST = const(0x10)  # the panel's current follows its contrast: about 1/16 of full


def format_cents(amount_cents):
    """12,50: euros, a comma, two digits (French notation)."""
    return "%d,%02d" % (amount_cents // 100, amount_cents % 100)


class Screen(Display):
    def __init__(self, fb, width=128, height=64, deferred=False):
        """deferred: show() only draws; flush_step() sends one changed page per call (the
        terminal's loop calls it), so a full redraw never blocks the loop for ~95 ms."""
        self.fb = fb
        self.width = width
        self.height = height
        self.deferred = deferred
        self.dirty = 0  # pages drawn but not sent yet, one bit each
        self._all_pages = (1 << (height // 8)) - 1
        self._line = bytearray(LINE_CHARS)  # the ASCII cells of the line being drawn
        self._glyph = bytearray(8)
        self._glyph_fb = framebuf.FrameBuffer(self._glyph, 8, 8, framebuf.MONO_VLSB)

    def show(self, lines):
        self.fb.fill(0)
        for row, text in enumerate(tuple(lines)[:LINES]):
            self.text(text, 0, row * 16 + 4)
        self._drawn()

    def _drawn(self):
        if self.deferred:
            self.dirty = self._all_pages
        else:
            self.fb.show()

    def invalidate(self):
        """Send everything again (after the panel was re-initialized)."""
        self.dirty = self._all_pages
        if not self.deferred:
            self.flush()

    def flush_step(self):
        """Send the next drawn page; True while pages remain."""
        dirty = self.dirty
        if not dirty:
            return False
        page = 0
        while not dirty & (1 << page):
            page += 1
        self.fb.show_page(page)
        self.dirty = dirty & ~(1 << page)
        return self.dirty != 0

    def flush(self):
        while self.flush_step():
            pass

    def brightness(self, level):
        """2: full contrast (outdoors), 1: dimmed, 0: panel off (its RAM is kept)."""
        if level <= 0:
            self.fb.poweroff()
            return
        self.fb.contrast(0xFF if level >= 2 else DIM_CONTRAST)
        self.fb.poweron()

    def text(self, text, x, y):
        """Draw up to LINE_CHARS characters at (x, y), accented letters included.

        Allocates per line (the UTF-8 bytes and the ASCII cells), never per character: the
        ASCII cells go to framebuf's text() in one call, with a space under each accented
        letter, which is blitted from _GLYPHS.
        """
        data = text.encode()
        line = self._line
        end = len(data)
        i = 0
        n = 0
        while i < end and n < LINE_CHARS:
            b = data[i]
            i += 1
            if b < 0x80:
                line[n] = b
            else:
                slot = _SLOTS[data[i] & 0x3F] if b == _UTF8_LATIN1 and i < end else 0
                while i < end and data[i] & 0xC0 == 0x80:
                    i += 1  # the rest of this character's UTF-8 sequence
                if slot:
                    line[n] = _SPACE
                    self._blit_glyph(slot - 1, x + n * 8, y)
                else:
                    line[n] = _UNKNOWN
            n += 1
        for k in range(n, LINE_CHARS):
            line[k] = _SPACE
        self.fb.text(bytes(line), x, y, 1)

    def _blit_glyph(self, index, x, y):
        glyph = self._glyph
        base = index * 8
        for c in range(8):
            glyph[c] = _GLYPHS[base + c]
        self.fb.blit(self._glyph_fb, x, y, 0)  # key 0: only the lit pixels are drawn

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
        self.text(title, 0, 0)
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
        self.text(footer, 0, self.height - 8)
        self._drawn()
