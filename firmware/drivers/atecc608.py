"""Microchip ATECC608A/B secure element over I2C, as a caisse_terminal Signer.

From the ATECC608 datasheet (DS40002239 / the 608A "complete" datasheet) and the CryptoAuthLib
packet format:

    wake:     SDA low for tWLO >= 60 us, then wait tWHI >= 1500 us. At 100 kHz, addressing
              0x00 holds SDA low for 8 bit times (80 us). The chip then answers 04 11 33 43.
    command:  word address 0x03, then COUNT OPCODE PARAM1 PARAM2(LSB, MSB) DATA.. CRC(LSB, MSB)
              COUNT covers itself through the CRC: 7 + len(DATA).
    response: COUNT DATA.. CRC; a 4-byte response carries one status byte (0x00 success).
    CRC-16:   polynomial 0x8005, register starts at 0, each byte fed LSB first, sent LSB first.
    idle:     word address 0x02, keeps TempKey (so Nonce then Sign works across it).
    sleep:    word address 0x01, clears TempKey; the watchdog forces sleep 1.3 s after a wake.

While it executes a command the chip does not acknowledge its address: the host polls.
The private key is created by GenKey inside the chip and never leaves it.

Provisioning (provisioning/caisse_provisioning/atecc.py holds the configuration and says why)
uses the zone commands: read_config, write_config_word, lock_config, write_slot, lock_data.
The terminal uses sign_digest (slot KEY_SLOT) and code_mac (SHA command, HMAC mode, with the
member-code key in CODE_KEY_SLOT; cryptoauthlib calib_sha_hmac: start 0x04 with the key slot,
then end 0x02 with the message, output only 0xC0 on the 608).
"""

import time

from micropython import const

from caisse_terminal.signer import Signer

_WORD_RESET = const(0x00)
_WORD_SLEEP = const(0x01)
_WORD_IDLE = const(0x02)
_WORD_COMMAND = const(0x03)

KEY_SLOT = const(0)  # the P-256 signing key
CODE_KEY_SLOT = const(1)  # the member-code HMAC key

# Opcodes (datasheet table "Command Opcodes")
_OP_READ = const(0x02)
_OP_WRITE = const(0x12)
_OP_NONCE = const(0x16)
_OP_LOCK = const(0x17)
_OP_RANDOM = const(0x1B)
_OP_INFO = const(0x30)
_OP_GENKEY = const(0x40)
_OP_SIGN = const(0x41)
_OP_SHA = const(0x47)

# Modes
_NONCE_PASSTHROUGH = const(0x03)  # mode[1:0] = 3: 32 input bytes go to TempKey as they are
_GENKEY_PRIVATE = const(0x04)  # create a random private key in the slot, return its public key
_GENKEY_PUBLIC = const(0x00)  # recompute the public key of the slot's private key
_SIGN_EXTERNAL = const(0x80)  # sign the 32-byte message in TempKey (mode bit 5 = 0)
_ZONE_CONFIG = const(0x00)
_ZONE_DATA = const(0x02)
_ZONE_32_BYTES = const(0x80)  # Read/Write Param1 bit 7: a 32-byte block instead of a word
_LOCK_CONFIG = const(0x00)  # Lock mode: the config zone, Param2 = CRC-16 of its 128 bytes
_LOCK_DATA_NO_CRC = const(0x81)  # the data zone, without summary CRC (private keys are unknown)
_SHA_HMAC_START = const(0x04)  # Param2 = key slot
_SHA_HMAC_END_OUTPUT = const(0xC2)  # the 608's HMAC end (0x02), digest to the output only (0xC0)
_LOCK_WORD = const(0x15)  # config bytes 84..87: ..., LockValue (86), LockConfig (87)
_LOCKED = const(0x00)  # 0x55 means unlocked

# Status codes (datasheet table "Status/Error Codes")
STATUS_SUCCESS = const(0x00)
STATUS_MISCOMPARE = const(0x01)
STATUS_PARSE_ERROR = const(0x03)
STATUS_ECC_FAULT = const(0x05)
STATUS_EXECUTION_ERROR = const(0x0F)
STATUS_AFTER_WAKE = const(0x11)
STATUS_WATCHDOG = const(0xEE)
STATUS_CRC_ERROR = const(0xFF)

# Maximum execution times in ms (datasheet table "Command Execution Times", 608 at default clock)
_EXEC_MS = {_OP_READ: 5, _OP_WRITE: 45, _OP_NONCE: 20, _OP_LOCK: 35, _OP_RANDOM: 30, _OP_INFO: 5,
            _OP_GENKEY: 215, _OP_SIGN: 115, _OP_SHA: 36}
_MARGIN_MS = const(20)  # on top of the datasheet maximum: bus and scheduling delays
_TWHI_MS = const(2)  # >= 1.5 ms after the wake pulse
_POLL_MS = const(1)
_MIN_TRIES = const(5)  # a slow host clock never cuts the wait short
_MAX_DATA = const(64)
_WAKE_RESPONSE = b"\x04\x11\x33\x43"


class ATECCError(Exception):
    """The chip answered with an error status; .status holds it."""

    def __init__(self, status, what=""):
        super().__init__("ATECC608 status 0x%02x %s" % (status, what))
        self.status = status


class ATECCCommError(Exception):
    """No answer, or an answer with a wrong CRC or length."""


def crc16(data, n=None):
    """The ATECC608 CRC-16 of data[:n], as an int (send LSB first)."""
    if n is None:
        n = len(data)
    crc = 0
    for i in range(n):
        byte = data[i]
        for bit in range(8):
            data_bit = (byte >> bit) & 1
            crc_bit = crc >> 15
            crc = (crc << 1) & 0xFFFF
            if data_bit != crc_bit:
                crc ^= 0x8005
    return crc


class ATECC608(Signer):
    """An ATECC608 on an I2C bus running at 100 kHz (for the wake pulse).

    key_slot is the ECC private key slot used by sign_digest and public_key.
    """

    def __init__(self, i2c, address=0x60, *, key_slot=KEY_SLOT, code_key_slot=CODE_KEY_SLOT,
                 sleep_ms=None, ticks_ms=None):
        self.i2c = i2c
        self.address = address
        self.key_slot = key_slot
        self.code_key_slot = code_key_slot
        self._sleep_ms = sleep_ms or time.sleep_ms
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._cmd = bytearray(1 + 7 + _MAX_DATA)
        self._rsp = bytearray(3 + _MAX_DATA)
        self._rspv = memoryview(self._rsp)
        try:
            self.wake()
            self.revision = self.info()
            self.sleep()
        except (OSError, ATECCCommError, ATECCError) as e:
            raise OSError("ATECC608 not answering at I2C address 0x%02x (%r)" % (address, e)) from e

    # --- power states ----------------------------------------------------------------------------

    def wake(self):
        try:
            self.i2c.writeto(0x00, b"")  # the address byte 0x00 is the wake pulse
        except OSError:
            pass  # nobody acknowledges address 0
        self._sleep_ms(_TWHI_MS)
        rsp = self._rspv[:4]
        try:
            self.i2c.readfrom_into(self.address, rsp)
        except OSError as e:
            raise ATECCCommError("no answer after wake") from e
        if rsp != _WAKE_RESPONSE:
            raise ATECCCommError("unexpected wake answer %s" % bytes(rsp))

    def idle(self):
        """Keeps TempKey, ~800 uA: only between the commands of one operation."""
        self._word(_WORD_IDLE)

    def sleep(self):
        """Clears TempKey, ~150 nA instead of ~800 uA idle: after every operation."""
        self._word(_WORD_SLEEP)

    def recover(self):
        """After an error: sleep (drops a half-done command), wake, check it answers, sleep."""
        self.sleep()
        self.wake()
        self.info()
        self.sleep()

    def _word(self, word):
        self._cmd[0] = word
        try:
            self.i2c.writeto(self.address, memoryview(self._cmd)[:1])
        except OSError:
            pass  # already asleep

    # --- commands --------------------------------------------------------------------------------

    def execute(self, opcode, param1, param2, data=b"", response_len=1):
        """Send one command to an awake chip; return its response data (a memoryview).

        response_len 1 means a status-only answer, checked here.
        """
        n = len(data)
        if n > _MAX_DATA:
            raise ValueError("command data too long")
        cmd = self._cmd
        cmd[0] = _WORD_COMMAND
        cmd[1] = 7 + n
        cmd[2] = opcode
        cmd[3] = param1
        cmd[4] = param2 & 0xFF
        cmd[5] = param2 >> 8
        cmd[6 : 6 + n] = data
        crc = crc16(memoryview(cmd)[1:], 5 + n)
        cmd[6 + n] = crc & 0xFF
        cmd[7 + n] = crc >> 8
        self.i2c.writeto(self.address, memoryview(cmd)[: 8 + n])
        return self._read_response(opcode, response_len)

    def _read_response(self, opcode, response_len):
        start = self._ticks_ms()
        limit = _EXEC_MS.get(opcode, 50) + _MARGIN_MS
        rsp = self._rspv[: 3 + response_len]
        tries = 0
        while True:
            try:
                self.i2c.readfrom_into(self.address, rsp)
                break
            except OSError:  # busy: the chip does not ACK its address yet
                tries += 1
                if tries >= _MIN_TRIES and time.ticks_diff(self._ticks_ms(), start) > limit:
                    raise ATECCCommError("no response to opcode 0x%02x after %d ms" % (opcode, limit)) from None
                self._sleep_ms(_POLL_MS)
        count = rsp[0]
        if count == 4 or response_len == 1:
            if count != 4 or crc16(rsp, 2) != rsp[2] | (rsp[3] << 8):
                raise ATECCCommError("bad status packet")
            if rsp[1] != STATUS_SUCCESS:
                raise ATECCError(rsp[1], "for opcode 0x%02x" % opcode)
            if response_len != 1:
                raise ATECCCommError("short answer to opcode 0x%02x" % opcode)
            return rsp[1:2]
        if count != 3 + response_len:
            raise ATECCCommError("answer length %d, expected %d" % (count, 3 + response_len))
        if crc16(rsp, count - 2) != rsp[count - 2] | (rsp[count - 1] << 8):
            raise ATECCCommError("bad CRC in answer to opcode 0x%02x" % opcode)
        return rsp[1 : 1 + response_len]

    def _session(self, opcode, param1, param2, data=b"", response_len=1):
        """wake, one command, sleep; the answer copied out of the shared buffer."""
        self.wake()
        try:
            return bytes(self.execute(opcode, param1, param2, data, response_len))
        finally:
            self.sleep()

    def info(self):
        """The 4-byte revision (Info mode 0): 00 00 60 02 for a 608A, 00 00 60 03 for a 608B."""
        return bytes(self.execute(_OP_INFO, 0x00, 0x0000, b"", 4))

    def random(self):
        """32 random bytes from the chip's DRBG (a fixed pattern while the config is unlocked)."""
        return self._session(_OP_RANDOM, 0x00, 0x0000, b"", 32)

    def read_config_word(self, word):
        """4 bytes of the config zone at word address `word` (byte address / 4)."""
        return self._session(_OP_READ, _ZONE_CONFIG, word, b"", 4)

    def read_config(self):
        """The 128 bytes of the config zone (four 32-byte reads)."""
        self.wake()
        try:
            out = bytearray(128)
            for block in range(4):
                out[block * 32:block * 32 + 32] = self.execute(
                    _OP_READ, _ZONE_CONFIG | _ZONE_32_BYTES, block << 3, b"", 32)
            return bytes(out)
        finally:
            self.idle()

    def write_config_word(self, word, data):
        """4 bytes of the config zone at word address `word` (only while it is unlocked)."""
        self._session(_OP_WRITE, _ZONE_CONFIG, word, data)

    def lock_config(self, crc):
        """Lock the config zone for good; the chip refuses unless `crc` is the CRC-16 of it."""
        self._session(_OP_LOCK, _LOCK_CONFIG, crc)

    def write_slot(self, slot, data):
        """32 bytes into the first block of a data slot (the slot's WriteConfig must allow it)."""
        if len(data) != 32:
            raise ValueError("a slot block is 32 bytes")
        self._session(_OP_WRITE, _ZONE_DATA | _ZONE_32_BYTES, slot << 3, data)

    def lock_data(self):
        """Lock the data zone for good: the slots' policies apply from then on."""
        self._session(_OP_LOCK, _LOCK_DATA_NO_CRC, 0)

    def hmac(self, slot, message):
        """HMAC-SHA256 with the key in `slot` over a message of at most 63 bytes."""
        if len(message) > 63:
            raise ValueError("one HMAC end block: at most 63 bytes")
        self.wake()
        try:
            self.execute(_OP_SHA, _SHA_HMAC_START, slot, b"", 1)
            return bytes(self.execute(_OP_SHA, _SHA_HMAC_END_OUTPUT, len(message), message, 32))
        finally:
            self.idle()

    def code_mac(self, message):
        """HMAC-SHA256 with the member-code key (docs/protocol.md, "Member-code verifiers")."""
        return self.hmac(self.code_key_slot, message)

    def locks(self):
        """(config_locked, data_locked) from LockConfig (byte 87) and LockValue (byte 86)."""
        w = self.read_config_word(_LOCK_WORD)
        return w[3] == _LOCKED, w[2] == _LOCKED

    def is_locked(self):
        """True when both the config and the data zones are locked: the key slot is final."""
        config_locked, data_locked = self.locks()
        return config_locked and data_locked

    def genkey(self, slot=None):
        """Create a new private key inside the chip; return its 65-byte public point."""
        slot = self.key_slot if slot is None else slot
        xy = self._session(_OP_GENKEY, _GENKEY_PRIVATE, slot, b"", 64)
        return b"\x04" + xy

    def public_key(self):
        """The 65-byte uncompressed public point of the key slot (Signer)."""
        return b"\x04" + self._session(_OP_GENKEY, _GENKEY_PUBLIC, self.key_slot, b"", 64)

    def sign_digest(self, digest):
        """r || s over a 32-byte digest: Nonce pass-through into TempKey, then Sign external."""
        if len(digest) != 32:
            raise ValueError("a SHA-256 digest is 32 bytes")
        self.wake()
        try:
            self.execute(_OP_NONCE, _NONCE_PASSTHROUGH, 0x0000, digest, 1)
            return bytes(self.execute(_OP_SIGN, _SIGN_EXTERNAL, self.key_slot, b"", 64))
        finally:
            self.sleep()
