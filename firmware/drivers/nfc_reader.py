"""The terminal's card reader (caisse_terminal.hal.CardReader) on a PN532.

A tap is one InListPassiveTarget. A basic card gives its UID. An NTAG 424 DNA (ISO-DEP) also
gives its SUN message, read from its NDEF file with three ISO 7816-4 APDUs (NT4H2421Gx
datasheet, "ISOSelectFile" and "ISOReadBinary"):

    00 A4 04 00 07 D2760000850101 00   select the NDEF application by its DF name
    00 A4 00 0C 02 E104                select the NDEF file
    00 B0 hi lo Le                     read binary: NLEN first, then the NDEF message

The SUN URL is parsed by caisse_terminal.sun.sun_from_ndef.
"""

import binascii

from caisse_terminal.hal import Card, CardReader, CardRemoved
from caisse_terminal.sun import sun_from_ndef
from drivers.pn532 import CardError, CardGone, PN532Timeout

_SELECT_NDEF_APP = b"\x00\xa4\x04\x00\x07\xd2\x76\x00\x00\x85\x01\x01\x00"
_SELECT_NDEF_FILE = b"\x00\xa4\x00\x0c\x02\xe1\x04"
_SW_OK = b"\x90\x00"
_READ_CHUNK = 64
_MAX_NDEF = 256


class SunMissing(Exception):
    """An ISO-DEP card without a readable SUN message (not a caisse card)."""


class NfcReader(CardReader):
    """poll() as hal.CardReader describes it, on a configured PN532 driver."""

    def __init__(self, pn532, *, poll_timeout_ms=200):
        self.pn532 = pn532
        self.poll_timeout_ms = poll_timeout_ms
        self._held = None  # the Card read in the last poll, while it stays in the field
        self._configure()

    def _configure(self):
        self.pn532.sam_configuration()
        self.pn532.set_passive_retries(1)  # answer "no card" at once instead of waiting for one

    # --- power (caisse_terminal.power: the field is off between taps) -----------------------------

    def sleep(self):
        """Power the PN532 down: no RF field, no card seen until wake()."""
        self._held = None
        self.pn532.power_down()

    def wake(self):
        self.pn532.wake()
        self._configure()

    def recover(self):
        """After an error: reset the PN532 (RSTPDN, when wired), check it answers, configure it."""
        self._held = None
        self.pn532.hard_reset()
        self.pn532.firmware_version()
        self._configure()

    def _apdu(self, apdu):
        answer = self.pn532.data_exchange(apdu)
        if len(answer) < 2 or answer[-2:] != _SW_OK:
            raise SunMissing("card refused APDU %s" % binascii.hexlify(bytes(apdu[:4])))
        return answer[:-2]

    def read_sun(self):
        """The SUN message of the ISO-DEP card just listed (raises CardGone if it leaves)."""
        self._apdu(_SELECT_NDEF_APP)
        self._apdu(_SELECT_NDEF_FILE)
        nlen = self._apdu(b"\x00\xb0\x00\x00\x02")
        size = (nlen[0] << 8) | nlen[1]
        if not 0 < size <= _MAX_NDEF:
            raise SunMissing("NDEF length %d" % size)
        message = bytearray()
        offset = 2
        while len(message) < size:
            n = min(_READ_CHUNK, size - len(message))
            chunk = self._apdu(bytes((0x00, 0xB0, offset >> 8, offset & 0xFF, n)))
            if not chunk:
                raise SunMissing("empty read")
            message += chunk
            offset += len(chunk)
        sun = sun_from_ndef(bytes(message))
        if sun is None:
            raise SunMissing("no SUN parameters in the NDEF message")
        return sun

    def poll(self):
        try:
            found = self.pn532.list_passive_target(timeout_ms=self.poll_timeout_ms)
        except PN532Timeout:
            self._held = None
            return None
        if found is None:
            self._held = None
            return None
        uid, _sel_res, ats = found
        held = self._held
        if held is not None and held.uid == uid:
            # Same card, still in the field: do not read its SUN message again (each read
            # advances the card's counter and costs the poll loop several APDUs).
            self._release()
            return held
        self._held = None
        auth = None
        try:
            if ats:
                try:
                    auth = self.read_sun()
                except SunMissing:
                    auth = None
        except (CardGone, CardError, PN532Timeout):
            # A card pulled away mid-exchange shows up as a timeout or as an RF error (CRC,
            # parity, framing) depending on when the field was lost: all mean "tap again".
            raise CardRemoved() from None
        finally:
            self._release()
        self._held = card = Card(uid, auth)
        return card

    def _release(self):
        try:
            self.pn532.release()
        except Exception:
            pass
