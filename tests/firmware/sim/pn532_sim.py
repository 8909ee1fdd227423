"""A PN532 on I2C, simulated from the PN532 User Manual (UM0701-02), with virtual cards.

It checks the host's frames (preamble, LEN/LCS, DCS, TFI), answers ACK then the response,
keeps its last frame for a host NACK, and aborts on a host ACK. Faults are queued by tests:

    "nack"       answer the next command with NACK instead of ACK
    "bad_dcs"    corrupt the DCS of the next response once (a NACK brings the good frame)
    "bad_dcs2"   corrupt the next response and its resend
    "truncate"   send the next response cut short (LEN says more than there is)
    "silent"     accept the next command and never become ready (host timeout)
    "error"      answer the next command with the application error frame
    "slow"       stay busy for a few status polls before the response

The I2C side: every read returns the status byte (0x01 when a frame is ready) then the frame;
a read longer than one byte consumes the frame.
"""

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
_SW_OK = b"\x90\x00"
NDEF_AID = b"\xd2\x76\x00\x00\x85\x01\x01"


def frame(data):
    n = len(data)
    return bytes([0, 0, 0xFF, n, (-n) & 0xFF]) + bytes(data) + bytes([(-sum(data)) & 0xFF, 0])


class BasicCard:
    """An ISO 14443A card without ISO 14443-4 (an NTAG 21x, say): UID only."""

    iso_dep = False

    def __init__(self, uid, sak=0x00, atqa=b"\x00\x44"):
        self.uid = bytes(uid)
        self.sak = sak
        self.atqa = atqa
        self.apdus = []


def ndef_file(url):
    """The NDEF file of a card holding one URI record (NLEN, then the record)."""
    payload = b"\x04" + url  # URI prefix 0x04 = "https://"
    record = bytes([0xD1, 0x01, len(payload), 0x55]) + payload
    return bytes([len(record) >> 8, len(record) & 0xFF]) + record


class Ntag424:
    """An NTAG 424 DNA with a SUN URL in its NDEF file (NT4H2421Gx datasheet, ISO 7816-4 APDUs).

    url: one URL (the same SUN message at every read), or a list of URLs, one per read: each
    selection of the NDEF file serves the next one (the last one repeats). MicroPython has no
    AES here, so tests compute real SUN URLs with the CPython card model (ntag424_sim.py) and
    hand them over as this list.
    leave_after: the card leaves the field instead of answering that APDU (0-based), or None.
    leave_status: the PN532 status byte the host then sees: 0x01 timeout, 0x02 CRC error, ...
    """

    iso_dep = True
    sak = 0x20
    atqa = b"\x03\x44"
    ats = b"\x06\x77\x77\x71\x02\x80"  # TL, T0, TA, TB, TC, historical byte

    def __init__(self, uid, url, leave_after=None, leave_status=0x01):
        self.uid = bytes(uid)
        self.urls = list(url) if isinstance(url, list) else [url]
        self.reads = 0  # NDEF file selections so far
        self.leave_after = leave_after
        self.leave_status = leave_status
        self.apdus = []
        self.app_selected = False
        self.file = None

    def apdu(self, c):
        """Answer one command APDU; None means the card is gone."""
        if self.leave_after is not None and len(self.apdus) >= self.leave_after:
            return None
        self.apdus.append(bytes(c))
        if len(c) < 4:
            return b"\x67\x00"
        ins, p1, p2 = c[1], c[2], c[3]
        if ins == 0xA4 and p1 == 0x04:
            lc = c[4]
            if bytes(c[5 : 5 + lc]) == NDEF_AID:
                self.app_selected = True
                self.file = None
                return _SW_OK
            return b"\x6a\x82"
        if ins == 0xA4 and p1 == 0x00:
            if not self.app_selected:
                return b"\x6a\x82"
            if bytes(c[5:7]) == b"\xe1\x04":
                self.file = ndef_file(self.urls[min(self.reads, len(self.urls) - 1)])
                self.reads += 1
                return _SW_OK
            return b"\x6a\x82"
        if ins == 0xB0:
            if self.file is None:
                return b"\x69\x86"
            offset = (p1 << 8) | p2
            le = c[4] if len(c) > 4 else 0
            le = le or 256
            if offset > len(self.file):
                return b"\x6b\x00"
            return self.file[offset : offset + le] + _SW_OK
        return b"\x6d\x00"


class PN532Sim:
    def __init__(self, ic=0x32, version=(1, 6)):
        self.ic = ic
        self.version = version
        self.field = []  # cards in the field, first one is found
        self.faults = []
        self.out = []  # frames waiting to be read, in order
        self.last = None
        self.busy_polls = 0
        self.received = []  # (command, params) accepted, for tests
        self.bad_frames = 0
        self.powered_down = False
        self.target = None

    # --- I2C side -----------------------------------------------------------------------------

    def write(self, data):
        if data == ACK:
            self.out = []  # abort
            return
        if data == NACK:
            if self.last is not None:
                self.out = [self.last]
            return
        command = self._check(data)
        if command is None:
            self.bad_frames += 1
            self.out = [NACK]
            return
        fault = self.faults.pop(0) if self.faults else None
        if fault == "nack":
            self.out = [NACK]
            return
        self.powered_down = False
        self.received.append((command[1], bytes(command[2:])))
        if fault == "silent":
            self.out = [ACK]
            self.busy_polls = 10**9
            self.last = None
            return
        if fault == "error":
            response = ERROR_FRAME
        else:
            response = frame(bytes([0xD5, command[1] + 1]) + self._execute(command[1], command[2:]))
        self.last = response
        if fault in ("bad_dcs", "bad_dcs2"):
            bad = bytearray(response)
            bad[-2] ^= 0x01
            response = bytes(bad)
            if fault == "bad_dcs2":
                self.last = response
        elif fault == "truncate":
            response = response[: len(response) // 2]
        elif fault == "slow":
            self.busy_polls = 3
        self.out = [ACK, response]

    def read(self, buf):
        for i in range(len(buf)):
            buf[i] = 0
        if not self.out or (self.busy_polls and len(self.out) == 1):
            if len(self.out) == 1 and self.busy_polls:
                self.busy_polls -= 1
            return
        buf[0] = 0x01
        if len(buf) == 1:
            return
        f = self.out.pop(0)
        n = min(len(f), len(buf) - 1)
        buf[1 : 1 + n] = f[:n]

    def _check(self, data):
        """The TFI and PD bytes of a well-formed host frame, or None."""
        if len(data) < 7 or data[:3] != b"\x00\x00\xff":
            return None
        n = data[3]
        if (n + data[4]) & 0xFF or len(data) < 7 + n - 1:
            return None
        body = data[5 : 5 + n]
        if len(body) != n or (sum(body) + data[5 + n]) & 0xFF or body[0] != 0xD4:
            return None
        return body

    # --- commands -----------------------------------------------------------------------------

    def _execute(self, command, params):
        if command == 0x02:
            return bytes([self.ic, self.version[0], self.version[1], 0x07])
        if command in (0x14, 0x32):
            return b""
        if command == 0x16:
            self.powered_down = True
            return b"\x00"
        if command == 0x52:
            self.target = None
            return b"\x00"
        if command == 0x4A:
            return self._list(params)
        if command == 0x40:
            return self._exchange(params)
        return b"\x27"  # not handled: report "command not acceptable"

    def _list(self, params):
        if params[1] != 0x00 or not self.field:
            return b"\x00"
        card = self.field[0]
        self.target = card
        data = bytes([1, 1]) + card.atqa + bytes([card.sak, len(card.uid)]) + card.uid
        if card.iso_dep:
            data += card.ats
        return data

    def _exchange(self, params):
        card = self.target
        if card is None or params[0] != 1:
            return b"\x27"
        if not card.iso_dep:
            return b"\x01"
        answer = card.apdu(params[1:])
        if answer is None:
            if card in self.field:
                self.field.remove(card)
            self.target = None
            return bytes([card.leave_status])  # 0x01: time out, the target has not answered
        return b"\x00" + answer
