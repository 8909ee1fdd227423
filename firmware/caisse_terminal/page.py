"""Read one GET /sync answer as it arrives (docs/protocol.md, "Sync").

The answer is a JSON object of a few small values and `cards`, a base64 string of up to 512
entries (24 KB). It is never whole in RAM: the stream is read CHUNK bytes at a time into one
reused buffer and its base64 decoded a buffer at a time into the entry being assembled; each
complete entry goes to CardTable.add (docs/firmware.md, "Card table"). The other values are
copied into a bounded buffer one at a time and parsed with json.loads into `answer`.

read() is a generator that yields after each chunk of cards, so the sync runs in steps.
Anything that is not such an answer (cut short, bad base64, entries cut in the middle, a value
longer than VALUE_MAX) raises AnswerError; nothing has been applied to the table by then.
"""

import binascii
import json

from .cards import ENTRY_SIZE

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

CHUNK = const(512)
VALUE_MAX = const(1024)  # the longest value besides the cards (the limits object is ~250 bytes)
OTHER_MAX = const(4096)  # all the bytes of the answer besides the cards
_QUOTE = const(0x22)
_BACKSLASH = const(0x5C)
_SLASH = const(0x2F)
_PAD = const(0x3D)


class AnswerError(ValueError):
    """The bytes are not a sync answer the terminal can apply."""


class PageReader:
    """Reusable from one page to the next: its buffers (1.6 KB) are made once."""

    def __init__(self) -> None:
        self._buf = bytearray(CHUNK)
        self._pos = 0
        self._end = 0
        self._stream = None
        self._value = bytearray(VALUE_MAX)
        self._entry = bytearray(ENTRY_SIZE)
        self.answer = {}

    def read(self, stream, table):
        """Read the answer from stream (readinto); its cards go to table.add(), ENTRY_SIZE bytes
        each; the other values end in self.answer. A generator: one step per chunk of cards."""
        self._stream = stream
        self._pos = self._end = 0
        self.answer = answer = {}
        other = 0
        if self._skip_space() != 0x7B:  # {
            raise AnswerError("not a JSON object")
        if self._peek_nonspace() == 0x7D:  # }
            self._pos += 1
            return
        while True:
            n = self._raw_value()
            key = json.loads(self._value[:n])
            if not isinstance(key, str) or self._skip_space() != 0x3A:  # :
                raise AnswerError("not a JSON object")
            if key == "cards" and self._peek_nonspace() == _QUOTE:
                self._pos += 1
                yield from self._cards(table)
            else:
                n = self._raw_value()
                other += n
                if other > OTHER_MAX:
                    raise AnswerError("answer too long")
                try:
                    answer[key] = json.loads(self._value[:n])
                except ValueError:
                    raise AnswerError("bad value for " + key) from None
            c = self._skip_space()
            if c == 0x7D:  # }
                return
            if c != 0x2C:  # ,
                raise AnswerError("not a JSON object")

    # ---- bytes from the stream -----------------------------------------------------------

    def _fill(self) -> None:
        n = self._stream.readinto(self._buf)  # type: ignore[union-attr]
        if not n:
            raise AnswerError("answer cut short")
        self._pos = 0
        self._end = n

    def _peek_nonspace(self) -> int:
        buf = self._buf
        while True:
            if self._pos == self._end:
                self._fill()
            c = buf[self._pos]
            if c not in (0x20, 0x09, 0x0A, 0x0D):
                return c
            self._pos += 1

    def _skip_space(self) -> int:
        """The next byte that is not white space, consumed."""
        c = self._peek_nonspace()
        self._pos += 1
        return c

    def _raw_value(self) -> int:
        """Copy the next JSON value (not the cards) into self._value; its length."""
        value = self._value
        buf = self._buf
        n = 0
        depth = 0
        in_string = escaped = False
        self._peek_nonspace()
        while True:
            if self._pos == self._end:
                self._fill()
            c = buf[self._pos]
            if not in_string and depth == 0 and n and c in (0x2C, 0x7D, 0x5D, 0x20, 0x09, 0x0A, 0x0D):
                return n  # the end of a number, true, false or null
            self._pos += 1
            if n == VALUE_MAX:
                raise AnswerError("value too long")
            value[n] = c
            n += 1
            if in_string:
                if escaped:
                    escaped = False
                elif c == _BACKSLASH:
                    escaped = True
                elif c == _QUOTE:
                    in_string = False
                    if depth == 0:
                        return n
            elif c == _QUOTE:
                in_string = True
            elif c == 0x7B or c == 0x5B:  # { [
                depth += 1
            elif c == 0x7D or c == 0x5D:  # } ]
                depth -= 1
                if depth == 0:
                    return n
                if depth < 0:
                    raise AnswerError("not a JSON object")

    # ---- the cards -----------------------------------------------------------------------

    def _more(self) -> None:
        """Keep the bytes not used yet at the start of the buffer and read after them."""
        buf = self._buf
        left = self._end - self._pos
        if left:
            buf[:left] = memoryview(buf)[self._pos:self._end]
        n = self._stream.readinto(memoryview(buf)[left:])  # type: ignore[union-attr]
        if not n:
            raise AnswerError("answer cut short")
        self._pos = 0
        self._end = left + n

    def _unescape(self, limit: int) -> None:
        """JSON may write '/' as "\\/": drop those backslashes before `limit` (rare)."""
        buf = self._buf
        w = r = self._pos
        while r < limit:
            c = buf[r]
            if c == _BACKSLASH:
                if r + 1 == self._end:
                    break  # its second half is not here yet: it stays for the next read
                if buf[r + 1] != _SLASH:
                    raise AnswerError("bad escape in cards")
                r += 1
                c = _SLASH
            buf[w] = c
            w += 1
            r += 1
        while r < self._end:  # the rest moves down
            buf[w] = buf[r]
            w += 1
            r += 1
        self._end = w

    def _cards(self, table):
        """Decode the base64 string up to its closing quote into entries for table.add.

        Whole groups of 4 characters go to binascii.a2b_base64 (C on the ESP32), a buffer at a
        time; its result is cut into entries. a2b_base64 skips what is not base64, so the length
        it returns is checked: garbage does not shift the entries silently.
        """
        buf = self._buf
        out = self._entry
        entry_size = ENTRY_SIZE
        o = 0  # bytes of the entry assembled in out
        while True:
            quote = buf.find(b'"', self._pos, self._end)  # the closing one: base64 has no quote
            if buf.find(b"\\", self._pos, self._end if quote < 0 else quote) >= 0:
                self._unescape(self._end if quote < 0 else quote)
                quote = buf.find(b'"', self._pos, self._end)
            pos, end = self._pos, self._end
            if quote < 0 and end > pos and buf[end - 1] == _BACKSLASH:
                end -= 1  # half of an escape: the rest comes with the next read
            span = (end if quote < 0 else quote) - pos
            if quote >= 0 and span % 4:
                raise AnswerError("cards: not base64")
            span -= span % 4
            if span and quote < 0 and buf[pos + span - 1] == _PAD:
                span -= 4  # padding ends the string: decode it with the closing quote in sight
            if span:
                padding = (buf[pos + span - 1] == _PAD) + (buf[pos + span - 2] == _PAD)
                try:  # any buffer on the ESP32 (the stubs say bytes): no copy of the chunk
                    data = binascii.a2b_base64(memoryview(buf)[pos:pos + span])  # pyright: ignore[reportArgumentType]
                except Exception:  # binascii.Error, or a port's plain Exception
                    raise AnswerError("cards: not base64") from None
                if len(data) != span // 4 * 3 - padding or (padding and quote != pos + span):
                    raise AnswerError("cards: not base64")
                self._pos = pos + span
                d = 0
                n = len(data)
                view = memoryview(data)
                while d < n:
                    take = min(entry_size - o, n - d)
                    out[o:o + take] = view[d:d + take]
                    o += take
                    d += take
                    if o == entry_size:
                        table.add(out)
                        o = 0
            elif quote < 0:
                self._more()
                yield
                continue
            if quote >= 0 and self._pos == quote:
                if o:
                    raise AnswerError("cards cut in the middle of an entry")
                self._pos += 1
                return
