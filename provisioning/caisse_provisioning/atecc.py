"""The ATECC608 configuration Caisse writes into a factory-fresh chip before locking it.

Sources (public): the ATECC508A complete datasheet, DS20005927A (configuration zone map, Table
2-5; SlotConfig bits, Table 2-6; WriteConfig for Write and GenKey, Tables 2-8 and 2-10; KeyConfig,
Table 2-12), whose layout the 608 keeps; Microchip's cryptoauthlib for the bytes the 608 added
(`atecc608_config_t` in lib/calib/calib_device.h) and the commands (calib_write.c, calib_lock.c,
calib_sha.c). The 608's own complete datasheet is under NDA: every 608-only feature is left off.

Two slots are used:

    slot 0  the terminal's P-256 signing key. Made inside the chip by GenKey, never readable.
            SlotConfig 0x2081: ReadKey bit 0 (external signatures only: no ECDH, no internal
            signatures), IsSecret, WriteConfig 0b0010 (GenKey may replace the key after the data
            lock: key rotation; PrivWrite and Write never). No LimitedUse: it would tie every
            signature to monotonic counter 0 and stop the key after 2 097 151 uses.
            KeyConfig 0x0013: private, PubInfo (GenKey recomputes the public key), P-256.
    slot 1  the member-code key (docs/protocol.md, "Member-code verifiers"): 32 bytes written
            by provisioning, used by the SHA command's HMAC mode, never readable.
            SlotConfig 0x0080: IsSecret (no clear reads, no 4-byte writes), NoMac off (HMAC
            allowed), WriteConfig Always. The key follows the terminal id, which changes when a
            terminal gets a new registration, so the slot must be writable after the data lock.
            The datasheet warns that such a slot is not a key to authenticate with: anyone who
            runs code on the terminal can overwrite it (never read it). Here that only breaks
            the member-code checks of that terminal; it gives nothing away.
            KeyConfig 0x001C: not an ECC key (KeyType 7).

Every other slot: SlotConfig 0x8080 (secret, never written), KeyConfig 0x001C: nothing lives
there. I2C address 0x60, ChipMode 0 (the driver's timings), counters at their initial value,
every 608-only option off (CountMatch, UseLock, VolatileKeyPermission, SecureBoot, KDF IV,
ChipOptions). Bytes 0-15 (serial number, revision) and 84-87 (UserExtra, UserExtraAdd and the
two lock bytes) are not written: the chip refuses Write there.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

KEY_SLOT = 0  # firmware/drivers/atecc608.py KEY_SLOT
CODE_KEY_SLOT = 1  # firmware/drivers/atecc608.py CODE_KEY_SLOT
CONFIG_SIZE = 128
WRITABLE_WORDS = tuple(w for w in range(4, 32) if w != 21)  # 4-byte words the Write command takes

_SLOT_CONFIG = {KEY_SLOT: 0x2081, CODE_KEY_SLOT: 0x0080}
_KEY_CONFIG = {KEY_SLOT: 0x0013, CODE_KEY_SLOT: 0x001C}
_UNUSED_SLOT_CONFIG = 0x8080
_UNUSED_KEY_CONFIG = 0x001C
_COUNTER_INITIAL = bytes.fromhex("ffffffff00000000")  # Microchip's encoding of a counter at 0


def config_image() -> bytes:
    """The 128-byte configuration zone Caisse wants; bytes 0-15 and 84-87 are the chip's own."""
    image = bytearray(CONFIG_SIZE)
    image[16] = 0x60 << 1  # I2C_Address
    for slot in range(16):
        struct.pack_into("<H", image, 20 + 2 * slot, _SLOT_CONFIG.get(slot, _UNUSED_SLOT_CONFIG))
        struct.pack_into("<H", image, 96 + 2 * slot, _KEY_CONFIG.get(slot, _UNUSED_KEY_CONFIG))
    image[52:60] = image[60:68] = _COUNTER_INITIAL
    image[88:90] = b"\xff\xff"  # SlotLocked: none
    return bytes(image)


def wanted_config(current: bytes) -> bytes:
    """What the whole zone must read once written: the image, with the chip's fixed bytes."""
    assert len(current) == CONFIG_SIZE
    image = bytearray(config_image())
    image[0:16] = current[0:16]
    image[84:88] = current[84:88]
    return bytes(image)


def is_caisse_layout(config: bytes) -> bool:
    """The two slots Caisse uses have its policies (other bytes do not matter to the terminal)."""
    for slot in (KEY_SLOT, CODE_KEY_SLOT):
        slot_config, = struct.unpack_from("<H", config, 20 + 2 * slot)
        key_config, = struct.unpack_from("<H", config, 96 + 2 * slot)
        if (slot_config, key_config) != (_SLOT_CONFIG[slot], _KEY_CONFIG[slot]):
            return False
    return True


CODE_KEY_PROBE = b"caisse-code-key-check"  # what provisioning asks the chip to HMAC


def code_key_check(key: bytes) -> bytes:
    """HMAC-SHA256(key, CODE_KEY_PROBE): the chip's answer when its slot holds `key`."""
    return hmac.new(key, CODE_KEY_PROBE, hashlib.sha256).digest()
