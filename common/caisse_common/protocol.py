"""Terminal protocol v1: the signed transaction record (docs/protocol.md).

This module is the backend's reading of the wire format. It only parses, hashes and
verifies: it knows nothing of the database. The firmware has its own codec
(firmware/caisse_terminal/record.py); both are checked against tests/vectors/protocol_v1.json.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, replace
from enum import IntEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

VERSION = 1
BODY_SIZE = 90
SIGNATURE_SIZE = 64
RECORD_SIZE = BODY_SIZE + SIGNATURE_SIZE  # 154
UID_FIELD_SIZE = 10
CARD_AUTH_SIZE = 24  # NTAG 424 DNA SUN: 16-byte encrypted PICC data + 8-byte MAC
HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)
VALID_UID_SIZES = (4, 7, 10)
FLAG_PIN_VERIFIED = 0x01
# The terminal's clock was not set by a sync since it booted: `time` is its last persisted time
# plus the ticks since boot, and the backend judges the record on when it received it. An
# addition to v1 that terminals made before it never set (docs/protocol.md, "Versions").
FLAG_UNTRUSTED_TIME = 0x02
KNOWN_FLAGS = FLAG_PIN_VERIFIED | FLAG_UNTRUSTED_TIME
MAX_SEQ = 0xFFFFFFFF
MAX_AMOUNT_CENTS = 0xFFFFFFFF

# version, kind, flags, uid_len, terminal_id, seq, time, amount_cents, ref_seq,
# uid (10), card_auth (24), prev_hash (32)
_BODY = struct.Struct(">BBBBIIIII10s24s32s")
assert _BODY.size == BODY_SIZE

SYNC_DOMAIN = b"caisse-sync-v1"
_SYNC = struct.Struct(">III")
CODE_FAILURES_DOMAIN = b"caisse-code-failures-v1"
_CODE_FAILURES = struct.Struct(">II")
HEALTH_DOMAIN = b"caisse-health-v1"

_ECDSA_PREHASHED = ec.ECDSA(utils.Prehashed(hashes.SHA256()))


class Kind(IntEnum):
    PAYMENT = 1
    VOID = 2


class MalformedRecord(ValueError):
    """The bytes are not a protocol v1 record; the message says which rule they break."""


@dataclass(frozen=True, slots=True)
class Record:
    terminal_id: int
    seq: int
    time: int
    kind: Kind
    amount_cents: int
    card_uid: bytes
    prev_hash: bytes = ZERO_HASH
    ref_seq: int = 0
    flags: int = 0
    card_auth: bytes = bytes(CARD_AUTH_SIZE)
    signature: bytes = bytes(SIGNATURE_SIZE)

    def body(self) -> bytes:
        return _BODY.pack(
            VERSION,
            self.kind,
            self.flags,
            len(self.card_uid),
            self.terminal_id,
            self.seq,
            self.time,
            self.amount_cents,
            self.ref_seq,
            self.card_uid.ljust(UID_FIELD_SIZE, b"\0"),
            self.card_auth,
            self.prev_hash,
        )

    def digest(self) -> bytes:
        """SHA-256 of the body: what is signed, and what the next record chains to."""
        return hashlib.sha256(self.body()).digest()

    def encode(self) -> bytes:
        return self.body() + self.signature


def decode(raw: bytes) -> Record:
    """Parse and validate the structure of one record; raise MalformedRecord otherwise."""
    if len(raw) != RECORD_SIZE:
        raise MalformedRecord(f"a v1 record is {RECORD_SIZE} bytes, got {len(raw)}")
    (version, kind, flags, uid_len, terminal_id, seq, time, amount_cents, ref_seq,
     uid_field, card_auth, prev_hash) = _BODY.unpack_from(raw)
    if version != VERSION:
        raise MalformedRecord(f"unsupported version {version}")
    if kind not in (Kind.PAYMENT, Kind.VOID):
        raise MalformedRecord(f"unknown kind {kind}")
    if flags & ~KNOWN_FLAGS:
        raise MalformedRecord(f"unknown flags 0x{flags:02x}")
    if uid_len not in VALID_UID_SIZES:
        raise MalformedRecord(f"card UID length {uid_len} is not 4, 7 or 10")
    if any(uid_field[uid_len:]):
        raise MalformedRecord("card UID padding is not zero")
    if seq == 0:
        raise MalformedRecord("seq starts at 1")
    if amount_cents == 0:
        raise MalformedRecord("amount must be positive")
    if kind == Kind.PAYMENT and ref_seq != 0:
        raise MalformedRecord("a payment has no ref_seq")
    if kind == Kind.VOID and not 0 < ref_seq < seq:
        raise MalformedRecord("a void refers to an earlier seq of the same terminal")
    if seq == 1 and prev_hash != ZERO_HASH:
        raise MalformedRecord("seq 1 has an all-zero prev_hash")
    return Record(
        terminal_id=terminal_id,
        seq=seq,
        time=time,
        kind=Kind(kind),
        amount_cents=amount_cents,
        card_uid=bytes(uid_field[:uid_len]),
        prev_hash=prev_hash,
        ref_seq=ref_seq,
        flags=flags,
        card_auth=card_auth,
        signature=bytes(raw[BODY_SIZE:]),
    )


def load_public_key(sec1_point: bytes) -> ec.EllipticCurvePublicKey:
    """A 65-byte uncompressed P-256 point, as terminals report it."""
    if len(sec1_point) != 65 or sec1_point[0] != 0x04:
        raise ValueError("a terminal public key is a 65-byte uncompressed P-256 point")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sec1_point)


def verify_digest(public_key: ec.EllipticCurvePublicKey, digest: bytes, signature: bytes) -> bool:
    """Check a raw r||s P-256 signature over a SHA-256 digest."""
    if len(signature) != SIGNATURE_SIZE:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if r == 0 or s == 0:
        return False
    try:
        public_key.verify(utils.encode_dss_signature(r, s), digest, _ECDSA_PREHASHED)
    except InvalidSignature:
        return False
    return True


def verify(public_key: ec.EllipticCurvePublicKey, record: Record) -> bool:
    return verify_digest(public_key, record.digest(), record.signature)


def sync_digest(terminal_id: int, time: int, since: int) -> bytes:
    """What a terminal signs to authenticate a sync request (docs/protocol.md#sync)."""
    return hashlib.sha256(SYNC_DOMAIN + _SYNC.pack(terminal_id, time, since)).digest()


def code_failures_digest(terminal_id: int, time: int, body: bytes) -> bytes:
    """What a terminal signs to report wrong member codes (docs/protocol.md#member-code-failures)."""
    return hashlib.sha256(CODE_FAILURES_DOMAIN + _CODE_FAILURES.pack(terminal_id, time)
                          + hashlib.sha256(body).digest()).digest()


def health_digest(terminal_id: int, time: int, body: bytes) -> bytes:
    """What a terminal signs for the health report on its sync (docs/protocol.md#health-report)."""
    return hashlib.sha256(HEALTH_DOMAIN + _CODE_FAILURES.pack(terminal_id, time) + hashlib.sha256(body).digest()).digest()


def sign_digest(private_key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """Deterministic (RFC 6979) r||s signature, as the terminals produce.

    Used by the demo, the tests and the vector generator; the backend never signs records.
    """
    der = private_key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True))
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def signed(record: Record, private_key: ec.EllipticCurvePrivateKey) -> Record:
    return replace(record, signature=sign_digest(private_key, record.digest()))


def public_key_bytes(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
