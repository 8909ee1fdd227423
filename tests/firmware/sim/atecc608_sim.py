"""An ATECC608 on I2C as it leaves the factory: both zones unlocked, no key.

Written from the public ATECC508A complete datasheet (DS20005927A: zones, SlotConfig and KeyConfig
bits, Write, Lock, GenKey, Sign, Nonce, Read) and Microchip's cryptoauthlib (calib_write.c,
calib_lock.c, calib_sha.c: packet parameters, the 608's SHA-HMAC modes). It models what the
driver and provisioning use, with the chip's refusals:

- Write: config zone in 4-byte words while it is unlocked, except words 0-3 (serial number,
  revision) and 21 (UserExtra, Selector, LockValue, LockConfig); data zone only after the config
  is locked, 32 bytes at a time, never into an ECC private key slot; once the data zone is locked,
  only slots whose WriteConfig is Always (IsSecret: 32 bytes only).
- Lock: the config zone (with the CRC of its 128 bytes, or none), then the data zone (no CRC);
  each once.
- GenKey: refused before the config lock, on a slot that is not a P-256 private key, and after
  the data lock unless the slot's WriteConfig allows GenKey (bit 13). Public mode needs PubInfo.
- Sign (external, TempKey from Nonce pass-through) and SHA-HMAC (start with a key slot, end with
  up to 63 bytes): only once both zones are locked, with the slot's permissions (ReadKey bit 0
  for external signatures; a non-ECC key without NoMac for HMAC).
- Random returns a fixed pattern while the config zone is unlocked, as the datasheet says.

Bus behaviour: sleeps until the wake pulse (a general call on the fake bus), then answers
04 11 33 43; checks COUNT and CRC-16 of each command (status 0xFF when wrong); does not
acknowledge its address for `busy_polls` reads while "executing"; keeps TempKey and the SHA
context across idle but not sleep. Faults queued by tests: "bad_crc" (corrupt the next answer's
CRC), "no_wake" (ignore the next wake pulse), "busy" (stay busy forever), or an int status to
answer the next command with.

The factory content of a blank 608's configuration zone is not published; this one is zeros
beyond the serial number, with the I2C address 0x60, both zones unlocked (0x55) and no slot
locked. Provisioning writes every word it needs, so it does not depend on it.
Signatures are made with the firmware's pure-Python P-256 (MicroPython has nothing else); the
tests check them with `cryptography` on the host. `on_change()` is called after every write to
the chip's memory (the simulated board keeps its state in a file, as the chip keeps it).
"""

import hashlib

_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ENODEV = 19

OK = b"\x00"
MISCOMPARE = b"\x01"
PARSE_ERROR = b"\x03"
EXECUTION_ERROR = b"\x0f"

_CONFIG_LOCK_BYTE = 87
_DATA_LOCK_BYTE = 86
_UNLOCKED = 0x55
_SLOT_CONFIG = 20
_KEY_CONFIG = 96
_KEY_TYPE_P256 = 4


def crc16(data):
    crc = 0
    for byte in data:
        for bit in range(8):
            if ((byte >> bit) & 1) != (crc >> 15):
                crc = ((crc << 1) & 0xFFFF) ^ 0x8005
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def packet(data):
    body = bytes([len(data) + 3]) + bytes(data)
    crc = crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


def hmac_sha256(key, message):
    block = bytes(key) + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + bytes(message)).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in block) + inner).digest()


def factory_config(serial=b"\x01\x23\x5e\xa1\x0c\x3e\x11\x27\xee", revision=b"\x00\x00\x60\x03"):
    config = bytearray(128)
    config[0:4] = serial[0:4]
    config[4:8] = revision
    config[8:13] = serial[4:9]
    config[14] = 0x01  # I2C_Enable
    config[16] = 0xC0  # I2C address 0x60
    config[_DATA_LOCK_BYTE] = config[_CONFIG_LOCK_BYTE] = _UNLOCKED
    config[88] = config[89] = 0xFF  # SlotLocked: no slot locked
    return config


def slot_size(slot):
    return 416 if slot == 8 else 36 if slot < 8 else 72


class ATECC608Sim:
    def __init__(self, seed=b"sim", revision=b"\x00\x00\x60\x03", config=None, slots=None, keys=None):
        self.seed = seed
        self.revision = revision
        self.config = bytearray(config) if config is not None else factory_config(revision=revision)
        self.slots = dict(slots or {})  # slot -> bytes written by Write (data, symmetric keys)
        self.keys = dict(keys or {})  # slot -> 32-byte P-256 private key made by GenKey
        self.asleep = True
        self.tempkey = None
        self.hmac_key = None  # the SHA engine's HMAC context: the key slot's bytes...
        self._hmac_message = b""  # ... and the 64-byte blocks given since the start
        self.out = None
        self.busy = 0
        self.busy_polls = 2
        self.faults = []
        self.commands = []  # opcodes executed, for tests
        self.wakes = 0
        self.genkeys = 0
        self._counter = 0

    def on_change(self):
        """Called after the chip's memory changed (Write, Lock, GenKey)."""

    # --- I2C side ---------------------------------------------------------------------------------

    def general_call(self, data):
        if self.faults and self.faults[0] == "no_wake":
            self.faults.pop(0)
            return
        self.asleep = False
        self.wakes += 1
        self.out = b"\x04\x11\x33\x43"

    def write(self, data):
        if self.asleep:
            raise OSError(_ENODEV)
        word = data[0]
        if word == 0x01:
            self.asleep = True
            self.tempkey = self.hmac_key = None
            return
        if word == 0x02:
            self.asleep = True  # idle: TempKey and the SHA context stay
            return
        if word != 0x03:
            return
        cmd = data[1:]
        if len(cmd) < 7 or cmd[0] != len(cmd) or crc16(cmd[:-2]) != cmd[-2] | (cmd[-1] << 8):
            self.out = packet(b"\xff")
            return
        opcode, p1, p2 = cmd[1], cmd[2], cmd[3] | (cmd[4] << 8)
        self.commands.append(opcode)
        fault = self.faults.pop(0) if self.faults else None
        if isinstance(fault, int):
            answer = bytes([fault])
        else:
            answer = self._execute(opcode, p1, p2, bytes(cmd[5:-2]))
        self.out = packet(answer)
        if fault == "bad_crc":
            bad = bytearray(self.out)
            bad[-1] ^= 0x55
            self.out = bytes(bad)
        self.busy = 10**9 if fault == "busy" else self.busy_polls

    def read(self, buf):
        if self.asleep:
            raise OSError(_ENODEV)
        if self.busy:
            self.busy -= 1
            raise OSError(_ENODEV)
        for i in range(len(buf)):
            buf[i] = 0xFF
        if self.out is not None:
            n = min(len(buf), len(self.out))
            buf[:n] = self.out[:n]

    # --- the configuration ------------------------------------------------------------------------

    def config_locked(self):
        return self.config[_CONFIG_LOCK_BYTE] != _UNLOCKED

    def data_locked(self):
        return self.config[_DATA_LOCK_BYTE] != _UNLOCKED

    def slot_config(self, slot):
        return self.config[_SLOT_CONFIG + 2 * slot] | (self.config[_SLOT_CONFIG + 2 * slot + 1] << 8)

    def key_config(self, slot):
        return self.config[_KEY_CONFIG + 2 * slot] | (self.config[_KEY_CONFIG + 2 * slot + 1] << 8)

    def _is_private_p256(self, slot):
        key_config = self.key_config(slot)
        return key_config & 1 and (key_config >> 2) & 7 == _KEY_TYPE_P256

    # --- commands ---------------------------------------------------------------------------------

    def _execute(self, opcode, p1, p2, data):
        handler = {0x30: self._info, 0x02: self._read, 0x12: self._write, 0x17: self._lock,
                   0x1B: self._random, 0x16: self._nonce, 0x40: self._genkey, 0x41: self._sign,
                   0x47: self._sha}.get(opcode)
        return PARSE_ERROR if handler is None else handler(p1, p2, data)

    def _info(self, p1, p2, data):
        return self.revision if p1 == 0 else PARSE_ERROR

    def _read(self, p1, p2, data):
        size = 32 if p1 & 0x80 else 4
        zone = p1 & 0x03
        if zone == 0:
            start = p2 * 4 if size == 4 else (p2 >> 3) * 32
            if start + size > 128:
                return PARSE_ERROR
            return bytes(self.config[start:start + size])
        if zone != 2:
            return PARSE_ERROR  # the OTP zone is not modelled
        slot = (p2 >> 3) & 0x0F
        if not self.data_locked() or self.slot_config(slot) & 0x80 or slot in self.keys:
            return EXECUTION_ERROR  # secret slots never read in the clear; nothing before the lock
        stored = self.slots.get(slot, bytes(slot_size(slot)))
        start = (p2 >> 8) * 32 + (p2 & 7) * 4
        return bytes(stored[start:start + size]) if start + size <= len(stored) else PARSE_ERROR

    def _write(self, p1, p2, data):
        size = 32 if p1 & 0x80 else 4
        if p1 & 0x40 or len(data) != size:
            return PARSE_ERROR  # encrypted writes are not modelled
        zone = p1 & 0x03
        if zone == 0:
            word = p2
            if size != 4 or self.config_locked() or word < 4 or word == 21 or word > 31:
                return EXECUTION_ERROR
            self.config[word * 4:word * 4 + 4] = data
            self.on_change()
            return OK
        if zone != 2:
            return PARSE_ERROR
        slot, block = (p2 >> 3) & 0x0F, p2 >> 8
        if not self.config_locked() or size != 32 or self._is_private_p256(slot):
            return EXECUTION_ERROR
        if (block + 1) * 32 > slot_size(slot):
            return PARSE_ERROR
        if self.data_locked() and self.slot_config(slot) >> 12 != 0:
            return EXECUTION_ERROR  # after the data lock only WriteConfig Always slots are written
        stored = bytearray(self.slots.get(slot, bytes(slot_size(slot))))
        stored[block * 32:block * 32 + 32] = data
        self.slots[slot] = bytes(stored)
        self.on_change()
        return OK

    def _lock(self, p1, p2, data):
        zone = p1 & 0x03
        check_crc = not p1 & 0x80
        if zone == 0:
            if self.config_locked():
                return EXECUTION_ERROR
            if check_crc and crc16(self.config) != p2:
                return EXECUTION_ERROR
            self.config[_CONFIG_LOCK_BYTE] = 0x00
        elif zone == 1:
            if check_crc:
                return PARSE_ERROR  # the data zone's summary CRC is not modelled
            if not self.config_locked() or self.data_locked():
                return EXECUTION_ERROR
            self.config[_DATA_LOCK_BYTE] = 0x00
        else:
            return PARSE_ERROR  # slot locks are not modelled
        self.on_change()
        return OK

    def _random(self, p1, p2, data):
        if not self.config_locked():
            return b"\xff\xff\x00\x00" * 8  # config unlocked: fixed test pattern
        self._counter += 1
        return hashlib.sha256(self.seed + b"random" + bytes([self._counter])).digest()

    def _nonce(self, p1, p2, data):
        if p1 & 0x03 != 0x03 or len(data) != 32:
            return PARSE_ERROR
        self.tempkey = data
        return OK

    def _genkey(self, p1, p2, data):
        if p2 > 15:
            return PARSE_ERROR
        if not self.config_locked() or not self._is_private_p256(p2):
            return EXECUTION_ERROR
        if p1 & 0x04:
            if self.data_locked() and not self.slot_config(p2) & 0x2000:
                return EXECUTION_ERROR  # the slot's WriteConfig forbids a new key after the lock
            self.keys[p2] = self._new_secret(p2)
            self.on_change()
        elif p2 not in self.keys or not self.key_config(p2) & 0x02:
            return EXECUTION_ERROR  # no key yet, or PubInfo off
        from caisse_terminal import p256  # imported on first use: its table is heavy

        return p256.public_key(self.keys[p2])[1:]

    def _sign(self, p1, p2, data):
        if (p1 != 0x80 or p2 > 15 or not (self.config_locked() and self.data_locked())
                or not self._is_private_p256(p2) or not self.slot_config(p2) & 0x01
                or p2 not in self.keys or self.tempkey is None):
            return EXECUTION_ERROR
        digest = self.tempkey
        self.tempkey = None
        from caisse_terminal import p256

        return p256.sign_digest(self.keys[p2], digest)

    def _sha(self, p1, p2, data):
        mode = p1 & 0x07
        if mode == 0x04:  # HMAC start: the key in slot p2
            if (p2 > 15 or not (self.config_locked() and self.data_locked())
                    or self.key_config(p2) & 1 or self.slot_config(p2) & 0x10):
                return EXECUTION_ERROR  # a private key, or NoMac: not an HMAC key
            self.hmac_key = self.slots.get(p2, bytes(slot_size(p2)))[:32]
            self._hmac_message = b""
            return OK
        if self.hmac_key is None:
            return EXECUTION_ERROR
        if mode == 0x01:  # update: one 64-byte block
            if len(data) != 64:
                return PARSE_ERROR
            self._hmac_message += data
            return OK
        if mode == 0x02 and p2 == len(data) and len(data) < 64:  # the 608's HMAC end
            mac = hmac_sha256(self.hmac_key, self._hmac_message + data)
            self.hmac_key = None
            return mac
        return PARSE_ERROR

    def _new_secret(self, slot):
        """A new key each time, as the chip's random generator gives (from the seed, for tests)."""
        counter = 0
        self.genkeys += 1
        while True:
            counter += 1
            d = hashlib.sha256(self.seed + bytes([slot, counter]) + str(self.genkeys).encode()).digest()
            if 0 < int.from_bytes(d, "big") < _N:
                return d
