"""The card table in flash (cards.py) and the sync answer read as a stream (page.py)."""

import base64
import io
import json
import random
import struct
import sys

import pytest

from tests.firmware.mpy_runtime import ROOT, run

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

from caisse_terminal import cards, page, policy, sim  # noqa: E402

BLOCK = 4096  # a LittleFS block on the ESP32's flash


def nxp_uid(rnd: random.Random) -> bytes:
    return b"\x04" + rnd.randbytes(6)


def table_of(storage) -> dict[bytes, bytes]:
    return {e[:cards.KEY_SIZE]: e for e in cards.CardTable(storage).entries()}


def entries_for(uids, balance=0, status=0) -> bytes:
    return b"".join(rig.entry(u, status, balance + i, household=1000 + i) for i, u in enumerate(uids))


def key(uid: bytes) -> bytes:
    return bytes([len(uid)]) + uid.ljust(10, b"\0")


def test_ten_thousand_cards_random_or_consecutive_fit_one_flash_block_per_bucket():
    rnd = random.Random(7)
    populations = {
        "random 7-byte": [nxp_uid(rnd) for _ in range(10_000)],
        "random 4-byte": [rnd.randbytes(4) for _ in range(10_000)],
        "consecutive": [b"\x04\x12\x34" + i.to_bytes(4, "big") for i in range(10_000)],
        "every 256th": [b"\x04\x01\x02" + i.to_bytes(4, "big") for i in range(0, 256 * 10_000, 256)],
    }
    for name, uids in populations.items():
        counts = [0] * cards.BUCKETS
        buf = bytearray(cards.KEY_SIZE)
        for uid in uids:
            cards.card_key(uid, buf)
            counts[cards.bucket_of(buf, 0)] += 1
        assert max(counts) * cards.ENTRY_SIZE <= BLOCK, (name, max(counts))


def test_a_page_of_a_few_cards_rewrites_only_their_buckets_not_the_table():
    rnd = random.Random(3)
    uids = [nxp_uid(rnd) for _ in range(10_000)]
    storage = sim.MemoryStorage()
    pol = policy.Policy(storage, None, sim.ManualClock())
    pol.apply_cards(entries_for(uids), True)
    assert pol.card_count() == 10_000
    changed = rnd.sample(uids, 8)
    before = storage.bytes_written
    pol.apply_cards(b"".join(rig.entry(u, 1, 7) for u in changed), False)
    written = storage.bytes_written - before
    # 8 buckets at most, each under one block: the 360 KB table is not written again
    assert written <= 8 * BLOCK, written
    assert all(pol.lookup(u) == (1, 7) for u in changed)
    assert pol.lookup(uids[0]) == ((1, 7) if uids[0] in changed else (0, 0))
    assert pol.card_count() == 10_000


def test_a_full_page_replaces_the_table_and_deltas_merge_with_the_latest_entry_winning():
    storage = sim.MemoryStorage()
    pol = policy.Policy(storage, None, sim.ManualClock())
    a, b, c = b"\x04" * 7, b"\x05" * 4, b"\x06" * 10
    pol.apply_cards(rig.entry(a, 0, 1) + rig.entry(b, 0, 2), True)
    pol.apply_cards(rig.entry(c, 0, 3) + rig.entry(a, 0, 10) + rig.entry(a, 1, 11), False)
    assert (pol.lookup(a), pol.lookup(b), pol.lookup(c)) == ((1, 11), (0, 2), (0, 3))
    pol.apply_cards(rig.entry(b, 0, 5), True)
    assert (pol.lookup(a), pol.lookup(b), pol.lookup(c)) == (None, (0, 5), None)
    assert list(cards.CardTable(storage).entries()) == [rig.entry(b, 0, 5)]


def test_a_power_cut_anywhere_in_a_page_leaves_each_card_old_or_new_and_the_same_page_again_completes():
    rnd = random.Random(11)
    uids = [nxp_uid(rnd) for _ in range(200)]
    base = sim.MemoryStorage()
    policy.Policy(base, None, sim.ManualClock()).apply_cards(entries_for(uids), True)
    old = table_of(base)
    new_uids = rnd.sample(uids, 90) + [nxp_uid(rnd) for _ in range(40)]  # 130 entries: spills to flash
    packed = b"".join(rig.entry(u, 1, 99, household=7) for u in new_uids)
    new = {key(u): rig.entry(u, 1, 99, household=7) for u in new_uids}

    probe = sim.MemoryStorage({k: bytearray(v) for k, v in base.files.items()})
    policy.Policy(probe, None, sim.ManualClock()).apply_cards(packed, False)
    units = probe.units
    expected = table_of(probe)
    cuts = sorted(set(range(0, units, max(1, units // 80))) | {units - 1})
    for cut in cuts:
        files = {k: bytearray(v) for k, v in base.files.items()}
        flash = sim.MemoryStorage(files)
        flash.budget = cut
        with pytest.raises(sim.PowerCut):
            policy.Policy(flash, None, sim.ManualClock()).apply_cards(packed, False)
        after = table_of(sim.MemoryStorage(files))  # reboot
        for k, entry in after.items():
            assert entry in (old.get(k), new.get(k)), cut
        assert set(old) <= set(after), cut  # no card lost
        again = sim.MemoryStorage(files)
        policy.Policy(again, None, sim.ManualClock()).apply_cards(packed, False)
        assert table_of(again) == expected, cut


def test_more_cards_than_a_page_holds_is_refused_and_changes_nothing():
    storage = sim.MemoryStorage()
    rig.provision(storage)
    table = cards.CardTable(storage)
    before = list(table.entries())
    table.begin()
    entry = rig.entry(rig.ALICE, 1, 0)
    with pytest.raises(cards.PageTooLarge):
        for _ in range(cards.PAGE_ENTRIES + 1):
            table.add(entry)
    assert list(table.entries()) == before


# ---- the sync answer, read as a stream ---------------------------------------------------------


class Trickle:
    """A stream that gives at most `piece` bytes per read, as a network does."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._data = io.BytesIO(data)
        self._piece = piece
        self.reads = 0

    def readinto(self, buf) -> int:
        self.reads += 1
        return self._data.readinto(memoryview(buf)[:self._piece])


def answer_bytes(packed_wire: bytes, *, cards_first=False, spaces="", escape_slashes=False, **extra) -> bytes:
    text = base64.b64encode(packed_wire).decode()
    if escape_slashes:
        text = text.replace("/", "\\/")
    head = {"v": 3, "accreditation": {"active": True, "ends_at": None}, "server_time": rig.T0, "acked_seq": 3, "cards_version": 12,
            "full": False, "more": False,
            "limits": {"max_payment_cents": 900, "nested": [1, {"a": "}\"]"}]}, **extra}
    parts = [f'"{k}":{spaces}{json.dumps(v)}' for k, v in head.items()]
    cards_part = f'"cards":{spaces}"{text}"'
    parts = [cards_part] + parts if cards_first else parts + [cards_part]
    return ("{" + spaces + ("," + spaces).join(parts) + spaces + "}").encode()


def read(data: bytes, piece: int):
    storage = sim.MemoryStorage()
    table = cards.CardTable(storage)
    table.begin()
    reader = page.PageReader()
    steps = sum(1 for _ in reader.read(Trickle(data, piece), table))
    for _ in table.commit(False):
        pass
    return reader.answer, table_of(storage), steps


def wire_page(n: int, rnd: random.Random) -> bytes:
    return b"".join(rig.entry(nxp_uid(rnd), i % 2, i * 100 - 5000, "1234" if i % 3 else "") for i in range(n))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 63, 64, 65, 512])
def test_an_answer_read_in_any_pieces_and_any_layout_gives_the_same_cards_and_values(n):
    rnd = random.Random(n)
    packed = wire_page(n, rnd)
    expected = {e[:11]: e for e in (packed[i:i + cards.ENTRY_SIZE] for i in range(0, len(packed), cards.ENTRY_SIZE))}
    layouts = [answer_bytes(packed), answer_bytes(packed, cards_first=True, spaces=" \n\t"),
               answer_bytes(packed, escape_slashes=True, unknown_key={"x": [True, None, 1.5]})]
    for data in layouts:
        for piece in (1, 3, 511, 4096) if n < 100 else (509, 4096):
            answer, table, _ = read(data, piece)
            assert table == expected
            assert answer["cards_version"] == 12 and answer["limits"]["max_payment_cents"] == 900
            assert answer["limits"]["nested"] == [1, {"a": "}\"]"}]


def test_a_big_answer_is_read_in_chunks_never_whole():
    packed = wire_page(512, random.Random(5))
    data = answer_bytes(packed)
    _, table, steps = read(data, 4096)
    assert len(table) == 512
    assert steps >= len(data) // page.CHUNK - 1  # one step per chunk of the socket's bytes


@pytest.mark.parametrize("damage", ["cut", "not base64", "mid entry", "bad padding", "unclosed value", "long value",
                                    "not an object", "too many"])
def test_a_damaged_answer_is_refused_and_the_table_is_unchanged(damage):
    rnd = random.Random(2)
    packed = wire_page(10, rnd)
    good = answer_bytes(packed)
    bad = {
        "cut": good[:len(good) // 2],
        "not base64": good.replace(b'"cards":"', b'"cards":"!'),
        "mid entry": answer_bytes(packed[:-3]),
        "bad padding": good.replace(b'"cards":"', b'"cards":"A=B'),
        "unclosed value": b'{"server_time": [1, 2',
        "long value": b'{"limits": "' + b"x" * (page.VALUE_MAX + 10) + b'"}',
        "not an object": b'["cards"]',
        "too many": answer_bytes(rig.entry(rig.ALICE, 0, 1) * (cards.PAGE_ENTRIES + 1)),
    }[damage]
    bench = rig.Rig(transport=lambda method, path, headers, body: (200, bad))
    before = list(bench.terminal.policy.cards.entries())
    version = bench.terminal.policy.cards_version
    report = bench.terminal.sync_now()
    assert report.error is not None and report.error.startswith("SyncError")
    assert list(bench.terminal.policy.cards.entries()) == before
    assert bench.terminal.policy.cards_version == version


def test_a_sync_of_several_pages_applies_each_and_keeps_the_last_version():
    rnd = random.Random(9)
    pages = [b"".join(rig.entry(nxp_uid(rnd), 0, i) for i in range(n)) for n in (512, 512, 70)]
    sent = []

    def backend(method, path, headers, body):
        if method == "POST":
            return 200, b'{"recorded": 0}'
        since = int(path.split("since=")[1].split("&")[0])
        index = len(sent)
        sent.append(since)
        return 200, json.dumps({"v": 3, "accreditation": {"active": True, "ends_at": None}, "server_time": rig.T0, "acked_seq": 0,
                                "cards_version": 100 + index,
                                "full": since == 0, "more": index < 2,
                                "cards": base64.b64encode(pages[index]).decode(), "limits": {}}).encode()

    bench = rig.Rig(transport=backend)
    bench.terminal.policy.cards_version = 0
    report = bench.terminal.sync_now()
    assert report.error is None and report.cards == 512 + 512 + 70
    assert sent == [0, 100, 101] and bench.terminal.policy.cards_version == 102
    assert bench.terminal.policy.card_count() == 1094  # the full first page dropped the rig's cards


MICROPYTHON_STREAM = """
import sys, json, binascii
sys.path.insert(0, '/scenarios')
import rig
from caisse_terminal import cards, page, sim

class Trickle:
    def __init__(self, data, piece):
        self.data, self.at, self.piece = data, 0, piece
    def readinto(self, buf):
        n = min(len(buf), self.piece, len(self.data) - self.at)
        buf[:n] = self.data[self.at:self.at + n]
        self.at += n
        return n

spec = json.load(open('/data/spec.json'))
out = []
for answer in spec:
    data = binascii.unhexlify(answer)
    storage = sim.MemoryStorage()
    table = cards.CardTable(storage)
    table.begin()
    reader = page.PageReader()
    try:
        for _ in reader.read(Trickle(data, 97), table):
            pass
        for _ in table.commit(False):
            pass
        out.append([reader.answer.get('cards_version'), [binascii.hexlify(e).decode() for e in table.entries()]])
    except ValueError as e:
        out.append(['error', type(e).__name__])
print(json.dumps(out))
"""


def test_micropython_reads_the_same_answers_the_same_way(tmp_path):
    rnd = random.Random(4)
    answers = [answer_bytes(wire_page(n, rnd), cards_first=n % 2 == 1, escape_slashes=n == 65) for n in (0, 1, 2, 65, 300)]
    answers += [answer_bytes(wire_page(5, rnd))[:-40], b'{"cards": "AAA!"}']
    (tmp_path / "spec.json").write_text(json.dumps([a.hex() for a in answers]))
    got = json.loads(run(MICROPYTHON_STREAM, mounts={tmp_path: "/data", ROOT / "tests/firmware/scenarios": "/scenarios"}))
    for answer, result in zip(answers, got, strict=True):
        try:
            cpython_answer, table, _ = read(answer, 97)
        except ValueError as error:
            assert result == ["error", type(error).__name__]
            continue
        assert result[0] == cpython_answer["cards_version"]
        assert result[1] == [e.hex() for e in cards.CardTable(_table_storage(table)).entries()]


def _table_storage(table: dict[bytes, bytes]):
    storage = sim.MemoryStorage()
    policy.Policy(storage, None, sim.ManualClock()).apply_cards(b"".join(table.values()), True)
    return storage


# ---- upgrade from the single-file table of firmware 0.1 -----------------------------------------


def legacy_files(uids) -> dict:
    """What firmware 0.1 left in flash: cards.bin (32-byte v1 entries sorted by key), config.json."""
    entries = sorted(struct.pack(">B10sBi8s8s", len(u), u, i % 2, 100 * i, bytes(8), bytes(8)) for i, u in enumerate(uids))
    config = {"terminal_id": 7, "cards_version": 4242, "last_sync": rig.T0, "limits": {"max_payment_cents": 700}}
    return {"cards.bin": bytearray(b"".join(entries)), "config.json": bytearray(json.dumps(config).encode())}


def test_the_first_boot_after_an_upgrade_moves_the_legacy_table_and_asks_for_every_card_again():
    rnd = random.Random(8)
    uids = [nxp_uid(rnd) for _ in range(1500)]
    files = legacy_files(uids)
    pol = policy.Policy(sim.MemoryStorage(files), None, sim.ManualClock())
    assert "cards.bin" not in files
    assert pol.card_count() == 1500 and all(pol.lookup(u) == (i % 2, 100 * i) for i, u in enumerate(uids))
    assert pol.cards_version == 0 and json.loads(files["config.json"])["cards_version"] == 0  # a full sync next
    assert pol.limits["max_payment_cents"] == 700 and pol.terminal_id == 7
    # until the full sync, each moved card is a household of its own, as its v1 budget was per card
    households = {int.from_bytes(e[cards.HOUSEHOLD_AT:], "big") for e in cards.CardTable(sim.MemoryStorage(files)).entries()}
    assert len(households) == 1500 and min(households) >= cards.LEGACY_HOUSEHOLD


def test_an_upgrade_cut_by_a_power_failure_is_redone_at_the_next_boot():
    rnd = random.Random(6)
    uids = [nxp_uid(rnd) for _ in range(200)]
    probe = sim.MemoryStorage(legacy_files(uids))
    policy.Policy(probe, None, sim.ManualClock())
    expected = table_of(probe)
    for cut in range(0, probe.units, max(1, probe.units // 60)):
        files = legacy_files(uids)
        flash = sim.MemoryStorage(files)
        flash.budget = cut
        with pytest.raises(sim.PowerCut):
            policy.Policy(flash, None, sim.ManualClock())
        pol = policy.Policy(sim.MemoryStorage(files), None, sim.ManualClock())  # the next boot
        assert table_of(sim.MemoryStorage(files)) == expected, cut
        assert pol.cards_version == 0 and "cards.bin" not in files, cut
