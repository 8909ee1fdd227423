"""Hypothesis on the decoders of both sides, under CPython and under the real MicroPython.

Any byte string gives a clean error (MalformedRecord, InvalidInput) or a valid value; a valid
value re-encodes to the same bytes; the backend and the firmware read every byte string the
same way. The sync card entries are fuzzed at the size the code declares
(caisse.terminals.sync.CARD_ENTRY_V2, caisse_terminal.cards.ENTRY_SIZE), not a literal.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caisse.cards import member_codes
from caisse.errors import InvalidInput
from caisse.terminals import sync
from caisse_common import protocol
from caisse_terminal import cards as firmware_cards
from caisse_terminal import policy as firmware_policy
from caisse_terminal import record as firmware_record
from caisse_terminal import sim
from caisse_terminal.sync import SyncClient
from tests.firmware.mpy_runtime import run
from tests.firmware.scenarios import rig
from tests.fuzz.strategies import UIDS, card_pages, record_bytes, records

FIELDS = ("kind", "flags", "terminal_id", "seq", "time", "amount_cents", "ref_seq", "card_uid", "card_auth",
          "prev_hash", "signature")
MICROPYTHON_RECORDS = 300  # byte strings checked in one MicroPython launch (about 1 s)
MICROPYTHON_PAGES = 40


def backend_reading(raw: bytes) -> tuple | None:
    """The decoded fields, or None for bytes the backend refuses as malformed."""
    try:
        record = protocol.decode(raw)
    except protocol.MalformedRecord:
        return None
    return tuple(int(value) if name == "kind" else value for name, value in ((f, getattr(record, f)) for f in FIELDS))


def firmware_reading(raw: bytes) -> tuple | None:
    try:
        record = firmware_record.decode(raw)
    except firmware_record.MalformedRecord:
        return None
    return tuple(getattr(record, f) for f in FIELDS)


# ---- records ----------------------------------------------------------------------------------

@given(raw=record_bytes())
def test_any_bytes_decode_to_a_record_that_re_encodes_identically_or_a_clean_error(raw: bytes) -> None:
    try:
        record = protocol.decode(raw)
    except protocol.MalformedRecord:
        return
    assert record.encode() == raw
    assert firmware_record.decode(raw).encode() == raw


@given(raw=record_bytes())
def test_backend_and_firmware_read_every_byte_string_the_same_way(raw: bytes) -> None:
    assert firmware_reading(raw) == backend_reading(raw)


@given(record=records())
def test_every_valid_record_round_trips_through_both_codecs(record: protocol.Record) -> None:
    raw = record.encode()
    assert protocol.decode(raw) == record
    again = firmware_record.decode(raw)
    assert again.encode() == raw and again.digest() == record.digest()


# ---- sync card entries: the backend packs them, the terminal merges and looks them up ----------

def expected_table(pages: list[tuple[bytes, bool]]) -> dict[bytes, bytes]:
    """The terminal's card table after these pages, as a model: 11-byte key -> latest entry."""
    size = firmware_cards.ENTRY_SIZE
    table: dict[bytes, bytes] = {}
    for packed, full in pages:
        if full:
            table = {}
        for offset in range(0, len(packed), size):
            entry = packed[offset:offset + size]
            table[entry[:11]] = entry
    return table


def lookup_key(uid: bytes) -> bytes:
    return bytes([len(uid)]) + uid.ljust(10, b"\0")


def test_the_terminal_reads_entries_of_the_size_the_backend_packs() -> None:
    assert firmware_cards.ENTRY_SIZE == sync.CARD_ENTRY_V2.size  # the terminal asks for sync v2


@given(first=card_pages(), second=card_pages(), full=st.booleans(), probes=st.lists(UIDS, max_size=4))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_card_pages_merge_into_a_sorted_table_where_the_latest_entry_wins(
    first: bytes, second: bytes, full: bool, probes: list[bytes]
) -> None:
    storage = sim.MemoryStorage()
    terminal = firmware_policy.Policy(storage, None, sim.ManualClock())
    terminal.apply_cards(first, True)
    terminal.apply_cards(second, full)
    model = expected_table([(first, True), (second, full)])
    stored = list(terminal.cards.entries())
    in_order = sorted(model, key=lambda key: (firmware_cards.bucket_of(key, 0), key))
    assert [e[:11] for e in stored] == in_order and dict((e[:11], e) for e in stored) == model
    for uid in probes + [key[1:1 + key[0]] for key in model if key[0] in protocol.VALID_UID_SIZES]:
        entry = model.get(lookup_key(uid))
        want = None if entry is None else (entry[11], int.from_bytes(entry[12:16], "big", signed=True))
        assert terminal.lookup(uid) == want


@given(entries=st.lists(st.tuples(UIDS, st.sampled_from((0, 1)), st.integers(-(2**31), 2**31 - 1)), max_size=8))
def test_backend_card_entries_unpack_to_what_was_packed(entries: list[tuple[bytes, int, int]]) -> None:
    salt = verifier = bytes(8)
    packed = b"".join(sync.CARD_ENTRY.pack(len(uid), uid, status, balance, salt, verifier)
                      for uid, status, balance in entries)
    assert [(e.uid, e.status, e.balance_cents) for e in sync.unpack_cards(packed)] == entries
    packed_v2 = b"".join(sync.CARD_ENTRY_V2.pack(len(uid), uid, status, balance, salt, verifier, n)
                         for n, (uid, status, balance) in enumerate(entries))
    assert [(e.uid, e.status, e.balance_cents, e.household_id) for e in sync.unpack_cards_v2(packed_v2)] == [
        (*entry, n) for n, entry in enumerate(entries)]


class AnswerWith:
    """A backend whose sync answer carries `cards` (any bytes); uploads have nothing to send."""

    def __init__(self, cards: bytes) -> None:
        self.cards = cards

    def __call__(self, method: str, path: str, headers: dict, body: bytes | None) -> tuple[int, bytes]:
        if "/code-failures" in path:
            return 200, b'{"recorded": 0}'
        return 200, json.dumps({"v": 3, "accreditation": {"active": True, "ends_at": None}, "server_time": 1_767_254_400, "acked_seq": 0,
                                "cards_version": 1, "full": True,
                                "more": False, "cards": base64.b64encode(self.cards).decode(), "limits": {}}).encode()


@given(cards=st.binary(max_size=3 * firmware_cards.ENTRY_SIZE).filter(lambda b: len(b) % firmware_cards.ENTRY_SIZE))
@settings(max_examples=5)
def test_a_sync_answer_cut_mid_entry_fails_the_sync_cleanly_and_keeps_the_table(cards: bytes) -> None:
    bench = rig.Rig(transport=AnswerWith(cards))
    table = list(bench.terminal.policy.cards.entries())
    assert isinstance(bench.terminal.sync, SyncClient)
    assert bench.terminal.sync.sync().error is not None
    assert list(bench.terminal.policy.cards.entries()) == table


# ---- the code-failures report: the terminal packs it, the backend parses it -------------------

@given(body=st.one_of(st.binary(max_size=4 * member_codes.FAILURE_ENTRY.size),
                      st.lists(st.binary(min_size=member_codes.FAILURE_ENTRY.size,
                                         max_size=member_codes.FAILURE_ENTRY.size), max_size=4).map(b"".join)))
def test_any_code_failures_body_parses_or_is_refused_cleanly(body: bytes) -> None:
    try:
        parsed = member_codes.parse_failures(body)
    except InvalidInput:
        return
    assert sum(failures for failures, _locked in parsed.values()) == sum(
        entry[2] for entry in member_codes.FAILURE_ENTRY.iter_unpack(body))
    assert all(len(uid) in protocol.VALID_UID_SIZES for uid in parsed)


# ---- the same, inside the real MicroPython: one launch for a whole batch -------------------------

def corpus() -> tuple[list[bytes], list[bytes]]:
    """Byte strings drawn by hypothesis (its shrinking is not needed here, only its generators)."""
    drawn_records: list[bytes] = []
    drawn_pages: list[bytes] = []

    @given(raw=record_bytes(), page=card_pages())
    @settings(max_examples=MICROPYTHON_RECORDS, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    def draw(raw: bytes, page: bytes) -> None:
        drawn_records.append(raw)
        if len(drawn_pages) < MICROPYTHON_PAGES:
            drawn_pages.append(page)

    draw()
    return drawn_records, drawn_pages


MICROPYTHON_SCRIPT = """
import json, binascii
from caisse_terminal import record, policy, sim
u, h = binascii.unhexlify, lambda b: binascii.hexlify(b).decode()
corpus = json.load(open('/corpus/corpus.json'))
out = {'records': [], 'pages': []}
for raw in corpus['records']:
    try:
        r = record.decode(u(raw))
        out['records'].append([r.kind, r.flags, r.terminal_id, r.seq, r.time, r.amount_cents, r.ref_seq,
                               h(r.card_uid), h(r.card_auth), h(r.prev_hash), h(r.signature), h(r.encode())])
    except record.MalformedRecord:
        out['records'].append(None)
for page in corpus['pages']:
    storage = sim.MemoryStorage()
    terminal = policy.Policy(storage, None, sim.ManualClock())
    terminal.apply_cards(u(page['packed']), True)
    out['pages'].append([terminal.lookup(u(uid)) for uid in page['probes']])
print(json.dumps(out))
"""


def test_micropython_decoders_agree_with_the_backend_on_a_hypothesis_batch(tmp_path: Path) -> None:
    drawn_records, drawn_pages = corpus()
    pages = []
    for packed in drawn_pages:
        keys = {packed[i:i + 11] for i in range(0, len(packed), firmware_cards.ENTRY_SIZE)}
        probes = [key[1:1 + key[0]] for key in keys if key[0] in protocol.VALID_UID_SIZES] + [b"\x04" * 7]
        pages.append({"packed": packed.hex(), "probes": [p.hex() for p in probes]})
    (tmp_path / "corpus.json").write_text(json.dumps({"records": [r.hex() for r in drawn_records], "pages": pages}))
    got = json.loads(run(MICROPYTHON_SCRIPT, mounts={tmp_path: "/corpus"}))

    assert sum(r is not None for r in got["records"]) > MICROPYTHON_RECORDS // 10, "too few valid records drawn"
    for raw, reading in zip(drawn_records, got["records"], strict=True):
        want = backend_reading(raw)
        if want is None:
            assert reading is None, raw.hex()
        else:
            *fields, encoded = reading
            assert tuple(fields) == tuple(v.hex() if isinstance(v, bytes) else v for v in want), raw.hex()
            assert encoded == raw.hex()
    for page, packed, lookups in zip(pages, drawn_pages, got["pages"], strict=True):
        model = expected_table([(packed, True)])
        for uid_hex, found in zip(page["probes"], lookups, strict=True):
            entry = model.get(lookup_key(bytes.fromhex(uid_hex)))
            want = None if entry is None else [entry[11], int.from_bytes(entry[12:16], "big", signed=True)]
            assert found == want, (page, uid_hex)
