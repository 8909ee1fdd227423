"""An ATECC608 on I2C, simulated from its datasheet; signs with the firmware's software P-256.

Sleeps until the wake pulse (a general call on the fake bus), then answers 04 11 33 43. Checks
COUNT and CRC-16 of each command (status 0xFF when wrong), does not acknowledge its address for
`busy_polls` reads while "executing", keeps TempKey across idle but not sleep. Faults queued by
tests: "bad_crc" (corrupt the next answer's CRC), "no_wake" (ignore the next wake pulse),
"busy" (stay busy forever), or an int status to answer the next command with.
"""

import hashlib

_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ENODEV = 19


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


class ATECC608Sim:
    def __init__(self, seed=b"sim", config_locked=True, data_locked=True, revision=b"\x00\x00\x60\x03"):
        self.seed = seed
        self.revision = revision
        self.config = bytearray(128)
        self.config[0:4] = b"\x01\x23\x9a\x5c"
        self.config[86] = 0x00 if data_locked else 0x55
        self.config[87] = 0x00 if config_locked else 0x55
        self.keys = {}  # slot -> 32-byte secret
        self.asleep = True
        self.tempkey = None
        self.out = None
        self.busy = 0
        self.busy_polls = 2
        self.faults = []
        self.commands = []  # opcodes executed, for tests
        self.wakes = 0
        self._counter = 0

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
            self.tempkey = None
            return
        if word == 0x02:
            self.asleep = True  # idle: TempKey stays
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

    # --- commands ---------------------------------------------------------------------------------

    def _locked(self):
        return self.config[86] == 0 and self.config[87] == 0

    def _execute(self, opcode, p1, p2, data):
        if opcode == 0x30:
            return self.revision
        if opcode == 0x02:
            if p1 & 0x03 != 0x00 or p2 * 4 + 4 > 128:
                return b"\x03"
            return bytes(self.config[p2 * 4 : p2 * 4 + 4])
        if opcode == 0x1B:
            if self.config[87] != 0:
                return b"\xff\xff\x00\x00" * 8  # config unlocked: fixed test pattern
            self._counter += 1
            return hashlib.sha256(self.seed + b"random" + bytes([self._counter])).digest()
        if opcode == 0x16:
            if p1 & 0x03 != 0x03 or len(data) != 32:
                return b"\x03"
            self.tempkey = data
            return b"\x00"
        if opcode == 0x40:
            if p2 > 15:
                return b"\x03"
            if p1 & 0x04:
                self.keys[p2] = self._new_secret(p2)
            elif p2 not in self.keys:
                return b"\x0f"
            from caisse_terminal import p256  # imported on first use: its table is heavy

            return p256.public_key(self.keys[p2])[1:]
        if opcode == 0x41:
            if p1 != 0x80 or p2 not in self.keys or self.tempkey is None or not self._locked():
                return b"\x0f"
            digest = self.tempkey
            self.tempkey = None
            from caisse_terminal import p256

            return p256.sign_digest(self.keys[p2], digest)
        return b"\x03"

    def _new_secret(self, slot):
        counter = 0
        while True:
            counter += 1
            d = hashlib.sha256(self.seed + bytes([slot, counter])).digest()
            if 0 < int.from_bytes(d, "big") < _N:
                return d
