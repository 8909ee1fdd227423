"""The hardware the payment logic needs, as tiny interfaces.

Drivers in firmware/drivers/ (PN532, ATECC608, SSD1306, keypad, buzzer) implement these on the
device; tests and the CPython simulator implement them with fakes. The logic never imports a
driver and never touches `machine`: it only calls the methods below.

Nothing here blocks for long: every method returns within a few milliseconds, so the asyncio
tasks in terminal.py can poll them. Texts are French, at most LINE_CHARS characters a line.
"""

# Keys, as Keypad.read_key() returns them: one character each, so a key costs no allocation.
# Digits are "0".."9".
KEY_COMMA = ","  # decimal separator: "12,5" is 12.50 EUR
KEY_CORRECT = "<"  # correction: erase the last character typed
KEY_CANCEL = "X"  # cancel the operation, back to amount entry
KEY_VALIDATE = "V"  # validate (OK / Entrée)
KEY_MENU = "M"  # vendor menu: day summary, void last payment, sync now

LINE_CHARS = 16  # a 128x64 SSD1306 with the 8x8 font shows 4 lines of 16 characters
LINES = 4


class CardRemoved(Exception):
    """The card left the field in the middle of a read: nothing was read, ask to tap again."""


class Card:
    """What the reader got from one tap.

    uid: 4, 7 or 10 bytes (ISO 14443A UID).
    auth: 24 bytes of NTAG 424 DNA SUN message (16-byte encrypted PICC data + 8-byte MAC),
          or None for a basic card.
    """

    __slots__ = ("uid", "auth")

    def __init__(self, uid: bytes, auth: "bytes | None" = None) -> None:
        self.uid = uid
        self.auth = auth


class Display:
    def show(self, lines: "tuple[str, ...] | list[str]") -> None:
        """Replace the screen with up to LINES lines of text (UTF-8; French accents allowed).

        Lines longer than LINE_CHARS are cut by the driver; a missing line is blank.
        """
        raise NotImplementedError

    def show_amount(self, title: str, amount_cents: int, footer: str = "") -> None:
        """A title line, the amount in a large font ("12,50 EUR"), and a footer line."""
        raise NotImplementedError


class Keypad:
    def read_key(self) -> "str | None":
        """The next debounced key press, or None if there is none. Never blocks.

        Returns "0".."9" or one of the KEY_* constants above.
        """
        raise NotImplementedError


class CardReader:
    def poll(self) -> "Card | None":
        """Look for a card in the field once; return it, or None when the field is empty.

        Raises CardRemoved when a card was detected but left before its UID (and SUN message,
        if any) were completely read. Returns the same card again while it stays in the field:
        the payment flow decides what a tap means.
        """
        raise NotImplementedError


class Indicator:
    """Buzzer and LED."""

    def approve(self) -> None:
        """Payment accepted: green LED and one short high beep."""
        raise NotImplementedError

    def decline(self) -> None:
        """Payment refused: red LED and two low beeps."""
        raise NotImplementedError

    def key_click(self) -> None:
        """A very short click acknowledging a key press."""
        raise NotImplementedError


class Clock:
    def now(self) -> int:
        """Unix time, seconds UTC (the RTC; it may drift until the next sync)."""
        raise NotImplementedError

    def set(self, unix_s: int) -> None:
        """Set the clock, from the sync server's time."""
        raise NotImplementedError

    def ticks_ms(self) -> int:
        """A monotonic millisecond counter for timeouts (time.ticks_ms on the device)."""
        raise NotImplementedError


class Reader:
    """Repeated reads of one file at given offsets (a binary search reads a dozen entries).

    This default goes through Storage.readinto; FileStorage opens the file once instead.
    Use it as a context manager, so a real file is closed.
    """

    def __init__(self, storage: "Storage", name: str) -> None:
        self._storage = storage
        self._name = name

    def readinto(self, offset: int, buf) -> int:
        return self._storage.readinto(self._name, offset, buf)

    def close(self) -> None:
        pass

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Writer:
    """A new file written in several pieces while it stays open: on LittleFS each reopening to
    append copies the file's last, partly written block (one more erase); one open file does
    not. This default appends each piece. Use it as a context manager, so the file is closed."""

    def __init__(self, storage: "Storage", name: str) -> None:
        self._storage = storage
        self._name = name
        storage.remove(name)

    def write(self, data) -> None:
        self._storage.append(self._name, data)

    def close(self) -> None:
        pass

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Storage:
    """Flat files on the flash filesystem (LittleFS on the device), by name without folders.

    The durable log relies on three guarantees only: append() writes bytes in order (a power cut
    may keep any prefix of them), remove(), rename() and replace() are atomic, and after sync() returns
    everything written before it survives a power cut.
    """

    def names(self) -> "list[str]":
        """Every file name in this storage."""
        raise NotImplementedError

    def size(self, name: str) -> int:
        """File size in bytes; -1 if it does not exist."""
        raise NotImplementedError

    def readinto(self, name: str, offset: int, buf) -> int:
        """Read into buf (bytearray or memoryview) from offset; return the count read."""
        raise NotImplementedError

    def reader(self, name: str) -> Reader:
        """A Reader of an existing file, for many small reads without reopening it each time."""
        return Reader(self, name)

    def writer(self, name: str) -> Writer:
        """A Writer of a new file `name` (one there is replaced): for a file built in pieces;
        durable after close() and sync(), and rename() it into place for atomicity."""
        return Writer(self, name)

    def read(self, name: str) -> "bytes | None":
        """The whole file (small files only: config, key), or None if it does not exist."""
        raise NotImplementedError

    def append(self, name: str, data) -> None:
        """Append bytes at the end of the file, creating it if needed."""
        raise NotImplementedError

    def replace(self, name: str, data) -> None:
        """Atomically replace a small file's content (write a temporary file, then rename)."""
        raise NotImplementedError

    def remove(self, name: str) -> None:
        """Delete a file; no error if it does not exist."""
        raise NotImplementedError

    def rename(self, old: str, new: str) -> None:
        """Atomically rename old to new, replacing new if it exists (big files built by append)."""
        raise NotImplementedError

    def sync(self) -> None:
        """Make every previous write durable (os.sync() where the port has it)."""
        raise NotImplementedError
