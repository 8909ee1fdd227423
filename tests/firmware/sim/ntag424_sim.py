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
- Secure Dynamic Messaging on the NDEF file (file 2, E104): with SDM enabled, UID and counter
  mirrored and the PICC data encrypted under the SDMMetaRead key, each read session (first
  ReadBinary after the NDEF file is selected) increments SDMReadCtr and writes into the file the
  encrypted PICC data (C7 || UID || SDMReadCtr LE || 5 random bytes, AES-CBC, zero IV) and the
  SDMMAC (odd bytes of CMAC(CMAC(SDMFileRead key, 3CC3 0001 0080 || UID || SDMReadCtr), bytes
  between SDMMACInputOffset and SDMMACOffset)), both as upper-case hex. The reads of one session
  see the same message, so a reader may fetch the file in several chunks.

Not modelled: LRP mode, random ID, EV2NonFirst, the originality signature, ReadCtrLimit,
SDMENCFileData, and the CC and proprietary files beyond their existence.
"""

from __future__ import annotations

import binascii
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

NDEF_AID = bytes.fromhex("D2760000850101")
NDEF_FILE_ID = b"\xe1\x04"
NDEF_FILE_NO = 2
ZERO_IV = bytes(16)
SW_OK = b"\x90\x00"
PICC_TAG = 0xC7  # UID mirrored, SDMReadCtr mirrored, UID length 7
SV2_SDM_MAC = bytes.fromhex("3CC300010080")


def aes_cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def aes_cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def cmac(key: bytes, message: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def truncate(full_mac: bytes) -> bytes:
    """The 8-byte MAC of NTAG 424 DNA: bytes 1, 3, 5 .. 15 of the CMAC."""
    return full_mac[1::2]


def sun_message(*, meta_key: bytes, file_key: bytes, uid: bytes, counter: int,
                padding: bytes | None = None, mac_input: bytes = b"") -> tuple[bytes, bytes]:
    """(encrypted PICC data, SDMMAC) as the card mirrors them for one read."""
    padding = os.urandom(5) if padding is None else padding
    plain = bytes([PICC_TAG]) + uid + counter.to_bytes(3, "little") + padding
    session_key = cmac(file_key, SV2_SDM_MAC + uid + counter.to_bytes(3, "little"))
    return aes_cbc_encrypt(meta_key, ZERO_IV, plain), truncate(cmac(session_key, mac_input))


def sun_url(base: bytes, picc: bytes, mac: bytes) -> bytes:
    """A SUN URL (without "https://") with the AN12196 parameter names."""
    return base + b"?picc_data=" + binascii.hexlify(picc).upper() + b"&cmac=" + binascii.hexlify(mac).upper()
