"""The SUN message of an NTAG 424 DNA, as the terminal finds it in the card's NDEF URL.

The URL carries the 16-byte encrypted PICC data and the 8-byte CMAC as hex parameters,
`picc_data=<32 hex>` and `cmac=<16 hex>` (NXP AN12196 naming) or the short `e=` and `c=`.
The reader driver (drivers/nfc_reader.py) parses every tap with it, and personalization
(caisse_common.personalize) checks a new card with it: a card passes only if a terminal
would read its SUN message. The terminal holds no key: the backend verifies (caisse_common.sun).
"""

import binascii

_PARAMS = ((b"picc_data=", b"cmac="), (b"e=", b"c="))


def sun_from_ndef(message):
    """The 24-byte card_auth (encrypted PICC data + CMAC) found in an NDEF message, or None."""
    for picc_key, mac_key in _PARAMS:
        i = message.find(picc_key)
        j = message.find(mac_key)
        if i < 0 or j < 0:
            continue
        i += len(picc_key)
        j += len(mac_key)
        try:
            picc = binascii.unhexlify(message[i : i + 32])
            mac = binascii.unhexlify(message[j : j + 16])
        except ValueError:
            return None
        if len(picc) == 16 and len(mac) == 8:
            return picc + mac
    return None
