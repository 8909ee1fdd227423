"""Member cards as the simulation taps them: basic cards (a UID) and secure NTAG 424 DNA cards.

A secure card answers every read with a fresh SUN message (NXP AN12196): PICC data (tag, UID,
read counter) encrypted under the meta-read key, then the 8-byte SDMMAC under the card's
file-read key, diversified from a master key (AN10922). `encode_sun` is the card's side of
`caisse_common.sun.verify_sun`; the SUN tests use it too.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from caisse_common.sun import diversify_key, sdm_mac

PICC_TAG = 0xC7  # UID mirrored, counter mirrored, 7-byte UID (AN12196 PICCDataTag)


def encode_sun(*, meta_key: bytes, file_key: bytes, uid: bytes, counter: int, tag: int = PICC_TAG) -> tuple[bytes, bytes]:
    """What a card sends for one read: PICC data encrypted under meta_key, and its SDMMAC."""
    plain = bytes([tag]) + uid + counter.to_bytes(3, "little") + bytes(5)
    encryptor = Cipher(algorithms.AES(meta_key), modes.CBC(bytes(16))).encryptor()
    picc = encryptor.update(plain) + encryptor.finalize()
    return picc, sdm_mac(file_key, uid, counter)


@dataclass(frozen=True, slots=True)
class SunKeys:
    """The caisse's SUN keys: one meta-read key for all cards, a master key to diversify from."""

    meta_key: bytes
    master_key: bytes


@dataclass(slots=True)
class MemberCard:
    """One card of a household. `secure` cards carry a read counter that every tap advances."""

    uid: bytes
    household: int  # index in the world's households
    secure: bool
    counter: int = 0

    def read(self, keys: SunKeys) -> bytes | None:
        """The 24-byte card_auth of one read (None for a basic card); advances the counter."""
        if not self.secure:
            return None
        self.counter += 1
        picc, mac = encode_sun(meta_key=keys.meta_key, file_key=diversify_key(keys.master_key, self.uid),
                               uid=self.uid, counter=self.counter)
        return picc + mac
