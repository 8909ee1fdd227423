"""A simulated NTAG 424 DNA (NT4H2421Gx) that is a card model, for CPython tests.

It speaks the APDUs a PN532 passes through (pn532_sim.PN532Sim hosts it like its other cards):
ISO 7816-4 SelectFile and ReadBinary, and native commands wrapped in ISO 7816 (CLA 0x90, INS =
command code, P1 = P2 = 0, Lc, data, Le = 0; answers end with SW1 0x91, SW2 the status).

Implemented from the NT4H2421Gx datasheet and NXP AN12196 (checked against its worked examples
in tests/firmware/test_ntag424_sim.py):
- AES-128 application keys 0..4, all zero and version 0 from the factory;
- AuthenticateEV2First (0x71, then 0xAF): E(K, RndB); E(K, RndA || RndB<<<8); the card answers
  E(K, TI || RndA<<<8 || PDcap2 || PCDcap2). Session keys are CMAC(K, SV1) for encryption
  and CMAC(K, SV2) for MACs, SV = A55A/5AA5 0001 0080 || RndA[0:2] || (RndA[2:8] ^ RndB[0:6])
  || RndB[6:16] || RndA[8:16];
- secure messaging: the command counter CmdCtr (16 bits, little-endian on the wire) and the
  4-byte transaction identifier TI; CommMode.MAC appends MAC = odd bytes of CMAC(SesAuthMACKey,
  Cmd || CmdCtr || TI || header || data); CommMode.Full also encrypts the data (AES-CBC under
  SesAuthENCKey, IV = E(A55A || TI || CmdCtr || 0*8), ISO 9797-1 method 2 padding). Answers
  carry MAC(RC || CmdCtr+1 || TI || data), data encrypted with IV = E(5AA5 || TI || CmdCtr+1 ..).
  Every command/response pair in the session advances CmdCtr; any error ends the session;
- ChangeKey (0xC4, Full, key 0 only): key 0 takes NewKey || KeyVer; another key takes
  (NewKey ^ OldKey) || KeyVer || CRC32(NewKey) (JAMCRC, little-endian). Changing key 0 ends
  the session and its answer has no MAC;
- GetFileSettings (0xF5, MAC), ChangeFileSettings (0x5F, Full, the file's Change key),
  WriteData (0x8D, in the file's CommMode, the file's Write or ReadWrite key);
- Secure Dynamic Messaging on the NDEF file (file 2, E104): with SDM enabled (which resets
  SDMReadCtr to 0), UID and counter mirrored and the PICC data encrypted under the SDMMetaRead
  key, each read session in not-authenticated state (the first ReadBinary after any other
  command, datasheet section 9.3.1) increments SDMReadCtr and writes into the file the
  encrypted PICC data (C7 || UID || SDMReadCtr LE || 5 random bytes, AES-CBC, zero IV) and the
  SDMMAC (odd bytes of CMAC(CMAC(SDMFileRead key, 3CC3 0001 0080 || UID || SDMReadCtr), bytes
  between SDMMACInputOffset and SDMMACOffset)), both as upper-case hex. The reads of one session
  see the same message, so a reader may fetch the file in several chunks.

Not modelled: LRP mode, random ID, EV2NonFirst, the originality signature, ReadCtrLimit,
SDMENCFileData, plain PICC mirroring (SDMMetaRead = E), ReadData (0xAD), ISOUpdateBinary, and
the CC and proprietary files beyond their existence. ChangeFileSettings refuses SDM layouts
other than the one Caisse uses (parameter error 91 9E).
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from caisse_common.ntag424 import (
    NDEF_AID,
    ZERO_IV,
    Ntag424Error,
    Session,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    cmac,
    crc32_nk,
    rotate_left,
    session_vectors,
    truncate_mac,
    unpad,
)
from caisse_common.personalize import ndef_file, sdm_file_settings

SW_OK = b"\x90\x00"
PICC_TAG = 0xC7  # UID mirrored, SDMReadCtr mirrored, UID length 7
SV2_SDM_MAC = bytes.fromhex("3CC300010080")
FREE = 0xE  # access condition: free for everyone
NEVER = 0xF  # access condition: denied
PLAIN, MACED, FULL = 0, 1, 3  # CommMode, bits 1..0 of FileOption
SDM_ENABLED = 0x40  # FileOption bit 6
# SDMOptions: bit 7 UID mirror, bit 6 SDMReadCtr mirror, bit 0 ASCII encoding; the others
# (SDMReadCtrLimit, SDMENCFileData) are not modelled.
SDM_OPTIONS_MODELLED = 0xC1


class CardStatus(Exception):
    """A native command fails with this SW2 (after SW1 = 0x91); the session ends."""

    def __init__(self, status: int) -> None:
        super().__init__(f"91{status:02X}")
        self.status = status


@dataclass
class FileSettings:
    file_id: bytes
    size: int
    comm_mode: int = PLAIN
    read: int = FREE
    write: int = FREE
    read_write: int = FREE
    change: int = 0
    sdm: bytes = b""  # SDMOptions .. SDMMACOffset as ChangeFileSettings sent them, when enabled
    data: bytearray = field(default_factory=bytearray)

    def encode(self) -> bytes:
        """GetFileSettings: FileType 00, FileOption, AccessRights, FileSize (LE), SDM part."""
        option = self.comm_mode | (SDM_ENABLED if self.sdm else 0)
        rights = bytes([self.read_write << 4 | self.change, self.read << 4 | self.write])
        return b"\x00" + bytes([option]) + rights + self.size.to_bytes(3, "little") + self.sdm

    def sdm_layout(self) -> tuple[int, int, int, int, int]:
        """(meta-read key, file-read key, PICCDataOffset, SDMMACInputOffset, SDMMACOffset)."""
        access = int.from_bytes(self.sdm[1:3], "little")
        offsets = [int.from_bytes(self.sdm[i:i + 3], "little") for i in (3, 6, 9)]
        return access >> 12, access >> 8 & 0xF, offsets[0], offsets[1], offsets[2]


class Ntag424Dna:
    """The card. A PN532Sim hosts it (iso_dep, uid, apdu()); tests read its state directly.

    random_bytes(n): the card's RNG (RndB, TI, PICC padding), replaceable to replay AN12196.
    leave_after / leave_status: as pn532_sim.Ntag424, to tear the card away mid-exchange.
    """

    iso_dep = True
    sak = 0x20
    atqa = b"\x03\x44"
    ats = b"\x06\x77\x77\x71\x02\x80"

    def __init__(self, uid: bytes, *, random_bytes: Callable[[int], bytes] = os.urandom,
                 leave_after: int | None = None, leave_status: int = 0x01) -> None:
        assert len(uid) == 7
        self.uid = bytes(uid)
        self.random_bytes = random_bytes
        self.leave_after = leave_after
        self.leave_status = leave_status
        self.keys = [bytes(16)] * 5
        self.key_versions = [0] * 5
        self.files = {
            1: FileSettings(b"\xe1\x03", 32, read_write=0, write=0, data=bytearray(32)),
            2: FileSettings(b"\xe1\x04", 256, data=bytearray(256)),
            3: FileSettings(b"\xe1\x05", 128, comm_mode=FULL, read=2, write=3, read_write=3, data=bytearray(128)),
        }
        self.sdm_read_counter = 0
        self.session: Session | None = None
        self.apdus: list[bytes] = []
        self._auth = None  # (key number, RndB) between the two parts of AuthenticateEV2First
        self._app_selected = False
        self._file: FileSettings | None = None
        self._mirror: bytes | None = None  # the NDEF file as this read session sees it

    # ---- ISO 7816-4 ------------------------------------------------------------------------

    def apdu(self, c: bytes) -> bytes | None:
        """Answer one command APDU; None means the card has left the field."""
        if self.leave_after is not None and len(self.apdus) >= self.leave_after:
            return None
        c = bytes(c)
        self.apdus.append(c)
        if len(c) < 4:
            return b"\x67\x00"
        if c[1] != 0xB0:
            self._mirror = None  # any other command: the next read is a new read session
        if c[0] == 0x90:
            return self._native(c)
        ins, p1 = c[1], c[2]
        if ins == 0xA4:
            return self._select(p1, c[5:5 + c[4]] if len(c) > 4 else b"")
        if ins == 0xB0:
            return self._read_binary((c[2] << 8) | c[3], c[4] if len(c) > 4 else 0)
        return b"\x6d\x00"

    def _select(self, p1: int, name: bytes) -> bytes:
        if p1 == 0x04:
            if name != NDEF_AID:
                return b"\x6a\x82"
            self._app_selected = True
            self._file = None
            self.session = None  # selecting the application ends any authentication
            return SW_OK
        if p1 == 0x00 and self._app_selected:
            for settings in self.files.values():
                if settings.file_id == name:
                    self._file = settings
                    return SW_OK
        return b"\x6a\x82"

    def _read_binary(self, offset: int, length: int) -> bytes:
        settings = self._file
        if settings is None:
            return b"\x69\x86"
        if FREE not in (settings.read, settings.read_write):
            return b"\x69\x82"  # ISOReadBinary is plain: only for freely readable files
        if settings.sdm and self.session is None:  # authenticated reads see the static data
            if self._mirror is None:
                self._mirror = self._mirrored(settings)
            content = self._mirror
        else:
            content = bytes(settings.data)
        if offset > len(content):
            return b"\x6b\x00"
        return content[offset:offset + (length or 256)] + SW_OK

    def _mirrored(self, settings: FileSettings) -> bytes:
        """The file with a fresh SUN message in it: one per read session."""
        self.sdm_read_counter += 1
        meta, file_read, picc_at, mac_input_at, mac_at = settings.sdm_layout()
        content = bytearray(settings.data)
        plain = bytes([PICC_TAG]) + self.uid + self.sdm_read_counter.to_bytes(3, "little") + self.random_bytes(5)
        picc = binascii.hexlify(aes_cbc_encrypt(self.keys[meta], ZERO_IV, plain)).upper()
        content[picc_at:picc_at + 32] = picc
        sv2 = SV2_SDM_MAC + self.uid + self.sdm_read_counter.to_bytes(3, "little")
        mac = truncate_mac(cmac(cmac(self.keys[file_read], sv2), bytes(content[mac_input_at:mac_at])))
        content[mac_at:mac_at + 16] = binascii.hexlify(mac).upper()
        return bytes(content)

    # ---- native commands ---------------------------------------------------------------------

    def _native(self, c: bytes) -> bytes:
        ins = c[1]
        data = c[5:5 + c[4]] if len(c) > 5 else b""
        handlers = {0x71: self._auth_first, 0xAF: self._auth_second, 0xC4: self._change_key,
                    0x5F: self._change_file_settings, 0xF5: self._get_file_settings, 0x8D: self._write_data}
        handler = handlers.get(ins)
        if ins != 0xAF:
            self._auth = None
        try:
            if handler is None or not self._app_selected:
                raise CardStatus(0x1C)  # illegal command code
            return handler(data)
        except CardStatus as error:
            self.session = None
            self._auth = None
            return bytes([0x91, error.status])

    def _auth_first(self, data: bytes) -> bytes:
        if len(data) < 2:
            raise CardStatus(0x7E)
        key_no = data[0]
        if key_no > 4:
            raise CardStatus(0x40)
        self.session = None
        rnd_b = self.random_bytes(16)
        self._auth = (key_no, rnd_b)
        return aes_cbc_encrypt(self.keys[key_no], ZERO_IV, rnd_b) + b"\x91\xaf"

    def _auth_second(self, data: bytes) -> bytes:
        if self._auth is None:
            raise CardStatus(0xCA)
        key_no, rnd_b = self._auth
        self._auth = None
        if len(data) != 32:
            raise CardStatus(0x7E)
        key = self.keys[key_no]
        plain = aes_cbc_decrypt(key, ZERO_IV, data)
        rnd_a = plain[:16]
        if plain[16:] != rotate_left(rnd_b):
            raise CardStatus(0xAE)
        ti = self.random_bytes(4)
        sv1, sv2 = session_vectors(rnd_a, rnd_b)
        self.session = Session(key_no, ti, cmac(key, sv1), cmac(key, sv2))
        answer = ti + rotate_left(rnd_a) + bytes(6) + bytes(6)  # PDcap2, PCDcap2 all zero
        return aes_cbc_encrypt(key, ZERO_IV, answer) + b"\x91\x00"

    def _unwrap(self, ins: int, data: bytes, header_len: int, comm_mode: int, key: int) -> tuple[bytes, bytes]:
        """(header, plain data) of a command sent in comm_mode by a session holding `key`."""
        if key == FREE:
            return data[:header_len], data[header_len:]
        session = self.session
        if key == NEVER or session is None or session.key_no != key:
            raise CardStatus(0x9D if session is not None else 0xAE)
        if comm_mode == PLAIN:
            return data[:header_len], data[header_len:]
        if len(data) < header_len + 8:
            raise CardStatus(0x7E)
        header, body, mac = data[:header_len], data[header_len:-8], data[-8:]
        if mac != session.command_mac(ins, header, body):
            raise CardStatus(0x1E)
        if comm_mode == FULL and body:
            if len(body) % 16:
                raise CardStatus(0x7E)
            try:
                body = unpad(aes_cbc_decrypt(session.enc_key, session.iv(b"\xa5\x5a", session.counter), body))
            except Ntag424Error:
                raise CardStatus(0x1E) from None
        return header, body

    def _answer(self, data: bytes = b"", *, maced: bool = True) -> bytes:
        """A successful answer. In a session it advances CmdCtr and, unless plain, has a MAC."""
        session = self.session
        if session is None:
            return data + b"\x91\x00"
        counter = session.counter + 1
        session.counter = counter
        if not maced:
            return data + b"\x91\x00"
        message = b"\x00" + counter.to_bytes(2, "little") + session.ti + data
        return data + truncate_mac(cmac(session.mac_key, message)) + b"\x91\x00"

    def _change_key(self, data: bytes) -> bytes:
        header, plain = self._unwrap(0xC4, data, 1, FULL, 0)  # ChangeKey needs key 0
        key_no = header[0]
        if key_no > 4:
            raise CardStatus(0x40)
        assert self.session is not None
        if key_no == self.session.key_no:
            if len(plain) != 17:
                raise CardStatus(0x7E)
            self.keys[key_no], self.key_versions[key_no] = plain[:16], plain[16]
            self.session = None  # the session key is gone: no MAC on the answer
            return b"\x91\x00"
        if len(plain) != 21:
            raise CardStatus(0x7E)
        new_key = bytes(a ^ b for a, b in zip(plain[:16], self.keys[key_no]))
        if plain[17:21] != crc32_nk(new_key):
            raise CardStatus(0x1E)
        self.keys[key_no], self.key_versions[key_no] = new_key, plain[16]
        return self._answer()

    def _file_no(self, header: bytes) -> FileSettings:
        settings = self.files.get(header[0]) if header else None
        if settings is None:
            raise CardStatus(0xF0)
        return settings

    def _get_file_settings(self, data: bytes) -> bytes:
        settings = self._file_no(data[:1])
        if self.session is not None:
            self._unwrap(0xF5, data, 1, MACED, self.session.key_no)
        return self._answer(settings.encode())

    def _change_file_settings(self, data: bytes) -> bytes:
        settings = self._file_no(data[:1])
        _, plain = self._unwrap(0x5F, data, 1, FULL, settings.change)
        if len(plain) < 3:
            raise CardStatus(0x7E)
        option, rights, sdm = plain[0], plain[1:3], plain[3:]
        if option & SDM_ENABLED:
            self._check_sdm(settings, sdm)
        elif sdm:
            raise CardStatus(0x7E)
        settings.comm_mode = option & 0x03
        settings.read_write, settings.change = rights[0] >> 4, rights[0] & 0xF
        settings.read, settings.write = rights[1] >> 4, rights[1] & 0xF
        settings.sdm = bytes(sdm) if option & SDM_ENABLED else b""
        if settings.sdm:
            self.sdm_read_counter = 0  # enabling SDM resets SDMReadCtr
        return self._answer()

    def _check_sdm(self, settings: FileSettings, sdm: bytes) -> None:
        """Only the layout Caisse uses is modelled: encrypted PICC data and an SDMMAC."""
        if settings.file_id != b"\xe1\x04" or len(sdm) != 12 or sdm[0] != SDM_OPTIONS_MODELLED:
            raise CardStatus(0x9E)
        meta, file_read, picc_at, mac_input_at, mac_at = FileSettings(b"", 0, sdm=bytes(sdm)).sdm_layout()
        if meta > 4 or file_read > 4:
            raise CardStatus(0x9E)
        if not (picc_at + 32 <= mac_input_at <= mac_at and mac_at + 16 <= settings.size):
            raise CardStatus(0x9E)

    def _write_data(self, data: bytes) -> bytes:
        settings = self._file_no(data[:1])
        session = self.session
        if session is not None and session.key_no in (settings.write, settings.read_write):
            key, mode = session.key_no, settings.comm_mode
        elif FREE in (settings.write, settings.read_write):
            key, mode = FREE, PLAIN
        else:
            raise CardStatus(0x9D if session is not None else 0xAE)
        header, plain = self._unwrap(0x8D, data, 7, mode, key)
        offset = int.from_bytes(header[1:4], "little")
        length = int.from_bytes(header[4:7], "little")
        if length != len(plain):
            raise CardStatus(0x7E)
        if offset + length > settings.size:
            raise CardStatus(0xBE)
        settings.data[offset:offset + length] = plain
        return self._answer(maced=mode != PLAIN)


def sun_card(uid: bytes, *, meta_key: bytes, file_key: bytes, url: bytes) -> Ntag424Dna:
    """A card in the state personalization leaves it in, set directly (meta-read key 2, file-read
    key 1, `url` with the picc_data= and cmac= placeholders): for tests about reading only."""
    card = Ntag424Dna(uid)
    card.keys[1], card.keys[2] = file_key, meta_key
    content = ndef_file(url)
    settings = sdm_file_settings(content)
    ndef = card.files[2]
    ndef.data[:len(content)] = content
    ndef.comm_mode = settings[0] & 0x03
    ndef.read_write, ndef.change = settings[1] >> 4, settings[1] & 0xF
    ndef.read, ndef.write = settings[2] >> 4, settings[2] & 0xF
    ndef.sdm = settings[3:]
    return card
