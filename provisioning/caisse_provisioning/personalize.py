"""Personalize a blank NTAG 424 DNA as a Caisse secure card (docs/cards.md, "Personalization").

Steps, in an order that can be resumed after a card pulled away at any point:
1. find the card on the reader (its 7-byte UID), select the NDEF application;
2. authenticate with key 0: the factory key (all zero), or the card's own key 0 when a
   previous run got that far (re-personalizing one of our cards, e.g. to fix its number);
3. ChangeFileSettings on the NDEF file: CommMode.Full, read free, write and change with key 0
   only, SDM on: UID and read counter mirrored, encrypted under the meta-read key (key 2), the
   SDMMAC under the file-read key (key 1), at the offsets of the URL template;
4. WriteData: the URL template, https://<base>?n=<printed number>&picc_data=<32 zeros>&cmac=<16 zeros>;
5. ChangeKey 1..4 (from the factory key, or already done: then the old key is the new one), and
   key 0 last, since it ends the session;
6. read the card as a terminal does and verify its SUN message with the diversified key.

Keys (card_keys): key 1, the SDM file-read key, is diversify_key(master, UID) (AN10922, no
application or system id): what the backend verifies. Keys 0, 3 and 4 are diversified with their
own system ids, so no card keeps a factory key and no key opens two cards. Key 2, the SDM
meta-read key, is shared by all cards (it only hides UID and counter from onlookers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from caisse.sun import diversify_key, verify_sun

from .ntag424 import NDEF_FILE_NO, Ntag424, Ntag424Error, Transceive

FACTORY_KEY = bytes(16)
FILE_READ_KEY_NO = 1
META_READ_KEY_NO = 2
KEY_VERSION = 1
_SYSTEM_IDS = {0: b"caisse/key0", 3: b"caisse/key3", 4: b"caisse/key4"}
_STATUS_INTEGRITY = 0x1E
_STATUS_AUTHENTICATION = 0xAE
# NDEF file: FileOption SDM enabled (bit 6) + CommMode.Full; AccessRights RW=0 Change=0,
# Read=E (free) Write=0; SDMOptions: UID and SDMReadCtr mirrored, ASCII; SDMAccessRights (LE):
# meta-read 2, file-read 1, RFU F, counter retrieval 1.
_FILE_OPTION = 0x43
_ACCESS_RIGHTS = bytes([0x00, 0xE0])
_SDM_OPTIONS = 0xC1
_SDM_ACCESS = bytes([0xF1, 0x21])
PICC_PLACEHOLDER = b"picc_data=" + b"0" * 32
MAC_PLACEHOLDER = b"cmac=" + b"0" * 16
_NUMBER = re.compile(r"[0-9A-Za-z-]{1,20}")


class PersonalizationError(Exception):
    """Personalization stopped; the message (French) says what to do."""


@dataclass(frozen=True)
class Personalized:
    uid: bytes
    counter: int  # SDMReadCtr of the verification read


def card_keys(*, master_key: bytes, meta_key: bytes, uid: bytes) -> list[bytes]:
    """Keys 0..4 of the card with this UID."""
    keys = [diversify_key(master_key, uid, system_id=_SYSTEM_IDS[n]) if n in _SYSTEM_IDS else b"" for n in range(5)]
    keys[FILE_READ_KEY_NO] = diversify_key(master_key, uid)
    keys[META_READ_KEY_NO] = meta_key
    return keys


def url_template(base: str, number: str) -> bytes:
    """The URL without "https://": the printed number, then the SUN placeholders."""
    if not _NUMBER.fullmatch(number):
        raise PersonalizationError(f"Numéro imprimé invalide : « {number} » (chiffres, lettres et tirets, 20 au plus).")
    return f"{base}?n={number}&".encode() + PICC_PLACEHOLDER + b"&" + MAC_PLACEHOLDER


def ndef_file(url: bytes) -> bytes:
    """NDEF file content: NLEN, then one short URI record with prefix 04 (https://)."""
    payload = b"\x04" + url
    record = bytes([0xD1, 0x01, len(payload), 0x55]) + payload
    return len(record).to_bytes(2, "big") + record


def sdm_file_settings(content: bytes) -> bytes:
    """ChangeFileSettings data for the NDEF file holding `content` (offsets from its start)."""
    picc_at = content.index(PICC_PLACEHOLDER) + len(b"picc_data=")
    mac_at = content.index(MAC_PLACEHOLDER) + len(b"cmac=")
    offsets = picc_at.to_bytes(3, "little") + mac_at.to_bytes(3, "little") + mac_at.to_bytes(3, "little")
    return bytes([_FILE_OPTION]) + _ACCESS_RIGHTS + bytes([_SDM_OPTIONS]) + _SDM_ACCESS + offsets
