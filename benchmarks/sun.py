"""What a secure card's payment costs ingestion on top of a basic card's (docs/cards.md, "Cost").

    python benchmarks/sun.py [-n 5000] [--cards 500]

Times caisse.cards.authentication.check_sun over N genuine SUN messages of C cards, twice: the first pass
diversifies each card's file-read key once (then cached per UID), the second finds them all
cached (the usual case: a process sees the same members every day). Prints microseconds per
record, and one key diversification, next to one P-256 verification, the cost every record pays
anyway. The counter claims, one INSERT per batch, are not measured here (benchmarks/ingest.py
uploads basic cards' payments only).

Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import time

from cryptography.hazmat.primitives.asymmetric import ec

from caisse.cards import authentication as card_auth
from caisse.config import Settings
from caisse.simulation.cards import encode_sun
from caisse_common import protocol, sun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5_000, help="SUN messages to check (default 5000)")
    parser.add_argument("--cards", type=int, default=500, help="distinct cards (default 500)")
    args = parser.parse_args()

    settings = Settings(card_meta_key_hex=os.urandom(16).hex(), card_master_key_hex=os.urandom(16).hex())
    keys = card_auth.card_keys(settings)
    uids = [b"\x04" + os.urandom(6) for _ in range(args.cards)]
    messages = []
    for i in range(args.n):
        uid = uids[i % len(uids)]
        picc, mac = encode_sun(meta_key=keys.meta_key, file_key=keys.file_key(uid), uid=uid, counter=i)
        messages.append((uid, picc + mac))

    card_auth._diversified.cache_clear()  # noqa: SLF001 - the first pass pays each card's diversification
    for label in ("first pass, each card's key diversified once", "second pass, keys cached"):
        started = time.perf_counter()
        for uid, auth in messages:
            counter, problem = card_auth.check_sun(keys, card_uid=uid, card_auth=auth)
            assert problem is None and counter is not None
        elapsed = time.perf_counter() - started
        print(f"check_sun, {label}: {elapsed / args.n * 1e6:.1f} µs per record ({args.n} records, {args.cards} cards)")
    started = time.perf_counter()
    for uid in uids:
        sun.diversify_key(keys.master_key, uid)
    print(f"one key diversification (AN10922), once per card per process: {(time.perf_counter() - started) / len(uids) * 1e6:.1f} µs")

    key = ec.generate_private_key(ec.SECP256R1())
    digest = os.urandom(32)
    signature = protocol.sign_digest(key, digest)
    public = key.public_key()
    rounds = 2_000
    started = time.perf_counter()
    for _ in range(rounds):
        protocol.verify_digest(public, digest, signature)
    print(f"one P-256 verification, for scale: {(time.perf_counter() - started) / rounds * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
