"""A 4x4 membrane key matrix (caisse_terminal.hal.Keypad), scanned by an asyncio task.

Rows are outputs (open-drain, idle high), columns inputs with pull-ups: scanning drives one row
low and reads the columns, a pressed key reads 0. A key changes state only after `debounce_scans`
identical readings in a row (3 scans every 10 ms: 20-30 ms, longer than membrane bounce).
Presses go into a ring buffer allocated once; nothing is allocated while scanning.

Keycaps of the usual 4x4 membrane, and what they mean (hardware/README.md, step 8):

    1 2 3 A        A = Menu
    4 5 6 B        B = Correction
    7 8 9 C        C = Annuler
    * 0 # D        * = virgule, # and D = Valider
"""

import asyncio

from caisse_terminal.hal import KEY_CANCEL, KEY_COMMA, KEY_CORRECT, KEY_MENU, KEY_VALIDATE, Keypad

KEYMAP = (
    "1", "2", "3", KEY_MENU,
    "4", "5", "6", KEY_CORRECT,
    "7", "8", "9", KEY_CANCEL,
    KEY_COMMA, "0", KEY_VALIDATE, KEY_VALIDATE,
)  # fmt: skip


class MatrixKeypad(Keypad):
    def __init__(self, rows, cols, *, keymap=KEYMAP, debounce_scans=3, queue_size=16, scan_ms=10):
        if len(keymap) != len(rows) * len(cols):
            raise ValueError("keymap size")
        self.rows = rows
        self.cols = cols
        self.keymap = keymap
        self.debounce_scans = debounce_scans
        self.scan_ms = scan_ms
        n = len(keymap)
        self._stable = bytearray(n)  # 1 = pressed, after debounce
        self._count = bytearray(n)  # consecutive readings that differ from _stable
        self._queue = bytearray(queue_size)
        self._head = 0  # next to read
        self._tail = 0  # next to write
        self.dropped = 0
        for row in rows:
            row.value(1)

    def _put(self, index):
        nxt = (self._tail + 1) % len(self._queue)
        if nxt == self._head:
            self.dropped += 1  # full: keep the oldest presses, the user sees them first
            return
        self._queue[self._tail] = index
        self._tail = nxt

    def scan(self):
        """Read the whole matrix once and record debounced presses."""
        ncols = len(self.cols)
        for r, row in enumerate(self.rows):
            row.value(0)
            for c, col in enumerate(self.cols):
                k = r * ncols + c
                pressed = 0 if col.value() else 1
                if pressed == self._stable[k]:
                    self._count[k] = 0
                    continue
                self._count[k] += 1
                if self._count[k] >= self.debounce_scans:
                    self._stable[k] = pressed
                    self._count[k] = 0
                    if pressed:
                        self._put(k)
            row.value(1)

    def read_key(self):
        if self._head == self._tail:
            return None
        k = self._queue[self._head]
        self._head = (self._head + 1) % len(self._queue)
        return self.keymap[k]

    def any_pressed(self):
        """True if a key is held (the self-test uses it to find a stuck key)."""
        return any(self._stable)

    async def run(self):
        while True:
            self.scan()
            await asyncio.sleep(self.scan_ms / 1000)
