"""Read one GET /sync answer as it arrives (docs/protocol.md, "Sync").

The answer is a JSON object of a few small values and `cards`, a base64 string of up to 512
entries (24 KB). It is never whole in RAM: the stream is read CHUNK bytes at a time into one
reused buffer; every 4 base64 characters become 3 bytes of the entry being assembled, and each
complete entry goes to CardTable.add (docs/firmware.md, "Card table"). The other values are
copied into a bounded buffer one at a time and parsed with json.loads into `answer`.

read() is a generator that yields after each chunk of cards, so the sync runs in steps.
Anything that is not such an answer (cut short, bad base64, entries cut in the middle, a value
longer than VALUE_MAX) raises AnswerError; nothing has been applied to the table by then.
"""

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
_BAD = const(0x80)  # in the decoding table: not a base64 character
_PAD_CODE = const(0x40)


class AnswerError(ValueError):
    """The bytes are not a sync answer the terminal can apply."""


def _b64_table() -> bytearray:
    table = bytearray(b"\x80" * 256)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    for i in range(64):
        table[alphabet[i]] = i
    table[_PAD] = _PAD_CODE
    return table


class PageReader:
    """Reusable from one page to the next: its buffers (1.9 KB) are made once."""

    def __init__(self) -> None:
        self._buf = bytearray(CHUNK)
        self._pos = 0
        self._end = 0
        self._stream = None
        self._value = bytearray(VALUE_MAX)
        self._entry = bytearray(ENTRY_SIZE + 2)  # an entry, and 2 bytes of a group past its end
        self._b64 = _b64_table()
        self.answer = {}

    def read(self, stream, table, entry_size: int):
        """Read the answer from stream (readinto); its cards go to table.add(), entry_size bytes
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
                yield from self._cards(table, entry_size)
            else:
                n = self._raw_value()
                other += n
                if other > OTHER_MAX:
                    raise AnswerError("answer too long")
                try:
                    answer[key] = json.loads(self._value[:n])
                except ValueError:
                    raise AnswerError("bad value for " + key)
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

    def _cards(self, table, entry_size: int):
        """Decode the base64 string up to its closing quote into entries for table.add."""
        b64 = self._b64
        buf = self._buf
        out = self._entry
        whole = memoryview(out)[:entry_size]
        o = 0  # bytes of the entry assembled in out
        group = 0  # base64 characters of the current group of 4 ...
        bits = 0  # ... and their value
        padding = 0  # '=' seen: only '=' and the closing quote may follow
        while True:
            if self._pos == self._end:
                self._fill()
                yield
            pos, end = self._pos, self._end
            if not group and not padding:
                # the common case: whole groups of 4 characters, 3 bytes each, no allocation
                while pos + 4 <= end:
                    a = b64[buf[pos]]
                    b = b64[buf[pos + 1]]
                    c = b64[buf[pos + 2]]
                    d = b64[buf[pos + 3]]
                    if (a | b | c | d) & 0xC0:
                        break
                    v = (a << 18) | (b << 12) | (c << 6) | d
                    out[o] = v >> 16
                    out[o + 1] = (v >> 8) & 0xFF
                    out[o + 2] = v & 0xFF
                    o += 3
                    if o >= entry_size:
                        table.add(whole)
                        o -= entry_size
                        if o:  # the group ran past the entry: carry its last bytes over
                            out[0] = out[entry_size]
                            if o == 2:
                                out[1] = out[entry_size + 1]
                    pos += 4
                self._pos = pos
                if pos == end:
                    continue
            ch = buf[pos]
            self._pos = pos + 1
            t = b64[ch]
            if ch == _BACKSLASH:  # JSON may escape '/' as "\/"; nothing else belongs here
                if self._pos == self._end:
                    self._fill()
                if buf[self._pos] != _SLASH:
                    raise AnswerError("bad escape in cards")
                self._pos += 1
                t = 63
            if ch == _QUOTE:
                if group or o:
                    raise AnswerError("cards cut in the middle of an entry")
                return
            if t == _BAD or (padding and t != _PAD_CODE):
                raise AnswerError("cards: not base64")
            if t == _PAD_CODE:
                # "xx==" ends with 1 byte, "xxx=" with 2; their bits were kept in `bits`
                if group == 2 and not padding:
                    out[o] = (bits >> 4) & 0xFF
                    o += 1
                elif group == 3 and not padding:
                    out[o] = (bits >> 10) & 0xFF
                    out[o + 1] = (bits >> 2) & 0xFF
                    o += 2
                elif not (padding and group == 3):
                    raise AnswerError("cards: bad base64 padding")
                padding += 1
                group += 1
                if group == 4:
                    group = 0
                if o >= entry_size:
                    table.add(whole)
                    o -= entry_size
                continue
            bits = (bits << 6) | t
            group += 1
            if group == 4:
                out[o] = (bits >> 16) & 0xFF
                out[o + 1] = (bits >> 8) & 0xFF
                out[o + 2] = bits & 0xFF
                o += 3
                group = 0
                bits = 0
                if o >= entry_size:
                    table.add(whole)
                    o -= entry_size
                    if o:
                        out[0] = out[entry_size]
                        if o == 2:
                            out[1] = out[entry_size + 1]
