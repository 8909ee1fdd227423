"""Hypothesis strategies for protocol v1 bytes: valid records, near-valid ones, and sync card entries.

Built from the backend's codec (caisse_common.protocol, caisse.terminals.sync), the side the vectors pin down; the
firmware's decoders are then run on the same bytes.
"""

from __future__ import annotations

from hypothesis import strategies as st

from caisse.terminals import sync
from caisse_common import protocol

U32 = st.integers(0, protocol.MAX_SEQ)
UIDS = st.sampled_from(protocol.VALID_UID_SIZES).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@st.composite
def records(draw: st.DrawFn) -> protocol.Record:
    """Any record the protocol allows: payments and voids, every UID size, any field value."""
    kind = draw(st.sampled_from(protocol.Kind))
    seq = draw(st.integers(2 if kind == protocol.Kind.VOID else 1, protocol.MAX_SEQ))
    return protocol.Record(
        terminal_id=draw(U32), seq=seq, time=draw(U32), kind=kind,
        amount_cents=draw(st.integers(1, protocol.MAX_AMOUNT_CENTS)), card_uid=draw(UIDS),
        prev_hash=protocol.ZERO_HASH if seq == 1 else draw(st.binary(min_size=32, max_size=32)),
        ref_seq=draw(st.integers(1, seq - 1)) if kind == protocol.Kind.VOID else 0,
        flags=draw(st.sampled_from((0, protocol.FLAG_PIN_VERIFIED, protocol.FLAG_UNTRUSTED_TIME,
                                     protocol.FLAG_PIN_VERIFIED | protocol.FLAG_UNTRUSTED_TIME))),
        card_auth=draw(st.binary(min_size=protocol.CARD_AUTH_SIZE, max_size=protocol.CARD_AUTH_SIZE)),
        signature=draw(st.binary(min_size=protocol.SIGNATURE_SIZE, max_size=protocol.SIGNATURE_SIZE)),
    )


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A valid encoding with a few bytes overwritten: reaches the checks after the length check."""
    raw = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    return bytes(raw)


def record_bytes() -> st.SearchStrategy[bytes]:
    """What an upload may carry: random bytes, exact-size random bytes, valid and near-valid records."""
    valid = records().map(protocol.Record.encode)
    return st.one_of(
        st.binary(max_size=2 * protocol.RECORD_SIZE),
        st.binary(min_size=protocol.RECORD_SIZE, max_size=protocol.RECORD_SIZE),
        valid,
        mutated(valid),
    )


def card_entries() -> st.SearchStrategy[bytes]:
    """One sync v2 card entry as the backend packs it (size: sync.CARD_ENTRY_V2.size)."""
    fields = sync.CARD_ENTRY_V2.unpack(bytes(sync.CARD_ENTRY_V2.size))
    draws = [UIDS, st.sampled_from((0, 1)), st.integers(-(2**31), 2**31 - 1)]
    # Further fields: fixed-size byte strings (the member code's salt and verifier), then a u32 (household).
    draws += [st.binary(min_size=len(f), max_size=len(f)) if isinstance(f, bytes) else st.integers(0, 2**32 - 1)
              for f in fields[4:]]
    return st.tuples(*draws).map(lambda v: sync.CARD_ENTRY_V2.pack(len(v[0]), v[0], *v[1:]))


def card_pages() -> st.SearchStrategy[bytes]:
    """A page of entries: valid ones (one UID may repeat), or any bytes cut in whole entries."""
    size = sync.CARD_ENTRY_V2.size
    valid = st.lists(card_entries(), max_size=12)
    uids = st.lists(UIDS, min_size=1, max_size=3)
    repeated = uids.flatmap(lambda pool: st.lists(card_entries().flatmap(
        lambda e: st.sampled_from(pool).map(lambda uid: bytes([len(uid)]) + uid.ljust(10, b"\0") + e[11:])), max_size=8))
    garbage = st.lists(st.binary(min_size=size, max_size=size), max_size=6)
    return st.one_of(valid, repeated, garbage).map(b"".join)
