"""NTAG 424 DNA Secure Unique NFC (SUN) messages, verified per NXP AN12196.

A secure card answers each read with 16 bytes of PICC data, encrypted under the meta-read key,
and an 8-byte MAC under a session key derived from the card's file-read key. The file-read key
is diversified per card from a master key (NXP AN10922), so one leaked card key exposes one card.

    SunError                 the message cannot be read at all; codes, in order of precedence:
        bad_key               a key is not 16 bytes
        bad_length            PICC data is not 16 bytes or the MAC is not 8 bytes
        bad_picc_tag          decrypted PICCDataTag does not announce a mirrored 7-byte UID and
                              counter: a forged message or the wrong meta-read key
        bad_diversification   diversification input is empty or longer than AN10922 allows

A MAC that does not match is not an error: `SunMessage.mac_valid` is False, so the caller can
still see which card and counter the message claims, to flag it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC


KEY_BYTES = 16
PICC_DATA_BYTES = 16
MAC_BYTES = 8
UID_BYTES = 7
COUNTER_BYTES = 3

# AN12196, PICCDataTag: bit 7 UID mirrored, bit 6 SDMReadCtr mirrored, bits 3..0 UID length.
_TAG_UID_MIRRORED = 0x80
_TAG_COUNTER_MIRRORED = 0x40
_TAG_UID_LENGTH_MASK = 0x0F
# AN12196, SV2 prefix for the SDM session MAC key: 3CC3 0001 0080, then UID and counter (LE).
_SV2_PREFIX = bytes.fromhex("3CC300010080")
# AN10922: diversification constant for an AES-128 key, and the longest input M.
_DIV_CONSTANT_AES128 = 0x01
_DIV_INPUT_MAX_BYTES = 31
_ZERO_IV = bytes(16)

SunErrorCode = Literal["bad_key", "bad_length", "bad_picc_tag", "bad_diversification"]


class SunError(Exception):
    """Not a ValueError, so callers parsing hex first can tell the two apart."""

    def __init__(self, code: SunErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SunMessage:
    uid: bytes  # 7 bytes
    counter: int  # SDMReadCtr, 0 .. 2**24 - 1
    mac_valid: bool


def _check_key(key: bytes, name: str) -> None:
    if len(key) != KEY_BYTES:
        raise SunError("bad_key", f"{name} must be {KEY_BYTES} bytes, got {len(key)}")


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def cmac(key: bytes, message: bytes) -> bytes:
    """AES-CMAC (RFC 4493), the 16-byte tag."""
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def decrypt_picc_data(meta_key: bytes, picc_data: bytes) -> tuple[bytes, int]:
    """UID and read counter from encrypted PICC data (AES-128-CBC, zero IV, one block)."""
    _check_key(meta_key, "meta-read key")
    if len(picc_data) != PICC_DATA_BYTES:
        raise SunError("bad_length", f"PICC data must be {PICC_DATA_BYTES} bytes, got {len(picc_data)}")
    decryptor = Cipher(algorithms.AES(meta_key), modes.CBC(_ZERO_IV)).decryptor()
    plain = decryptor.update(picc_data) + decryptor.finalize()
    tag = plain[0]
    # We only issue cards that mirror both, with a 7-byte UID: anything else is not ours.
    if not (tag & _TAG_UID_MIRRORED and tag & _TAG_COUNTER_MIRRORED and tag & _TAG_UID_LENGTH_MASK == UID_BYTES):
        raise SunError("bad_picc_tag", f"PICCDataTag {tag:#04x} is not a mirrored 7-byte UID and counter")
    uid = plain[1 : 1 + UID_BYTES]
    counter = int.from_bytes(plain[1 + UID_BYTES : 1 + UID_BYTES + COUNTER_BYTES], "little")
    return uid, counter


def session_mac_key(file_key: bytes, uid: bytes, counter: int) -> bytes:
    """KSesSDMFileReadMAC = CMAC(file-read key, SV2), AN12196"""
    _check_key(file_key, "file-read key")
    assert len(uid) == UID_BYTES and 0 <= counter < 1 << (8 * COUNTER_BYTES)
    sv2 = _SV2_PREFIX + uid + counter.to_bytes(COUNTER_BYTES, "little")
    return cmac(file_key, sv2)


def sdm_mac(file_key: bytes, uid: bytes, counter: int, mac_input: bytes = b"") -> bytes:
    """The 8-byte SDMMAC: odd bytes (1, 3, ..., 15) of CMAC(session key, MAC input)."""
    full = cmac(session_mac_key(file_key, uid, counter), mac_input)
    return full[1::2]


def verify_sun(*, meta_key: bytes, file_key: bytes, picc_data: bytes, mac: bytes) -> SunMessage:
    """Decrypt and check one SUN message where nothing is mirrored between PICC data and MAC."""
    if len(mac) != MAC_BYTES:
        raise SunError("bad_length", f"MAC must be {MAC_BYTES} bytes, got {len(mac)}")
    _check_key(file_key, "file-read key")
    uid, counter = decrypt_picc_data(meta_key, picc_data)
    expected = sdm_mac(file_key, uid, counter)
    return SunMessage(uid=uid, counter=counter, mac_valid=hmac.compare_digest(expected, mac))


def diversify_key(master_key: bytes, uid: bytes, *, application_id: bytes = b"", system_id: bytes = b"") -> bytes:
    """A card's AES-128 key from the master key, NXP AN10922

    D = 0x01 || UID || application id || system id. D is padded to 32 bytes (0x80 00 ..) and the
    last block XORed with CMAC subkey K2, or left as is and XORed with K1 when already 32 bytes;
    the key is the last block of AES-CBC over it. This always spans two blocks, unlike plain CMAC.
    """
    _check_key(master_key, "master key")
    m = uid + application_id + system_id
    if not 0 < len(m) <= _DIV_INPUT_MAX_BYTES:
        raise SunError("bad_diversification", f"diversification input must be 1..31 bytes, got {len(m)}")
    k1, k2 = _cmac_subkeys(master_key)
    d = bytes([_DIV_CONSTANT_AES128]) + m
    if len(d) < 2 * KEY_BYTES:
        d = (d + b"\x80").ljust(2 * KEY_BYTES, b"\x00")
        subkey = k2
    else:
        subkey = k1
    last = bytes(a ^ b for a, b in zip(d[KEY_BYTES:], subkey, strict=True))
    encryptor = Cipher(algorithms.AES(master_key), modes.CBC(_ZERO_IV)).encryptor()
    out = encryptor.update(d[:KEY_BYTES] + last) + encryptor.finalize()
    return out[KEY_BYTES:]


def _cmac_subkeys(key: bytes) -> tuple[bytes, bytes]:
    """K1, K2 of RFC 4493 §2.3: doublings of AES(key, 0) in GF(2^128)."""

    def double(block: bytes) -> bytes:
        value = int.from_bytes(block, "big") << 1
        if value >> 128:
            value = (value & ((1 << 128) - 1)) ^ 0x87
        return value.to_bytes(16, "big")

    k1 = double(_aes_ecb(key, bytes(16)))
    return k1, double(k1)
