"""Sync client against a fake backend that checks records with the backend's own codec."""

import base64
import hashlib
import json
import struct
import sys

from caisse.simulation.faults import flip_a_signature_bit
from caisse.terminals.sync import is_firmware_version
from caisse_common import protocol
from tests.firmware.mpy_runtime import ROOT

sys.path.insert(0, str(ROOT / "tests/firmware/scenarios"))

import rig  # noqa: E402

import caisse_terminal  # noqa: E402
from caisse_terminal import sync as sync_module  # noqa: E402

PUBLIC = protocol.load_public_key(bytes.fromhex(
    json.loads((ROOT / "tests/vectors/protocol_v1.json").read_text())["terminal"]["public_key"]))


class FakeBackend:
    """Upload and sync endpoints with the protocol's semantics, in memory."""

    def __init__(self, server_time=rig.T0, cards=b"", limits=None):
        self.records = {}
        self.force = {}  # seq -> rejection reason to give
        self.server_time = server_time
        self.cards = cards
        self.cards_version = 5
        self.limits = limits or {}
        self.down = False
        self.calls = []
        self.uploaded = []  # seqs, in upload order

    def acked(self):
        n = 0
        while n + 1 in self.records:
            n += 1
        return n

    def __call__(self, method, path, headers, body):
        self.calls.append((method, path))
        if self.down:
            raise OSError("network unreachable")
        if method == "POST":
            assert path == "/v1/terminals/7/batches"
            results = []
            for index, text in enumerate(json.loads(body)["records"]):
                raw = base64.b64decode(text)
                rec = protocol.decode(raw)
                self.uploaded.append(rec.seq)
                reason = self.force.get(rec.seq)
                if reason is None and not protocol.verify(PUBLIC, rec):
                    reason = "bad_signature"
                if reason in ("bad_signature", "malformed", "seq_conflict", "bad_chain"):  # not stored
                    results.append({"index": index, "seq": rec.seq, "status": "rejected", "reason": reason})
                    continue
                if rec.seq > 1 and rec.seq - 1 in self.records:
                    assert rec.prev_hash == protocol.decode(self.records[rec.seq - 1]).digest()
                status = "duplicate" if self.records.get(rec.seq) == raw else "accepted"
                assert rec.seq not in self.records or status == "duplicate", "seq reused"
                self.records[rec.seq] = raw
                results.append({"index": index, "seq": rec.seq, "status": status}
                               if reason is None else
                               {"index": index, "seq": rec.seq, "status": "rejected", "reason": reason})
            return 200, json.dumps({"results": results, "acked_seq": self.acked()}).encode()
        assert method == "GET" and path.startswith("/v1/terminals/7/sync?since=") and path.endswith("&v=3")
        since = int(path.split("since=")[1].split("&")[0])
        t = int(headers["X-Caisse-Time"])
        if abs(t - self.server_time) > 300:
            return 401, json.dumps({"error": "clock_skew", "server_time": self.server_time}).encode()
        sig = bytes.fromhex(headers["X-Caisse-Signature"])
        if not protocol.verify_digest(PUBLIC, protocol.sync_digest(7, t, since), sig):
            return 401, b'{"error": "bad_signature"}'
        cards = self.cards if since < self.cards_version else b""
        return 200, json.dumps({
            "v": 3, "accreditation": {"active": True, "ends_at": None}, "server_time": self.server_time, "acked_seq": self.acked(),
            "cards_version": self.cards_version,
            "full": since == 0, "more": False, "cards": base64.b64encode(cards).decode(), "limits": self.limits,
        }).encode()


def terminal(backend, **kw):
    r = rig.Rig(transport=backend, **kw)
    r.terminal.sync._batch = 4  # several batches for a handful of records
    return r


def test_sync_uploads_every_record_in_batches_and_reclaims_acknowledged_segments():
    backend = FakeBackend(server_time=rig.T0 + 86400)  # the next day: the day's records may go
    r = terminal(backend, segment_bytes=1024, segments=4)
    for i in range(12):
        assert "Paiement accepté" in r.pay(f"0,{i + 1:02d}", rig.CAROL)
        r.keys("V")
    segments_before = r.log.stats()["segments"]
    report = r.terminal.sync_now()
    assert report.error is None and report.accepted == 12 and report.acked_seq == 12
    assert sorted(backend.records) == list(range(1, 13))
    assert sum(1 for m, _ in backend.calls if m == "POST") == 3
    assert r.log.acked_seq == 12 and r.log.pending(100) == []
    # acknowledged records stay in flash while half the log is free (a restored backend may ask
    # for them again): the oldest segment goes, two of the four stay
    assert segments_before == 3 and r.log.stats()["segments"] == 2
    assert 1 < protocol.decode(bytes(next(r.log.bodies())) + bytes(64)).seq < 13
    # the day summary outlives the reclaimed records, also across a reboot
    again = rig.Rig(files=r.files)
    assert again.log.day_summary(rig.T0) == (12, sum(range(1, 13)))
    assert again.log.next_seq == 13


def test_records_committed_unsigned_are_signed_before_upload_even_after_a_reboot():
    backend = FakeBackend()
    r = terminal(backend)
    r.keys("1V")
    r.tap(rig.ALICE)  # committed, not signed yet: the power goes
    assert r.log.unsigned == [1]
    again = rig.Rig(files=r.files, transport=backend)
    assert again.log.unsigned == [1]
    assert again.terminal.sync_now().accepted == 1
    assert protocol.verify(PUBLIC, protocol.decode(backend.records[1]))


def test_a_rejected_record_stays_marked_in_the_log_and_is_reported():
    backend = FakeBackend()
    backend.force = {2: "card_blocked", 3: "bad_signature"}
    r = terminal(backend)
    for _ in range(4):
        r.pay("1", rig.CAROL)
        r.keys("V")
    report = r.terminal.sync_now()
    assert report.rejected == [(2, "card_blocked"), (3, "bad_signature")]
    assert report.acked_seq == 2  # 3 was not stored: the backend cannot go past it
    assert r.log.rejected == {2: "card_blocked", 3: "bad_signature"}
    again = rig.Rig(files=r.files, transport=backend)
    assert again.log.rejected == {2: "card_blocked", 3: "bad_signature"}
    assert backend.uploaded == [1, 2, 3, 4]
    again.terminal.sync_now()
    assert backend.uploaded[4:] == [3, 4]  # bad_signature judged the bytes that arrived: sent again


def test_a_record_corrupted_on_the_way_is_sent_again_and_acked():
    backend = FakeBackend()
    r = terminal(backend)
    for _ in range(3):
        r.pay("1", rig.CAROL)
        r.keys("V")
    clean = backend.__call__

    def flip_first_signature_bit(method, path, headers, body):
        if method == "POST" and not backend.uploaded:
            body = flip_a_signature_bit(body)
        return clean(method, path, headers, body)

    r.terminal.sync._transport = flip_first_signature_bit
    assert r.terminal.sync_now().rejected == [(1, "bad_signature")]
    assert r.log.acked_seq == 0
    r.terminal.sync_now()
    assert r.log.acked_seq == 3 and not r.log.pending(10)


def test_a_seq_conflict_is_never_sent_again():
    backend = FakeBackend()
    backend.force = {2: "seq_conflict"}
    r = terminal(backend)
    for _ in range(3):
        r.pay("1", rig.CAROL)
        r.keys("V")
    r.terminal.sync_now()
    r.terminal.sync_now()
    assert backend.uploaded == [1, 2, 3, 3]  # the backend holds other bytes at 2: useless to send


def test_clock_skew_sets_the_clock_from_the_server_and_signs_again():
    backend = FakeBackend(server_time=rig.T0 + 5000)
    r = terminal(backend)
    report = r.terminal.sync_now()
    assert report.error is None
    assert [m for m, _ in backend.calls] == ["GET", "GET"]
    assert r.clock.now() == rig.T0 + 5000
    assert r.terminal.policy.last_sync == rig.T0 + 5000


def test_network_down_backs_off_exponentially_and_recovers():
    backend = FakeBackend()
    backend.down = True
    r = terminal(backend)
    client = r.terminal.sync
    assert "OSError" in r.terminal.sync_now().error
    assert client.backoff_s() == 15 and not client.due()
    r.clock.advance(15)
    assert client.due()
    r.terminal.sync_now()
    assert client.backoff_s() == 30
    r.clock.advance(29)
    assert not client.due()
    backend.down = False
    r.clock.advance(1)
    assert r.terminal.sync_now().error is None and client.failures == 0 and client.due()


def test_sync_applies_the_deny_list_budgets_and_limits():
    backend = FakeBackend(cards=rig.entry(rig.ALICE, 1, 5000) + rig.entry(rig.CAROL, 0, 700),
                          limits={"max_payment_cents": 600})
    r = terminal(backend)
    r.pay("2", rig.CAROL)
    r.keys("V")
    r.terminal.sync_now()
    assert r.terminal.policy.cards_version == 5
    assert r.pay("1", rig.ALICE) == "Carte bloquée"
    r.keys("V")
    assert r.pay("6,01", rig.CAROL) == "Montant trop | élevé"
    r.keys("V")
    # the new balance (700) already counts the acknowledged 2,00: nothing is subtracted twice
    r.tap(rig.CAROL)
    assert r.display.lines[:2] == ["Solde disponible", "7,00 EUR"]
    # a new session survives: limits and the cards version are saved
    again = rig.Rig(files=r.files)
    assert again.terminal.policy.limits["max_payment_cents"] == 600


def test_a_full_log_accepts_payments_again_after_a_sync():
    backend = FakeBackend(cards=rig.CARDS)
    r = terminal(backend, segment_bytes=1024, segments=2)
    while r.log.has_room_for_payment():
        r.pay("0,01", rig.CAROL)
        r.keys("V")
    r.keys("1V")
    assert r.display.lines[0] == "Mémoire pleine"
    r.keys("X")
    assert r.terminal.sync_now().error is None
    # The day's records stay even acknowledged (the offline budget counts them): full until the next day.
    assert r.pay("0,01", rig.CAROL) == "Mémoire pleine | Synchronisez | le terminal"
    r.keys("X")
    backend.server_time += 86400
    assert r.terminal.sync_now().error is None
    assert "Paiement accepté" in r.pay("0,01", rig.CAROL)


def test_the_sync_request_tells_the_firmware_version_in_a_form_the_backend_stores():
    backend = FakeBackend()
    sent = []
    r = terminal(lambda method, path, headers, body: sent.append(headers) or backend(method, path, headers, body))
    assert r.terminal.sync_now().error is None
    assert sent[-1]["X-Caisse-Firmware"] == caisse_terminal.VERSION
    assert is_firmware_version(caisse_terminal.VERSION)


def test_sync_digest_matches_the_backend():
    assert sync_module.sync_digest(7, 1767258000, 42) == protocol.sync_digest(7, 1767258000, 42)


MICROPYTHON_CARD_SYNC = """
import sys
sys.path.insert(0, '/scenarios')
import binascii, json
import rig

CARDS = rig.entry(rig.ALICE, 1, 5000) + rig.entry(rig.CAROL, 0, 700, rig.CODE)
posted = []
fetched = []

def backend(method, path, headers, body):
    if method == "POST":
        posted.append((path, headers, body))
        return 200, json.dumps({"recorded": len(body) // 15}).encode()
    fetched.append(headers)
    # The JSON answer of GET /sync: "cards" is a str once parsed, as from the real backend.
    return 200, json.dumps({"v": 3, "accreditation": {"active": True, "ends_at": None}, "server_time": rig.T0, "acked_seq": 0,
                            "cards_version": 9, "full": True,
                            "more": False, "cards": binascii.b2a_base64(CARDS).decode().strip(),
                            "limits": {}}).encode()

r = rig.Rig(transport=backend, cards=b"")
report = r.terminal.sync_now()
pol = r.terminal.policy
print(report.error, report.cards, pol.cards_version, pol.lookup(rig.CAROL))
print(pol.check_code(rig.CAROL, '0000'), pol.check_code(rig.CAROL, '1357'), pol.check_code(rig.CAROL, rig.CODE))
report = r.terminal.sync_now()
path, headers, body = posted[0]
print(report.error, report.code_failures, path, headers['X-Caisse-Time'], headers['X-Caisse-Signature'],
      binascii.hexlify(body).decode(), pol.code_failures())
import caisse_terminal
print(fetched[0]['X-Caisse-Firmware'] == caisse_terminal.VERSION, caisse_terminal.VERSION)
"""


def test_the_card_table_from_a_sync_answer_decodes_under_micropython():
    # The answer's base64 is a str; MicroPython's binascii (the WebAssembly port's) takes bytes.
    from tests.firmware.mpy_runtime import run
    out = run(MICROPYTHON_CARD_SYNC, mounts={ROOT / "tests/firmware/scenarios": "/scenarios"}).splitlines()
    assert out[0].split() == ["None", "2", "9", "(0,", "700)"]
    assert out[1].split() == ["1", "1", "0"]  # wrong, wrong, right (member code checked with hashlib)
    error, count, path, t, signature, body, after = out[2].split()
    assert (error, count, path, after) == ("None", "1", "/v1/terminals/7/code-failures", "b''")
    assert bytes.fromhex(body) == bytes([7]) + rig.CAROL + bytes(3) + b"\x00\x02\x00\x00"
    digest = hashlib.sha256(b"caisse-code-failures-v1" + struct.pack(">II", 7, int(t))
                            + hashlib.sha256(bytes.fromhex(body)).digest()).digest()
    assert protocol.verify_digest(PUBLIC, digest, bytes.fromhex(signature))
    sent, version = out[3].split()
    assert sent == "True" and is_firmware_version(version)  # the firmware tells its version


def test_a_backend_restored_from_a_backup_gets_the_records_it_lost_again_once():
    backend = FakeBackend(cards=rig.CARDS)
    r = terminal(backend)
    for i in range(5):
        assert "Paiement accepté" in r.pay(f"0,{i + 1:02d}", rig.CAROL)
        r.keys("V")
    assert r.terminal.sync_now().acked_seq == 5
    for seq in (3, 4, 5):  # the backend's database goes back to a backup holding records 1..2
        del backend.records[seq]
    assert "Paiement accepté" in r.pay("0,06", rig.CAROL)
    r.keys("V")
    backend.uploaded.clear()
    report = r.terminal.sync_now()
    assert report.error is None and report.resent == 3 and report.duplicates == 0
    assert backend.uploaded == [6, 3, 4, 5]  # the new record, then what the backend lost, once
    assert sorted(backend.records) == list(range(1, 7))
    assert r.log.acked_seq == 6 and r.log.resend_above == -1  # the second answer caught up
    backend.uploaded.clear()
    assert r.terminal.sync_now().error is None and backend.uploaded == []


def test_a_power_cut_during_the_re_send_sends_the_rest_after_the_reboot_and_counts_nothing_twice():
    backend = FakeBackend()
    r = terminal(backend)
    for i in range(10):
        assert "Paiement accepté" in r.pay(f"0,{i + 1:02d}", rig.CAROL)
        r.keys("V")
    assert r.terminal.sync_now().acked_seq == 10
    for seq in range(3, 11):
        del backend.records[seq]
    posts = []

    def cut_after_one_batch(method, path, headers, body):
        if method == "POST":
            posts.append(path)
            if len(posts) == 2:
                raise OSError("the power goes")
        return backend(method, path, headers, body)

    r.terminal.sync._transport = cut_after_one_batch
    assert r.terminal.sync_now().error is not None
    assert sorted(backend.records) == list(range(1, 7))  # the first batch of the re-send landed
    again = rig.Rig(files=r.files, transport=backend)
    again.terminal.sync._batch = 4
    assert again.log.resending() and again.log.resend_above == 2  # the flash remembers the re-send
    report = again.terminal.sync_now()
    assert report.error is None and (report.duplicates, report.accepted) == (4, 4)
    assert sorted(backend.records) == list(range(1, 11)) and again.log.resend_above == -1


def test_records_no_longer_in_flash_are_reported_and_not_asked_for_again():
    backend = FakeBackend(server_time=rig.T0 + 86400)  # the next day: yesterday's records may go
    r = terminal(backend, segment_bytes=1024, segments=4)
    for i in range(12):
        assert "Paiement accepté" in r.pay(f"0,{i + 1:02d}", rig.CAROL)
        r.keys("V")
    assert r.terminal.sync_now().acked_seq == 12
    held_from = protocol.decode(bytes(next(r.log.bodies())) + bytes(64)).seq
    assert held_from > 1  # the oldest segment was reclaimed
    backend.records.clear()  # restored to a backup taken before the first upload
    backend.uploaded.clear()
    report = r.terminal.sync_now()
    assert report.error is None and report.resent == 12 - held_from + 1
    assert backend.uploaded == list(range(held_from, 13))
    assert r.log.lost() == (1, held_from - 1)
    health = json.loads(r.terminal.health.report(log=r.log, unsent=0, uptime_s=0, battery_mv=None,
                                                 battery_low=False))
    assert (health["acked_seq"], health["lost_first"], health["lost_last"]) == (12, 1, held_from - 1)
    # the backend stays behind its gap: the terminal neither re-sends again nor stops reclaiming
    backend.uploaded.clear()
    assert r.terminal.sync_now().error is None and backend.uploaded == []
    assert r.log.acked_seq == 12 and r.log.pending(100) == []


MICROPYTHON_RESEND = """
import sys
sys.path.insert(0, '/scenarios')
import binascii, json
import rig

stored = {}
uploads = []

def acked():
    n = 0
    while n + 1 in stored:
        n += 1
    return n

def backend(method, path, headers, body):
    if method == "POST":
        results = []
        for i, text in enumerate(json.loads(body)["records"]):
            raw = binascii.a2b_base64(text.encode())
            seq = int.from_bytes(raw[8:12], "big")
            uploads.append(seq)
            results.append({"index": i, "seq": seq, "status": "duplicate" if seq in stored else "accepted"})
            stored[seq] = raw
        return 200, json.dumps({"results": results, "acked_seq": acked()}).encode()
    return 200, json.dumps({"v": 3, "server_time": rig.T0, "acked_seq": acked(), "cards_version": 9,
                            "full": True, "more": False, "cards": "", "limits": {},
                            "accreditation": {"active": True, "ends_at": None}}).encode()

r = rig.Rig(transport=backend)
for amount in ('1', '2', '3', '4'):
    assert 'Paiement accepté' in r.pay(amount, rig.CAROL), r.display.text()
    r.keys('V')
r.terminal.sync_now()
del stored[3]
del stored[4]
report = r.terminal.sync_now()
print(report.error, report.resent, sorted(stored), uploads, r.log.acked_seq, r.log.resend_above)
"""


def test_the_re_send_after_a_restore_runs_under_micropython():
    from tests.firmware.mpy_runtime import run
    out = run(MICROPYTHON_RESEND, mounts={ROOT / "tests/firmware/scenarios": "/scenarios"}).split(None, 2)
    assert out[:2] == ["None", "2"]
    assert out[2].split() == ["[1,", "2,", "3,", "4]", "[1,", "2,", "3,", "4,", "3,", "4]", "4", "-1"]
