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
6. read the card as a terminal does (the terminal's own parser, caisse_terminal.sun) and verify
   its SUN message with the diversified key.
wipe() undoes all of it for a card handed back.

Keys (card_keys): key 1, the SDM file-read key, is the backend's own diversified key
(caisse.cards.authentication.CardKeys.file_key: AN10922 from the master key, with the configured application
and system ids): what ingestion verifies. Keys 0, 3 and 4 are diversified from the same master
with system ids of their own, so no card keeps a factory key and no key opens two cards. Key 2,
the SDM meta-read key, is shared by all cards (it only hides UID and counter from onlookers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from caisse_common.sun import PICC_DATA_BYTES, SunError, diversify_key, verify_sun
from caisse_terminal.sun import sun_from_ndef

from .ntag424 import NDEF_FILE_NO, Ntag424, Ntag424Error
from .pn532_uart import ReaderError

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
# Factory settings of the NDEF file: CommMode plain, RW free, change key 0, read and write free.
FACTORY_FILE_SETTINGS = bytes([0x00, 0xE0, 0xEE])
# While wiping: CommMode.Full, write with key 0 only, SDM off; the file is zeroed in 128-byte
# WriteData frames (256 bytes would not fit one PN532 frame).
_WIPE_FILE_SETTINGS = bytes([0x03, 0x00, 0xE0])
NDEF_FILE_BYTES = 256
_WIPE_CHUNK = 128


class PersonalizationError(Exception):
    """Personalization stopped; the message (French) says what to do."""


@dataclass(frozen=True)
class Personalized:
    uid: bytes
    counter: int  # SDMReadCtr of the verification read


class CaisseKeys(Protocol):
    """The caisse's secret keys (caisse.cards.authentication.CardKeys), read only."""

    @property
    def meta_key(self) -> bytes: ...

    @property
    def master_key(self) -> bytes: ...

    def file_key(self, uid: bytes) -> bytes: ...


class Reader(Protocol):
    def find_card(self) -> tuple[bytes, bytes] | None: ...
    def transceive(self, apdu: bytes) -> bytes: ...


def card_keys(keys: CaisseKeys, uid: bytes) -> list[bytes]:
    """Keys 0..4 of the card with this UID."""
    own = [diversify_key(keys.master_key, uid, system_id=_SYSTEM_IDS[n]) if n in _SYSTEM_IDS else b"" for n in range(5)]
    own[FILE_READ_KEY_NO] = keys.file_key(uid)
    own[META_READ_KEY_NO] = keys.meta_key
    return own


def url_template(base: str, number: str | None) -> bytes:
    """The URL without "https://": the printed number if any, then the SUN placeholders."""
    if number is None:
        return f"{base}?".encode() + PICC_PLACEHOLDER + b"&" + MAC_PLACEHOLDER
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


def sun_of(message: bytes) -> tuple[bytes, bytes] | None:
    """(PICC data, SDMMAC) of an NDEF message, parsed by the terminal's own code."""
    auth = sun_from_ndef(message)
    return None if auth is None else (auth[:PICC_DATA_BYTES], auth[PICC_DATA_BYTES:])


def personalize(reader: Reader, keys: CaisseKeys, *, url_base: str, number: str | None = None,
                check_uid: Callable[[bytes], None] | None = None,
                random_bytes: Callable[[int], bytes] = os.urandom) -> Personalized:
    """Turn the NTAG 424 DNA on the reader into a Caisse secure card; verify it (see above).

    check_uid(uid) runs before anything is changed on the card and may raise to refuse it.
    Enabling SDM resets the card's read counter to 0 (datasheet): a card in use must not be
    personalized again, since its next counters would repeat ones the backend has seen.
    """
    uid = _find_ntag424(reader)
    if check_uid is not None:
        check_uid(uid)
    own = card_keys(keys, uid)
    content = ndef_file(url_template(url_base, number))
    tag = Ntag424(reader.transceive, random_bytes=random_bytes)
    try:
        key0 = _authenticate(tag, own[0])
        tag.change_file_settings(NDEF_FILE_NO, sdm_file_settings(content))
        tag.write_data(NDEF_FILE_NO, 0, content)
        for key_no in (1, 2, 3, 4):
            _change_key(tag, key_no, own[key_no], (FACTORY_KEY, own[key_no]), key0, KEY_VERSION)
        tag.change_key(0, own[0], version=KEY_VERSION)
        return _verify(tag, uid, own, keys.meta_key)
    except (Ntag424Error, ReaderError) as error:
        raise _interrupted("Personnalisation", error) from None


def wipe(reader: Reader, keys: CaisseKeys) -> bytes:
    """Put one of our cards back in its factory state (a returned card); return its UID.

    NDEF file zeroed, SDM off, factory file settings, keys 1..4 then 0 back to zero (version 0).
    Resumable like personalize(): the card's CRC check tells which keys are already reset.
    """
    uid = _find_ntag424(reader)
    own = card_keys(keys, uid)
    tag = Ntag424(reader.transceive)
    try:
        key0 = _authenticate(tag, own[0])
        tag.change_file_settings(NDEF_FILE_NO, _WIPE_FILE_SETTINGS)
        for offset in range(0, NDEF_FILE_BYTES, _WIPE_CHUNK):
            tag.write_data(NDEF_FILE_NO, offset, bytes(_WIPE_CHUNK))
        tag.change_file_settings(NDEF_FILE_NO, FACTORY_FILE_SETTINGS)
        for key_no in (1, 2, 3, 4):
            _change_key(tag, key_no, FACTORY_KEY, (own[key_no], FACTORY_KEY), key0, 0)
        tag.change_key(0, FACTORY_KEY, version=0)
        tag.select_ndef_application()
        tag.authenticate(0, FACTORY_KEY)  # the proof: the factory key opens it again
    except (Ntag424Error, ReaderError) as error:
        raise _interrupted("Remise à zéro", error) from None
    return uid


def _interrupted(work: str, error: Ntag424Error | ReaderError) -> PersonalizationError:
    """The reader's messages are French already; the card's are protocol detail (English)."""
    if isinstance(error, Ntag424Error):
        cause = f"la carte a refusé une commande (détail pour l'équipe technique : {error})"
    else:
        cause = str(error).rstrip(".")
    return PersonalizationError(f"{work} interrompue : {cause}. Laissez la carte sur le lecteur et relancez la "
                                "même commande : elle reprend là où elle s'est arrêtée.")


def _find_ntag424(reader: Reader) -> bytes:
    found = reader.find_card()
    if found is None:
        raise PersonalizationError("Aucune carte sur le lecteur : posez une carte NTAG 424 DNA et relancez.")
    uid, ats = found
    if len(uid) != 7 or not ats:
        raise PersonalizationError(f"La carte {uid.hex()} n'est pas une NTAG 424 DNA (UID de 7 octets, ISO 14443-4).")
    return uid


def _authenticate(tag: Ntag424, own_key0: bytes) -> bytes:
    """Key 0 of the card: the factory key, or ours when a previous run already changed it."""
    for key in (FACTORY_KEY, own_key0):
        tag.select_ndef_application()
        try:
            tag.authenticate(0, key)
            return key
        except Ntag424Error as error:
            if error.status != _STATUS_AUTHENTICATION:
                raise
    raise PersonalizationError("Cette carte a déjà des clés qui ne sont pas celles de la caisse : mettez-la de côté.")


def _change_key(tag: Ntag424, key_no: int, new_key: bytes, old_keys: tuple[bytes, bytes], key0: bytes,
                version: int) -> None:
    """ChangeKey from the first old value, or else the second (a previous run got this far):
    the card's CRC check refuses a wrong old value, and the session then has to start again."""
    try:
        tag.change_key(key_no, new_key, old_key=old_keys[0], version=version)
    except Ntag424Error as error:
        if error.status != _STATUS_INTEGRITY:
            raise
        tag.select_ndef_application()
        tag.authenticate(0, key0)
        tag.change_key(key_no, new_key, old_key=old_keys[1], version=version)


def _verify(tag: Ntag424, uid: bytes, own: list[bytes], meta_key: bytes) -> Personalized:
    """Read the card as a terminal does; its SUN message must verify with the card's key."""
    sun = sun_of(tag.read_ndef())
    if sun is None:
        raise PersonalizationError("La carte ne renvoie pas de message SUN après personnalisation : mettez-la de côté.")
    try:
        message = verify_sun(meta_key=meta_key, file_key=own[FILE_READ_KEY_NO], picc_data=sun[0], mac=sun[1])
    except SunError:  # the PICC data does not decrypt to a mirrored UID and counter
        message = None
    if message is None or not message.mac_valid or message.uid != uid:
        raise PersonalizationError("Le message SUN lu sur la carte ne se vérifie pas : mettez-la de côté.")
    return Personalized(uid=uid, counter=message.counter)
