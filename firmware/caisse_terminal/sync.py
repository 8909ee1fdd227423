"""Sync client: upload the log, then fetch cards, clock and limits (docs/protocol.md).

The network is one callable, so tests pass a fake and the demo a real HTTP client:

    transport(method: str, path: str, headers: dict, body: bytes | None) -> (status, body bytes)

It raises OSError when the network is down. Order of one sync():
1. sign what is unsigned (nothing unsigned is ever uploaded);
2. POST the pending records in batches; a rejection is written to the log (REJ frame) and
   reported; a record refused as seq_conflict, bad_chain or wrong_terminal is not sent again
   (log.NOT_RESENT), one refused as malformed or bad_signature is (the upload may have been
   corrupted on the way);
3. GET /sync?v=3 (signed, with the 401 clock_skew dance; it tells the firmware version and, on the
   first page, carries the `extra_headers(now)` of the terminal: its signed health report), merge the
   card entries, set the clock, limits and accreditation, and only then acknowledge acked_seq
   to the log: the balances and the reclaim are from the same answer, so the offline spend never
   forgets a record the balance lacks. An acked_seq below the log's own (the backend's database was
   restored from a backup) starts a re-send: the records above it still in flash are uploaded
   again at once (log.py, RESEND), each counted once by the backend, and the sync answer is
   fetched again, so acked_seq and the balances count them;
4. POST the wrong member-code counts (code-failures, signed), forgotten after a 200.
After a failure, sync is retried with exponential backoff (due()).

A sync answer is read as a stream (page.py) when the transport has open(method, path, headers,
body) -> (status, stream with readinto and close), as HttpTransport does; a plain transport's
bytes are read the same way. steps() is the sync as a generator: one step per upload batch,
chunk of an answer and bucket of the card table, for a caller that wants to do something
between them (the heap measurement, docs/performance.md).
"""

import binascii
import hashlib
import io
import json
import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

from . import VERSION, record
from .cards import PageTooLarge
from .clock import ticks_add, ticks_diff
from .page import AnswerError, PageReader
from .policy import CODE_FAILURE_SIZE

BATCH_RECORDS = const(32)  # the protocol allows 256; 32 keeps the request under 8 KB of RAM
MAX_PAGES = const(64)  # card pages per sync (512 entries each)
SYNC_VERSION = const(3)  # the sync format asked for (docs/protocol.md): v2's entries, the table's
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
        self.resent = 0  # records sent again because the backend's database lost them
        self.error: str | None = None

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
        self._reader = None  # the sync answer reader, during a sync

    # ---- scheduling ----------------------------------------------------------------------

    def due(self) -> bool:
        """False while backing off after a failure."""
        return self._retry_at_ms is None or ticks_diff(self._clock.ticks_ms(), self._retry_at_ms) >= 0

    def backoff_s(self) -> int:
        return min(BACKOFF_MAX_S, BACKOFF_MIN_S << min(self.failures - 1, 10)) if self.failures else 0

    # ---- one sync ------------------------------------------------------------------------

    def sync(self, between=None) -> Report:
        """One sync; between() runs after each step (the terminal's pump: keys and watchdog
        through a page's merge of several seconds)."""
        report = Report()
        for _ in self.steps(report):
            if between is not None:
                between()
        return report

    def steps(self, report: Report):
        """One sync as a generator (see the module docstring); it fills `report`."""
        try:
            self._log.sign_pending(self._signer, limit=1000)
            yield from self._upload(report)
            yield from self._fetch(report)
            if self._log.resending():  # the backend lost records it had acknowledged
                yield from self._upload(report, self._log.acked_seq)
                yield from self._fetch(report)  # its acked_seq and balances now count them
            self._report_code_failures(report)
        except (OSError, SyncError, ValueError, KeyError) as e:
            report.error = "%s: %s" % (type(e).__name__, e)
            self.failures += 1
            self._retry_at_ms = ticks_add(self._clock.ticks_ms(), self.backoff_s() * 1000)
        else:
            self.failures = 0
            self._retry_at_ms = None
        self._policy.cards.release()  # the page buffers go back to the heap until the next sync
        self._reader = None

    def _path(self, tail: str) -> str:
        return "/v1/terminals/%d/%s" % (self._policy.terminal_id, tail)

    def _upload(self, report: Report, resend_until: int = 0):
        """Send the pending records; with resend_until, only those up to it (a re-send after a
        restore: the records above were sent by the first upload of this sync)."""
        after = 0  # each record is sent once per sync, even when the backend rejects it
        while True:
            batch = self._log.pending(self._batch, after, resend_until)
            if not batch:
                self._log.resent()  # a re-send after a restore is complete (no-op otherwise)
                return
            seqs = [record.body_seq(r) for r in batch]
            after = seqs[-1]
            status, raw = self._post(self._path("batches"), {"Content-Type": "application/json"},
                                     _RecordsBody(batch))
            batch = None  # the answer's results come next: keep one of the two in RAM
            if status != 200:
                raise SyncError("upload %d %s" % (status, _error_code(raw)))
            answer = json.loads(raw)
            report.uploaded += len(seqs)
            if resend_until:
                report.resent += len(seqs)
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
            answer = raw = None  # not kept alive while the caller runs between steps
            yield

    def _fetch(self, report: Report):
        policy = self._policy
        table = policy.cards
        reader = self._reader
        if reader is None:
            reader = self._reader = PageReader()
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
            path = self._path("sync?since=%d&v=%d" % (since, SYNC_VERSION))
            status, stream = self._open("GET", path, headers)
            try:
                if status != 200:
                    raw = _read_small(stream)
                    if status == 401 and _error_code(raw) == "clock_skew" and skew_retries < 2:
                        skew_retries += 1
                        self._clock.set(int(json.loads(raw)["server_time"]))
                        continue
                    raise SyncError("sync %d %s" % (status, _error_code(raw)))
                table.begin()
                try:
                    yield from reader.read(stream, table)
                except (AnswerError, PageTooLarge) as e:  # cut or garbled: keep the table we have
                    raise SyncError("cards: %s" % e) from e
            finally:
                stream.close()  # before the flash work: the socket (and TLS) memory goes back
            answer = reader.answer
            if answer.get("v") != SYNC_VERSION:  # a v1 answer's 32-byte entries would be misread
                raise SyncError("sync: not a v3 answer")
            policy.set_accreditation(answer["accreditation"])
            pages += 1
            cards_version = answer["cards_version"]
            server_time = int(answer["server_time"])
            received = table.received
            yield from policy.apply_page(bool(answer.get("full")))
            report.cards += received
            policy.cards_version = cards_version
            policy.limits.update(answer.get("limits") or {})
            self._clock.set(server_time)
            policy.last_sync = server_time
            if first_acked is None:
                first_acked = int(answer.get("acked_seq", 0))
            if not answer.get("more"):
                break
        table.release()  # the page buffers go back before the spend is rebuilt
        self._reader = None
        yield
        policy.save()
        if first_acked is not None:
            # Balances of this answer count the records up to its acked_seq: reclaim those.
            self._log.acknowledge(first_acked, self._clock.now())  # today's records stay: the budget counts them
            report.acked_seq = max(report.acked_seq, first_acked)
        yield from policy.rebuild_spend_steps()

    def _post(self, path: str, headers: dict, body) -> tuple:
        """POST a body that writes itself (length, write_to) as it goes out: the transport's
        open() streams it, a plain transport gets its bytes."""
        opener = getattr(self._transport, "open", None)
        if opener is None:
            out = bytearray()
            body.write_to(out.extend)
            return self._transport("POST", path, headers, bytes(out))
        status, stream = opener("POST", path, headers, body)
        try:
            return status, _read_small(stream)
        finally:
            stream.close()

    def _open(self, method: str, path: str, headers: dict, body=None):
        """(status, stream): the transport's own stream, or its bytes as one."""
        opener = getattr(self._transport, "open", None)
        if opener is not None:
            return opener(method, path, headers, body)
        status, raw = self._transport(method, path, headers, body)
        return status, io.BytesIO(raw)

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


class _RecordsBody:
    """{"records": ["<base64>", ...]} of an upload batch, encoded record by record as it is sent:
    the request is never whole in RAM (32 records are 7 KB of JSON)."""

    def __init__(self, records) -> None:
        self._records = records
        # each record: 4 base64 characters per 3 bytes, quoted, separated by commas
        self.length = len(_RECORDS_OPEN) + len(_RECORDS_CLOSE) + sum(
            4 * ((len(r) + 2) // 3) + 3 for r in records) - (1 if records else 0)

    def write_to(self, write) -> None:
        out = bytearray(3 + 4 * ((record.RECORD_SIZE + 2) // 3))  # ,"<base64>" of one record
        view = memoryview(out)
        write(_RECORDS_OPEN)
        for i, r in enumerate(self._records):
            out[0] = 0x2C  # ,
            out[1] = 0x22  # "
            n = _b64_into(r, out, 2)
            out[n] = 0x22
            write(view[0 if i else 1:n + 1])
        write(_RECORDS_CLOSE)


_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64_into(data, out, at: int) -> int:
    """Base64 of data into out from `at`; the end. Into a reused buffer: binascii would make a
    new object per record (7 KB a batch; ~1.5 ms a record on the ESP32)."""
    n = len(data)
    i = 0
    while i + 3 <= n:
        v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2]
        out[at] = _B64[v >> 18]
        out[at + 1] = _B64[(v >> 12) & 63]
        out[at + 2] = _B64[(v >> 6) & 63]
        out[at + 3] = _B64[v & 63]
        i += 3
        at += 4
    if i < n:
        v = data[i] << 16 | (data[i + 1] << 8 if i + 1 < n else 0)
        out[at] = _B64[v >> 18]
        out[at + 1] = _B64[(v >> 12) & 63]
        out[at + 2] = _B64[(v >> 6) & 63] if i + 1 < n else 0x3D
        out[at + 3] = 0x3D
        at += 4
    return at


_RECORDS_OPEN = b'{"records": ['
_RECORDS_CLOSE = b"]}"


def _read_small(stream, limit: int = 16384) -> bytearray:
    """A short answer's body: an upload's results (~2 KB for 32 records) or an error."""
    out = bytearray(1024)
    n = 0
    while n < limit:
        if n == len(out):
            out.extend(bytes(len(out)))  # grows in place when it can: no copy
        got = stream.readinto(memoryview(out)[n:])
        if not got:
            break
        n += got
    return out[:n] if n < len(out) else out


def _error_code(raw) -> str:
    try:
        return json.loads(raw).get("error", "")
    except (ValueError, AttributeError):
        return ""
