"""NTAG 424 DNA commands a technician's computer sends to personalize a secure card.

AuthenticateEV2First and EV2 secure messaging (NT4H2421Gx datasheet, NXP AN12196), on CPython
with `cryptography`. The card is reached through one callable, `transceive(apdu) -> answer`
(answer = data || SW1 SW2), so the same code runs over a USB PN532 (pn532_uart.py) and in tests
over a simulated card. The AN12196 worked examples pin these functions in
tests/provisioning/test_ntag424.py.

No maintained PyPI library was used: the ones found (boltlib 0.2, pylibsdm 1.0.0a0, both last
released in 2023) are tied to one product or pre-release, and the protocol is a few hundred lines.

Native commands travel in ISO 7816 APDUs: 90 INS 00 00 Lc data 00; the card answers data || 91 SW2
(91 00 success, 91 AF more to come). A session is (TI, CmdCtr, SesAuthENCKey, SesAuthMACKey):
- command MAC = odd bytes of CMAC(MACKey, INS || CmdCtr LE || TI || header || data);
- CommMode.Full encrypts the data first: AES-CBC, IV = E(ENCKey, A55A || TI || CmdCtr || 0*8),
  padded with 80 00 .. (always, so 16 bytes of data become 32);
- answers: MAC over (SW2 || CmdCtr+1 || TI || data), data IV = E(ENCKey, 5AA5 || TI || CmdCtr+1 ..);
- CmdCtr advances by one per command/response pair. A wrong answer MAC is an error: the
  session is over (the card may not have done what was asked).
"""

from __future__ import annotations

import binascii
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from caisse_common.sun import KEY_BYTES, cmac

Transceive = Callable[[bytes], bytes]

ZERO_IV = bytes(KEY_BYTES)
NDEF_AID = bytes.fromhex("D2760000850101")
NDEF_FILE_NO = 2
CMD_AUTH_EV2_FIRST = 0x71
CMD_MORE = 0xAF
CMD_CHANGE_KEY = 0xC4
CMD_CHANGE_FILE_SETTINGS = 0x5F
CMD_GET_FILE_SETTINGS = 0xF5
CMD_WRITE_DATA = 0x8D
STATUS_OK = 0x00
STATUS_MORE = 0xAF
# NT4H2421Gx status codes, for messages.
STATUS_NAMES = {0x1E: "integrity error", 0x40: "no such key", 0x7E: "length error", 0x9D: "permission denied",
                0x9E: "parameter error", 0xAE: "authentication error", 0xBE: "boundary error",
                0xCA: "command aborted", 0xF0: "file not found"}


class Ntag424Error(Exception):
    """The card refused a command, answered something malformed, or failed a MAC check."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def truncate_mac(full_mac: bytes) -> bytes:
    """The 8-byte MAC of NTAG 424 DNA: bytes 1, 3, 5 .. 15 of the 16-byte CMAC."""
    return full_mac[1::2]


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 80, then zeros to a whole block (always adds a byte)."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % KEY_BYTES)


def unpad(data: bytes) -> bytes:
    end = data.rstrip(b"\x00")
    if not end or end[-1] != 0x80 or len(data) - len(end) >= KEY_BYTES:
        raise Ntag424Error("bad padding in decrypted data")
    return end[:-1]


def crc32_nk(data: bytes) -> bytes:
    """The CRC32 ChangeKey appends (JAMCRC: the IEEE CRC without its final inversion), LE."""
    return (binascii.crc32(data) ^ 0xFFFFFFFF).to_bytes(4, "little")


def rotate_left(data: bytes) -> bytes:
    return data[1:] + data[:1]


def session_vectors(rnd_a: bytes, rnd_b: bytes) -> tuple[bytes, bytes]:
    """SV1 (encryption) and SV2 (MAC) of AuthenticateEV2First."""
    mixed = bytes(a ^ b for a, b in zip(rnd_a[2:8], rnd_b[0:6], strict=True))
    tail = rnd_a[0:2] + mixed + rnd_b[6:16] + rnd_a[8:16]
    return bytes.fromhex("A55A00010080") + tail, bytes.fromhex("5AA500010080") + tail


def native_apdu(ins: int, data: bytes = b"") -> bytes:
    """A native command wrapped in ISO 7816: 90 INS 00 00 [Lc data] 00."""
    body = bytes([len(data)]) + data if data else b""
    return bytes([0x90, ins, 0x00, 0x00]) + body + b"\x00"


def change_key_data(key_no: int, auth_key_no: int, new_key: bytes, old_key: bytes | None, version: int) -> bytes:
    """The plain data of ChangeKey: the session's own key, or another key with XOR and CRC."""
    if key_no == auth_key_no:
        return new_key + bytes([version])
    if old_key is None:
        raise ValueError("changing a key other than the session's needs its old value")
    xored = bytes(a ^ b for a, b in zip(new_key, old_key, strict=True))
    return xored + bytes([version]) + crc32_nk(new_key)


@dataclass
class Session:
    key_no: int
    ti: bytes
    enc_key: bytes
    mac_key: bytes
    counter: int = 0

    def iv(self, label: bytes, counter: int) -> bytes:
        block = label + self.ti + counter.to_bytes(2, "little") + bytes(8)
        return aes_cbc_encrypt(self.enc_key, ZERO_IV, block)

    def command_mac(self, ins: int, header: bytes, data: bytes) -> bytes:
        message = bytes([ins]) + self.counter.to_bytes(2, "little") + self.ti + header + data
        return truncate_mac(cmac(self.mac_key, message))

    def wrap(self, ins: int, header: bytes, data: bytes, *, full: bool) -> bytes:
        """The APDU of one command in CommMode.MAC (full=False) or CommMode.Full."""
        if full and data:
            data = aes_cbc_encrypt(self.enc_key, self.iv(b"\xa5\x5a", self.counter), pad(data))
        return native_apdu(ins, header + data + self.command_mac(ins, header, data))

    def unwrap(self, status: int, body: bytes, *, full: bool) -> bytes:
        """Check the MAC of an answer (data || MAC), advance CmdCtr, return the plain data."""
        if len(body) < 8:
            raise Ntag424Error("answer too short for its MAC")
        data, mac = body[:-8], body[-8:]
        counter = self.counter + 1
        message = bytes([status]) + counter.to_bytes(2, "little") + self.ti + data
        if not hmac.compare_digest(truncate_mac(cmac(self.mac_key, message)), mac):
            raise Ntag424Error("the card's answer MAC is wrong")
        self.counter = counter
        if full and data:
            data = unpad(aes_cbc_decrypt(self.enc_key, self.iv(b"\x5a\xa5", counter), data))
        return data


class Ntag424:
    """One NTAG 424 DNA on a transceive callable; commands raise Ntag424Error on refusal."""

    def __init__(self, transceive: Transceive, *, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._transceive = transceive
        self._random = random_bytes
        self.session: Session | None = None

    def _exchange(self, apdu: bytes, *, more: bool = False) -> tuple[int, bytes]:
        answer = self._transceive(apdu)
        if len(answer) < 2:
            raise Ntag424Error("the card gave no status word")
        sw1, sw2 = answer[-2], answer[-1]
        if sw1 == 0x91 and (sw2 == STATUS_OK or (more and sw2 == STATUS_MORE)):
            return sw2, answer[:-2]
        self.session = None  # the card ends the session on any error
        name = STATUS_NAMES.get(sw2, "status") if sw1 == 0x91 else "ISO status"
        raise Ntag424Error(f"card refused command {apdu[1]:#04x}: {name} {sw1:02X}{sw2:02X}", sw2)

    def _session(self) -> Session:
        if self.session is None:
            raise Ntag424Error("no authenticated session")
        return self.session

    def select_ndef_application(self) -> None:
        answer = self._transceive(bytes([0x00, 0xA4, 0x04, 0x00, len(NDEF_AID)]) + NDEF_AID + b"\x00")
        if answer[-2:] != b"\x90\x00":
            raise Ntag424Error(f"not an NTAG 424 DNA: NDEF application select answered {answer[-2:].hex()}")
        self.session = None

    def read_ndef(self, chunk: int = 128) -> bytes:
        """The NDEF message, read as a terminal does: ISOSelectFile E104, NLEN, ISOReadBinary."""
        if self._transceive(bytes.fromhex("00A4000C02E104"))[-2:] != b"\x90\x00":
            raise Ntag424Error("the NDEF file cannot be selected")
        message = b""
        size = None
        while size is None or len(message) < size:
            offset = 2 + len(message) if size is not None else 0
            want = 2 if size is None else min(chunk, size - len(message))
            answer = self._transceive(bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, want]))
            if answer[-2:] != b"\x90\x00" or len(answer) != want + 2:
                raise Ntag424Error(f"ISOReadBinary at {offset} answered {answer[-2:].hex()}")
            if size is None:
                size = int.from_bytes(answer[:2], "big")
            else:
                message += answer[:-2]
        return message

    def authenticate(self, key_no: int, key: bytes) -> Session:
        """AuthenticateEV2First with one of the application keys."""
        _, enc_rnd_b = self._exchange(native_apdu(CMD_AUTH_EV2_FIRST, bytes([key_no, 0x00])), more=True)
        if len(enc_rnd_b) != 16:
            raise Ntag424Error("AuthenticateEV2First: the card's challenge is not 16 bytes")
        rnd_b = aes_cbc_decrypt(key, ZERO_IV, enc_rnd_b)
        rnd_a = self._random(16)
        part2 = aes_cbc_encrypt(key, ZERO_IV, rnd_a + rotate_left(rnd_b))
        _, enc_answer = self._exchange(native_apdu(CMD_MORE, part2))
        if len(enc_answer) != 32:
            raise Ntag424Error("AuthenticateEV2First: the card's answer is not 32 bytes")
        answer = aes_cbc_decrypt(key, ZERO_IV, enc_answer)
        if not hmac.compare_digest(answer[4:20], rotate_left(rnd_a)):
            raise Ntag424Error("AuthenticateEV2First: the card does not know the key (RndA mismatch)")
        sv1, sv2 = session_vectors(rnd_a, rnd_b)
        self.session = Session(key_no, answer[0:4], cmac(key, sv1), cmac(key, sv2))
        return self.session

    def _secure(self, ins: int, header: bytes, data: bytes, *, full: bool, answer_full: bool = False) -> bytes:
        session = self._session()
        status, body = self._exchange(session.wrap(ins, header, data, full=full))
        return session.unwrap(status, body, full=answer_full)

    def change_key(self, key_no: int, new_key: bytes, *, old_key: bytes | None = None, version: int = 1) -> None:
        """ChangeKey (authenticated with key 0). Changing the session's own key ends the session."""
        session = self._session()
        data = change_key_data(key_no, session.key_no, new_key, old_key, version)
        if key_no != session.key_no:
            self._secure(CMD_CHANGE_KEY, bytes([key_no]), data, full=True)
            return
        self._exchange(session.wrap(CMD_CHANGE_KEY, bytes([key_no]), data, full=True))
        self.session = None  # the card answers 91 00 without a MAC and forgets the session

    def change_file_settings(self, file_no: int, settings: bytes) -> None:
        self._secure(CMD_CHANGE_FILE_SETTINGS, bytes([file_no]), settings, full=True)

    def get_file_settings(self, file_no: int) -> bytes:
        return self._secure(CMD_GET_FILE_SETTINGS, bytes([file_no]), b"", full=False)

    def write_data(self, file_no: int, offset: int, data: bytes, *, full: bool = True) -> None:
        """WriteData in the file's communication mode (Full or MAC), in one frame."""
        header = bytes([file_no]) + offset.to_bytes(3, "little") + len(data).to_bytes(3, "little")
        self._secure(CMD_WRITE_DATA, header, data, full=full)
