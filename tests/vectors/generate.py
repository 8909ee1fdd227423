"""Regenerate tests/vectors/protocol_v1.json from fixed keys (RFC 6979, so byte-for-byte stable).

    python tests/vectors/generate.py > tests/vectors/protocol_v1.json
"""

import hashlib
import json
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric import ec

from caisse_common import protocol
from caisse_common.protocol import Kind, Record

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def fixed_secret(label: str) -> bytes:
    scalar = int.from_bytes(hashlib.sha256(label.encode()).digest(), "big") % (P256_ORDER - 1) + 1
    return scalar.to_bytes(32, "big")


def key(secret: bytes) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())


def describe(record: Record) -> dict:
    return {
        "terminal_id": record.terminal_id,
        "seq": record.seq,
        "time": record.time,
        "kind": record.kind.name.lower(),
        "flags": record.flags,
        "amount_cents": record.amount_cents,
        "ref_seq": record.ref_seq,
        "card_uid": record.card_uid.hex(),
        "card_auth": record.card_auth.hex(),
        "prev_hash": record.prev_hash.hex(),
        "digest": record.digest().hex(),
        "signature": record.signature.hex(),
        "record": record.encode().hex(),
    }


def main() -> None:
    secret = fixed_secret("caisse protocol v1 vector terminal 7")
    other_secret = fixed_secret("caisse protocol v1 vector intruder")
    terminal, intruder = key(secret), key(other_secret)
    terminal_id = 7
    t0 = 1_767_254_400  # 2026-01-01T08:00:00Z, a market morning
    sun = bytes.fromhex("EF963FF7828658A599F3041510671E88") + bytes.fromhex("94EED9EE65337086")
    plan = [
        dict(kind=Kind.PAYMENT, amount_cents=1250, card_uid=bytes.fromhex("04a1b2c3d4e5f6")),
        dict(kind=Kind.PAYMENT, amount_cents=380, card_uid=bytes.fromhex("deadbeef")),
        dict(kind=Kind.PAYMENT, amount_cents=2000, card_uid=bytes.fromhex("04de5f1eacc040"), card_auth=sun),
        dict(kind=Kind.VOID, amount_cents=380, card_uid=bytes.fromhex("deadbeef"), ref_seq=2),
        dict(kind=Kind.PAYMENT, amount_cents=9999, card_uid=bytes.fromhex("04a1b2c3d4e5f6"), flags=protocol.FLAG_PIN_VERIFIED),
    ]
    chain: list[Record] = []
    prev = protocol.ZERO_HASH
    for seq, fields in enumerate(plan, start=1):
        record = protocol.signed(
            Record(terminal_id=terminal_id, seq=seq, time=t0 + 97 * seq, prev_hash=prev, **fields), terminal
        )
        chain.append(record)
        prev = record.digest()

    third = chain[2]
    flipped = bytearray(third.encode())
    flipped[19] ^= 0x01  # low byte of amount_cents
    tampered = [
        {"name": "amount changed after signing", "record": flipped.hex(), "reason": "bad_signature"},
        {"name": "signed by another key", "record": protocol.signed(third, intruder).encode().hex(), "reason": "bad_signature"},
        {
            "name": "same seq, different body, validly signed",
            "record": protocol.signed(replace(third, amount_cents=2001), terminal).encode().hex(),
            "reason": "seq_conflict",
        },
        {
            "name": "prev_hash does not match the previous record",
            "record": protocol.signed(replace(chain[3], prev_hash=hashlib.sha256(b"x").digest()), terminal).encode().hex(),
            "reason": "bad_chain",
            "after_seqs": [1, 2, 3],
        },
        {"name": "truncated", "record": third.encode()[:100].hex(), "reason": "malformed"},
        {"name": "unknown version", "record": ("02" + third.encode().hex()[2:]), "reason": "malformed"},
        {"name": "zero amount", "record": protocol.signed(replace(third, amount_cents=0), terminal).encode().hex(), "reason": "malformed"},
        {"name": "unknown flag bit 2", "record": protocol.signed(replace(third, flags=0x04), terminal).encode().hex(), "reason": "malformed"},
    ]
    # Flag bit 1, an addition to v1 (docs/protocol.md, "Versions"): the record after the chain,
    # stamped by a terminal whose clock no sync had set since it booted.
    untrusted_time = protocol.signed(
        Record(terminal_id=terminal_id, seq=len(chain) + 1, time=t0 + 97 * (len(chain) + 1), prev_hash=prev,
               kind=Kind.PAYMENT, amount_cents=450, card_uid=bytes.fromhex("deadbeef"), flags=protocol.FLAG_UNTRUSTED_TIME),
        terminal,
    )
    sync_time, sync_since = t0 + 3600, 42
    sync_digest = protocol.sync_digest(terminal_id, sync_time, sync_since)
    vectors = {
        "protocol": 1,
        "record_size": protocol.RECORD_SIZE,
        "terminal": {
            "terminal_id": terminal_id,
            "secret": secret.hex(),
            "public_key": protocol.public_key_bytes(terminal).hex(),
        },
        "chain": [describe(r) for r in chain],
        "untrusted_time": describe(untrusted_time),
        "tampered": tampered,
        "sync_auth": {
            "terminal_id": terminal_id,
            "time": sync_time,
            "since": sync_since,
            "digest": sync_digest.hex(),
            "signature": protocol.sign_digest(terminal, sync_digest).hex(),
        },
    }
    print(json.dumps(vectors, indent=2))


if __name__ == "__main__":
    main()
