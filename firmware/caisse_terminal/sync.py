"""Sync client: upload the log, then fetch cards, clock and limits (docs/protocol.md).

The network is one callable, so tests pass a fake and the demo a real HTTP client:

    transport(method: str, path: str, headers: dict, body: bytes | None) -> (status, body bytes)

It raises OSError when the network is down. Order of one sync():
1. sign what is unsigned (nothing unsigned is ever uploaded);
2. POST the pending records in batches; a rejection is written to the log (REJ frame) and
   reported; a record refused as seq_conflict, bad_chain or wrong_terminal is not sent again
   (log.NOT_RESENT), one refused as malformed or bad_signature is (the upload may have been
   corrupted on the way);
3. GET /sync?v=2 (signed, with the 401 clock_skew dance; it tells the firmware version and, on the
   first page, carries the `extra_headers(now)` of the terminal: its signed health report), merge the
   card entries, set the clock and limits, and only then acknowledge acked_seq to the log: the
   balances and the reclaim are from the same answer, so the offline spend never forgets a
   record the balance lacks;
4. POST the wrong member-code counts (code-failures, signed), forgotten after a 200.
After a failure, sync is retried with exponential backoff (due()).
"""

import binascii
import hashlib
import json
import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

from . import VERSION, record
from .clock import ticks_add, ticks_diff
from .policy import CODE_FAILURE_SIZE, ENTRY_SIZE

BATCH_RECORDS = const(32)  # the protocol allows 256; 32 keeps the request under 8 KB of RAM
MAX_PAGES = const(64)  # card pages per sync (512 entries each)
BACKOFF_MIN_S = const(15)
BACKOFF_MAX_S = const(900)
SYNC_DOMAIN = b"caisse-sync-v1"
CODE_FAILURES_DOMAIN = b"caisse-code-failures-v1"


class SyncError(Exception):
    """The backend answered something the terminal cannot use (status, error code)."""


def sync_digest(terminal_id: int, time: int, since: int) -> bytes:
    return hashlib.sha256(SYNC_DOMAIN + struct.pack(">III", terminal_id, time, since)).digest()


def code_failures_digest(terminal_id: int, time: int, body: bytes) -> bytes:
    message = CODE_FAILURES_DOMAIN + struct.pack(">II", terminal_id, time) + hashlib.sha256(body).digest()
    return hashlib.sha256(message).digest()


class Report:
    """What one sync did; shown in the vendor menu and logged."""

    def __init__(self) -> None:
        self.uploaded = 0
        self.accepted = 0
        self.duplicates = 0
        self.rejected = []  # (seq, reason)
        self.acked_seq = 0
        self.cards = 0
        self.code_failures = 0  # cards whose wrong member codes were reported
        self.error: "str | None" = None

    def __repr__(self) -> str:
        return "Report(uploaded=%d accepted=%d duplicates=%d rejected=%r acked=%d cards=%d error=%r)" % (
            self.uploaded, self.accepted, self.duplicates, self.rejected, self.acked_seq,
            self.cards, self.error)


class SyncClient:
    def __init__(self, transport, log, policy, signer, clock, batch_records: int = BATCH_RECORDS,
                 extra_headers=None):
        self._transport = transport
        self._log = log
        self._policy = policy
        self._signer = signer
        self._clock = clock
        self._batch = batch_records
        self._extra_headers = extra_headers  # callable(now) -> dict, for the first /sync page
        self.failures = 0
        self._retry_at_ms = None

    # ---- scheduling ----------------------------------------------------------------------

    def due(self) -> bool:
        """False while backing off after a failure."""
        return self._retry_at_ms is None or ticks_diff(self._clock.ticks_ms(), self._retry_at_ms) >= 0

    def backoff_s(self) -> int:
        return min(BACKOFF_MAX_S, BACKOFF_MIN_S << min(self.failures - 1, 10)) if self.failures else 0

    # ---- one sync ------------------------------------------------------------------------

    def sync(self) -> Report:
        report = Report()
        try:
            self._log.sign_pending(self._signer, limit=1000)
            self._upload(report)
            self._fetch(report)
            self._report_code_failures(report)
        except (OSError, SyncError, ValueError, KeyError) as e:
            report.error = "%s: %s" % (type(e).__name__, e)
            self.failures += 1
            self._retry_at_ms = ticks_add(self._clock.ticks_ms(), self.backoff_s() * 1000)
            return report
        self.failures = 0
        self._retry_at_ms = None
        return report

    def _path(self, tail: str) -> str:
        return "/v1/terminals/%d/%s" % (self._policy.terminal_id, tail)

    def _upload(self, report: Report) -> None:
        after = 0  # each record is sent once per sync, even when the backend rejects it
        while True:
            batch = self._log.pending(self._batch, after)
            if not batch:
                return
            seqs = [record.body_seq(r) for r in batch]
            after = seqs[-1]
            body = json.dumps({"records": [binascii.b2a_base64(r).decode().strip() for r in batch]})
            status, raw = self._transport("POST", self._path("batches"),
                                          {"Content-Type": "application/json"}, body.encode())
            if status != 200:
                raise SyncError("upload %d %s" % (status, _error_code(raw)))
            answer = json.loads(raw)
            report.uploaded += len(batch)
            for result in answer["results"]:
                outcome = result["status"]
                seq = seqs[result["index"]]
                if outcome == "accepted":
                    report.accepted += 1
                elif outcome == "duplicate":
                    report.duplicates += 1
                else:
                    reason = result.get("reason", "?")
                    self._log.mark_rejected(seq, reason)
                    report.rejected.append((seq, reason))
            report.acked_seq = max(report.acked_seq, answer.get("acked_seq", 0))

    def _fetch(self, report: Report) -> None:
        policy = self._policy
        first_acked = None
        skew_retries = 0
        pages = 0
        while pages < MAX_PAGES:
            since = policy.cards_version
            now = self._clock.now()
            sig = self._signer.sign_digest(sync_digest(policy.terminal_id, now, since))
            headers = {"X-Caisse-Time": str(now),
                       "X-Caisse-Signature": binascii.hexlify(sig).decode(),
                       "X-Caisse-Firmware": VERSION}  # informational: not signed
            if pages == 0 and self._extra_headers is not None:
                headers.update(self._extra_headers(now))
            status, raw = self._transport("GET", self._path("sync?since=%d&v=2" % since), headers, None)
            if status == 401 and _error_code(raw) == "clock_skew" and skew_retries < 2:
                skew_retries += 1
                self._clock.set(int(json.loads(raw)["server_time"]))
                continue
            if status != 200:
                raise SyncError("sync %d %s" % (status, _error_code(raw)))
            answer = json.loads(raw)
            del raw  # a page is ~22 KB of base64: hold it as few times as the heap allows
            if answer.get("v") != 2:  # a v1 answer's 32-byte entries would be misread as v2's
                raise SyncError("sync: not a v2 answer")
            pages += 1
            packed = _decode_base64(answer.pop("cards", None) or "")
            if len(packed) % ENTRY_SIZE:  # cut or garbled: keep the table we have
                raise SyncError("cards: %d bytes is not whole entries" % len(packed))
            policy.apply_cards(packed, bool(answer.get("full")))
            report.cards += len(packed) // ENTRY_SIZE
            policy.cards_version = answer["cards_version"]
            policy.limits.update(answer.get("limits") or {})
            self._clock.set(int(answer["server_time"]))
            policy.last_sync = int(answer["server_time"])
            if first_acked is None:
                first_acked = int(answer.get("acked_seq", 0))
            if not answer.get("more"):
                break
        policy.save()
        if first_acked is not None:
            # Balances of this answer count the records up to its acked_seq: reclaim those.
            self._log.acknowledge(first_acked, self._clock.now())  # today's records stay: the budget counts them
            report.acked_seq = max(report.acked_seq, first_acked)
        policy.rebuild_spend()

    def _report_code_failures(self, report: Report) -> None:
        """POST the wrong-code counts (after the fetch: the clock is the server's by then)."""
        policy = self._policy
        body = policy.code_failures()
        if not body:
            return
        now = self._clock.now()
        sig = self._signer.sign_digest(code_failures_digest(policy.terminal_id, now, body))
        headers = {"Content-Type": "application/octet-stream", "X-Caisse-Time": str(now),
                   "X-Caisse-Signature": binascii.hexlify(sig).decode()}
        status, raw = self._transport("POST", self._path("code-failures"), headers, body)
        if status != 200:
            raise SyncError("code-failures %d %s" % (status, _error_code(raw)))
        policy.forget_reported_codes()
        report.code_failures = len(body) // CODE_FAILURE_SIZE


def _decode_base64(text: str) -> bytes:
    """The ESP32's C binascii decodes the str itself, sparing a ~22 KB copy of a page; the Python
    binascii of ports without the C module (WebAssembly) takes only bytes: a copy there alone."""
    try:
        return binascii.a2b_base64(text)
    except TypeError:
        return binascii.a2b_base64(text.encode())


def _error_code(raw) -> str:
    try:
        return json.loads(raw).get("error", "")
    except (ValueError, AttributeError):
        return ""
