"""Protocol v1 transaction record (docs/protocol.md): a fixed 154-byte layout, big-endian.

body = bytes 0..89, digest = SHA-256(body), signature = 64-byte r||s over the digest.
The hash chain links bodies: prev_hash of record n is the digest of record n-1.

The tap path packs a body into a buffer allocated once (pack_body); decode() is for tests,
recovery and tools. Same rules as common/caisse_common/protocol.py, written for MicroPython.
"""

import hashlib
import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython: the simulator and the host tests
    def const(x):
        return x

VERSION = const(1)
KIND_PAYMENT = const(1)
KIND_VOID = const(2)
FLAG_PIN = const(0x01)
FLAG_UNTRUSTED_TIME = const(0x02)  # `time` is not from a sync since boot (caisse_terminal.clock)
KNOWN_FLAGS = const(0x03)
BODY_SIZE = const(90)
SIGNATURE_SIZE = const(64)
RECORD_SIZE = const(154)
UID_FIELD_SIZE = const(10)
CARD_AUTH_SIZE = const(24)
HASH_SIZE = const(32)
_OFF_SEQ = const(8)
_OFF_TIME = const(12)
_OFF_UID = const(24)
_OFF_PREV = const(58)

# version, kind, flags, uid_len, terminal_id, seq, time, amount_cents, ref_seq, uid, auth, prev
_BODY = ">BBBBIIIII10s24s32s"
ZERO_HASH = bytes(HASH_SIZE)
NO_AUTH = bytes(CARD_AUTH_SIZE)
NO_SIGNATURE = bytes(SIGNATURE_SIZE)


class MalformedRecord(ValueError):
    """The bytes are not a v1 record; the message says which rule they break."""


def pack_body(buf, kind: int, flags: int, uid: bytes, terminal_id: int, seq: int, time: int,
              amount_cents: int, ref_seq: int, card_auth, prev_hash) -> None:
    """Write a record body into buf[0:90] (buf: a bytearray of at least BODY_SIZE)."""
    assert len(uid) in (4, 7, 10) and amount_cents > 0 and seq > 0
    struct.pack_into(_BODY, buf, 0, VERSION, kind, flags, len(uid), terminal_id, seq, time,
                     amount_cents, ref_seq, uid, card_auth or NO_AUTH, prev_hash)
    # struct pads "10s" with zeros; nothing else to do.


def digest(body) -> bytes:
    """SHA-256 of the 90-byte body: what is signed and what the next record chains to."""
    return hashlib.sha256(body).digest()


def body_seq(body) -> int:
    return struct.unpack_from(">I", body, _OFF_SEQ)[0]


def body_time(body) -> int:
    return struct.unpack_from(">I", body, _OFF_TIME)[0]


def body_prev_hash(body) -> bytes:
    return bytes(body[_OFF_PREV:_OFF_PREV + HASH_SIZE])


class Record:
    """A decoded record. Fields as in docs/protocol.md; card_uid without its padding."""

    __slots__ = ("kind", "flags", "terminal_id", "seq", "time", "amount_cents", "ref_seq",
                 "card_uid", "card_auth", "prev_hash", "signature")

    def __init__(self, kind: int, flags: int, terminal_id: int, seq: int, time: int,
                 amount_cents: int, ref_seq: int, card_uid: bytes, card_auth: bytes = NO_AUTH,
                 prev_hash: bytes = ZERO_HASH, signature: bytes = NO_SIGNATURE) -> None:
        self.kind = kind
        self.flags = flags
        self.terminal_id = terminal_id
        self.seq = seq
        self.time = time
        self.amount_cents = amount_cents
        self.ref_seq = ref_seq
        self.card_uid = card_uid
        self.card_auth = card_auth
        self.prev_hash = prev_hash
        self.signature = signature

    def body(self) -> bytes:
        buf = bytearray(BODY_SIZE)
        pack_body(buf, self.kind, self.flags, self.card_uid, self.terminal_id, self.seq,
                  self.time, self.amount_cents, self.ref_seq, self.card_auth, self.prev_hash)
        return bytes(buf)

    def digest(self) -> bytes:
        return digest(self.body())

    def encode(self) -> bytes:
        return self.body() + self.signature


def decode(raw) -> Record:
    """Parse one record and check its structure; raise MalformedRecord otherwise."""
    if len(raw) != RECORD_SIZE:
        raise MalformedRecord("a v1 record is 154 bytes, got %d" % len(raw))
    (version, kind, flags, uid_len, terminal_id, seq, time, amount_cents, ref_seq,
     uid_field, card_auth, prev_hash) = struct.unpack_from(_BODY, raw, 0)
    if version != VERSION:
        raise MalformedRecord("unsupported version %d" % version)
    if kind != KIND_PAYMENT and kind != KIND_VOID:
        raise MalformedRecord("unknown kind %d" % kind)
    if flags & ~KNOWN_FLAGS:
        raise MalformedRecord("unknown flags 0x%02x" % flags)
    if uid_len not in (4, 7, 10):
        raise MalformedRecord("card UID length %d is not 4, 7 or 10" % uid_len)
    if any(uid_field[uid_len:]):
        raise MalformedRecord("card UID padding is not zero")
    if seq == 0:
        raise MalformedRecord("seq starts at 1")
    if amount_cents == 0:
        raise MalformedRecord("amount must be positive")
    if kind == KIND_PAYMENT and ref_seq != 0:
        raise MalformedRecord("a payment has no ref_seq")
    if kind == KIND_VOID and not 0 < ref_seq < seq:
        raise MalformedRecord("a void refers to an earlier seq of the same terminal")
    if seq == 1 and prev_hash != ZERO_HASH:
        raise MalformedRecord("seq 1 has an all-zero prev_hash")
    return Record(kind, flags, terminal_id, seq, time, amount_cents, ref_seq,
                  bytes(uid_field[:uid_len]), bytes(card_auth), bytes(prev_hash),
                  bytes(raw[BODY_SIZE:]))
