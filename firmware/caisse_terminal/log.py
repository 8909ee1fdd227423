"""The durable, append-only transaction log.

Flash layout (docs/firmware.md#flash-layout): at most `segments` files named "log" + 6-digit
generation ("log000001", "log000002", ...), each at most `segment_bytes` long, written only by
appending frames:

    type u8 | len u8 | payload (len bytes) | CRC-32 u32 (big-endian, over type, len, payload)

    type  payload                                    when
    HEAD  next_seq u32, acked_seq u32, prev_hash 32  first frame of every segment
    BODY  record body (90)                           a payment/void committed before signing
    REC   full record (154)                          committed already signed (secure element)
    SIG   seq u32, signature 64                      the background signature of a BODY
    ACK   acked_seq u32                              the backend acknowledged up to this seq
    REJ   seq u32, reason u8                         the backend rejected this record
    DAY   day u32, count u32, total_cents i32        day totals carried over a reclaim
    RESEND acked_seq u32, state u8                   the backend answered a lower acked_seq
                                                     (its database was restored): 0 re-send
                                                     above it, 1 re-sent, 2 over (caught up)

Why it survives power cuts:
- A record is committed when its frame is complete and synced; only then does the terminal
  beep. Recovery reads every segment frame by frame and stops at the first frame that is short,
  of the wrong length or with a bad CRC: that is the torn tail of an interrupted write, the
  only thing dropped. Nothing is ever appended after a torn tail: recovery first rewrites the
  head segment without it (copy of the valid prefix, then an atomic rename), so a torn frame
  can never hide frames written after it.
- seq: the protocol forbids gaps, so the next seq is the last committed seq + 1, read back from
  the newest record, or from the newest segment's HEAD when every record was reclaimed (HEAD is
  the persistent high-water mark, and the head segment is never reclaimed). A number is never
  given to two committed records; a torn, never-approved write leaves no number behind.
- Reclaim deletes whole segments, oldest first, only when every record in them is at or below
  the backend's acked_seq and of a day before the newest record's, and never the head segment:
  the day's records stay, since the offline budget counts them (policy.rebuild_spend). It runs
  only while more than half the segments are in use: acknowledged records stay in flash as long
  as there is room, so they can be sent again if the backend's database is restored from a
  backup that lacks them (RESEND below). When all `segments` are in use and the head is full,
  commit() raises LogFull: nothing is ever overwritten.
- Re-sending after a restore: an acked_seq from the backend below the log's own starts a
  re-send (RESEND frame, state 0): pending() returns the records above the backend's value that
  are still in flash, and nothing above it is reclaimed until they were all sent (state 1) or the
  backend caught up (state 2). The log's acked_seq stays the highest the backend ever gave: the
  records the flash no longer holds (`lost()`) can never fill the backend's gap, and waiting for
  them would stop reclaim for good. The last RESEND frame is the state after a reboot, so a power
  cut during a re-send only sends its records once more (the backend answers `duplicate`).
- A write the filesystem refuses (OSError: a full flash, a failing chip) is judged by the file
  itself: if the whole frame landed, it counts; if part of it did, the segment is sealed like a
  torn tail, so the next frame opens a new segment and nothing is ever appended after the
  fragment; a segment whose HEAD did not land is removed (or its number skipped).
- A BODY without its SIG (power cut before the background signature) is listed in `unsigned`
  after recovery and signed again: RFC 6979 makes it the same signature. pending() only returns
  signed records, so nothing unsigned is ever uploaded.
"""

import struct

from . import record

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

try:
    from binascii import crc32 as _crc32
except ImportError:  # a port built without binascii.crc32
    _crc32 = None

T_HEAD = const(1)
T_BODY = const(2)
T_REC = const(3)
T_SIG = const(4)
T_ACK = const(5)
T_REJ = const(6)
T_DAY = const(7)
T_RESEND = const(8)
_SIZES = (0, 40, 90, 154, 68, 4, 5, 12, 5)  # payload size by type
_OVERHEAD = const(6)
_PREFIX = "log"
_REPAIR = "logrepair"  # not a segment name: the copy of a head being cut back to its valid frames
SEGMENT_BYTES = const(32768)
SEGMENTS = const(16)  # 512 KiB of log by default
RESERVE_BYTES = const(1024)  # kept for signatures, acks and marks once payments are refused
_CHUNK = const(1024)
_PAYMENT_BYTES = const(96 + 74)  # BODY frame + its SIG frame
_BODY_SEQ_AT = const(8)  # a record body's seq: bytes 8..12 (record.py)

# Reasons the backend may give (docs/protocol.md), as stored in REJ frames.
REASONS = ("", "malformed", "wrong_terminal", "bad_signature", "seq_conflict", "bad_chain",
           "over_limit", "unknown_card", "card_blocked", "unknown_payment")
# Rejected for these, a record is not stored and sending the same bytes again cannot help: the
# backend holds other bytes at its seq or in its chain, or the terminal id is wrong. `malformed` and
# `bad_signature` judge the bytes that arrived, which a corrupted upload makes differ from those in
# flash: such records are sent again, or one flipped bit would lose a genuine payment for good and
# hold acked_seq (hence reclaim and the offline spend) below it forever.
NOT_RESENT = ("wrong_terminal", "seq_conflict", "bad_chain")

_table = None


def crc32(data, crc: int = 0) -> int:
    if _crc32 is not None:
        return _crc32(data, crc)  # unsigned already; a mask would allocate one more big int
    global _table
    if _table is None:
        _table = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
            _table.append(c)
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


class LogFull(Exception):
    """No room for a payment without overwriting unacknowledged records."""


class _Segment:
    __slots__ = ("gen", "size", "first_seq", "last_seq", "last_day")

    def __init__(self, gen: int, size: int, first_seq: int, last_seq: int, last_day: int) -> None:
        self.gen = gen
        self.size = size
        self.first_seq = first_seq  # the lowest seq a record of this segment can have (its HEAD)
        self.last_seq = last_seq  # highest seq committed in or before this segment
        self.last_day = last_day  # local day of that record


def _name(gen: int) -> str:
    return "%s%06d" % (_PREFIX, gen)


def _u32(buf, at: int) -> int:
    """A big-endian u32 below 2**30 (a seq) without allocating: struct would make a tuple."""
    return (((buf[at] << 8 | buf[at + 1]) << 8 | buf[at + 2]) << 8) | buf[at + 3]


class Log:
    def __init__(self, storage, segment_bytes: int = SEGMENT_BYTES, segments: int = SEGMENTS,
                 tz_offset_s: int = 3600) -> None:
        assert segment_bytes >= 1024 and segments >= 2
        self._storage = storage
        self._segment_bytes = segment_bytes
        self._max_segments = segments
        self._tz_offset_s = tz_offset_s
        self._reserve = min(RESERVE_BYTES, segment_bytes // 4)
        self._frame = bytearray(_OVERHEAD + record.RECORD_SIZE)
        self._frame_mv = memoryview(self._frame)
        self._chunk = bytearray(_CHUNK)
        self._small = bytearray(72)
        self._head = bytearray(40)
        self._reset()

    def _reset(self) -> None:
        self._segs = []
        self._sealed = False  # the head has a torn tail: the next frame opens a new segment
        self.next_seq = 1
        self.prev_hash = record.ZERO_HASH
        self.acked_seq = 0
        self.resend_above = -1  # while re-sending after a restore: the backend's lower acked_seq
        self.resend_done = False  # every record above resend_above still in flash was sent
        self.unsigned = []  # seqs committed as BODY and not yet signed
        self.rejected = {}  # seq -> reason name
        self.last_body = None  # body of the newest record (for void and display)
        self.day = 0
        self.day_count = 0
        self.day_total_cents = 0
        self.torn_tails = 0  # torn frames dropped by the last recovery (diagnostics)
        self.io_errors = 0  # writes the filesystem refused since boot (health report)
        self._last_gen = 0  # highest segment number on flash or tried since

    # ---- recovery ----------------------------------------------------------------------

    def recover(self) -> None:
        """Rebuild the state from flash; drops only torn tails. Call once at boot."""
        self._reset()
        gens = []
        for name in self._storage.names():
            if len(name) == 9 and name.startswith(_PREFIX) and name[3:].isdigit():
                gens.append(int(name[3:]))
        gens.sort()
        self._last_gen = gens[-1] if gens else 0
        for gen in gens:
            name = _name(gen)
            first = True
            first_seq = 0
            for kind in self._frames(name, True):
                if first:
                    if kind != T_HEAD:
                        break
                    first = False
                    first_seq = _u32(self._chunk, self._at)
                self._apply(kind, self._chunk, self._at)
            if first:  # not even a complete HEAD: an interrupted segment creation
                self._storage.remove(name)
                continue
            torn = self._scan_end < self._storage.size(name)
            if torn:
                self.torn_tails += 1
            self._segs.append(_Segment(gen, self._scan_end, first_seq, self.next_seq - 1, self.day))
            self._sealed = torn  # only matters for the newest segment, the head
        self.unsigned = [s for s in self.unsigned if s > self.acked_seq]
        if self._sealed:
            self._repair_head()

    def _repair_head(self) -> None:
        """Cut the torn tail off the head segment, so appending can go on in it.

        The valid prefix is copied to a temporary file, synced, then renamed over the segment
        (atomic): a power cut during the copy leaves the original, and the next boot retries.
        """
        seg = self._segs[-1]
        name = _name(seg.gen)
        self._storage.remove(_REPAIR)
        pos = 0
        while pos < seg.size:
            n = self._storage.readinto(name, pos, self._chunk)
            n = min(n, seg.size - pos)
            self._storage.append(_REPAIR, memoryview(self._chunk)[:n])
            pos += n
        self._storage.sync()
        self._storage.rename(_REPAIR, name)
        self._storage.sync()
        self._sealed = False

    def _apply(self, kind: int, buf, at: int) -> None:
        """Account the frame whose payload is buf[at:] (recovery)."""
        if kind == T_HEAD:
            next_seq, acked = struct.unpack_from(">II", buf, at)
            if next_seq >= self.next_seq:
                self.next_seq = next_seq
                self.prev_hash = bytes(buf[at + 8:at + 40])
            self.acked_seq = max(self.acked_seq, acked)
        elif kind == T_BODY or kind == T_REC:
            body = bytes(buf[at:at + record.BODY_SIZE])
            seq = record.body_seq(body)
            # Frames are appended in seq order, each chained to the previous one.
            assert seq == self.next_seq and record.body_prev_hash(body) == self.prev_hash, seq
            self._advance(body)
            if kind == T_BODY:
                self.unsigned.append(seq)
        elif kind == T_SIG:
            seq = _u32(buf, at)
            if seq in self.unsigned:
                self.unsigned.remove(seq)
        elif kind == T_ACK:
            self.acked_seq = max(self.acked_seq, struct.unpack_from(">I", buf, at)[0])
        elif kind == T_REJ:
            seq = _u32(buf, at)
            code = buf[at + 4]
            self.rejected[seq] = REASONS[code] if code < len(REASONS) else "?"
        elif kind == T_DAY:
            self.day, self.day_count, self.day_total_cents = struct.unpack_from(">IIi", buf, at)
        elif kind == T_RESEND:
            state = buf[at + 4]
            self.resend_above = -1 if state == 2 else _u32(buf, at)
            self.resend_done = state == 1

    def _advance(self, body) -> None:
        """Account a committed body: seq, chain, last record and the day totals."""
        self.next_seq = record.body_seq(body) + 1
        self.prev_hash = record.digest(body)
        self.last_body = body
        kind, time, amount = body[1], struct.unpack_from(">I", body, 12)[0], \
            struct.unpack_from(">I", body, 16)[0]
        day = (time + self._tz_offset_s) // 86400
        if day != self.day:
            self.day, self.day_count, self.day_total_cents = day, 0, 0
        if kind == record.KIND_PAYMENT:
            self.day_count += 1
            self.day_total_cents += amount
        else:
            self.day_count -= 1
            self.day_total_cents -= amount

    def _frames(self, name: str, check: bool):
        """Yield the type of each valid frame of a segment; its payload is in self._chunk from
        self._at until the next one. Sets _scan_end. No allocation per frame (a scan of a full log
        reads 6 000 frames at each upload batch) but the CRC check, made by recovery: the other
        scans read what it validated and what this session appended since.
        """
        size = self._storage.size(name)
        buf = self._chunk
        view = memoryview(buf)
        base = 0  # file offset of buf[0]
        have = 0  # valid bytes in buf
        pos = 0
        self._scan_end = 0
        with self._storage.reader(name) as segment:  # one open file for the whole scan
            while pos < size:
                rel = pos - base
                if rel + 2 > have or rel + _OVERHEAD + buf[rel + 1] > have:
                    base, rel = pos, 0
                    have = segment.readinto(pos, buf)
                    if have < 2:
                        return
                kind, length = buf[rel], buf[rel + 1]
                if kind >= len(_SIZES) or kind == 0 or _SIZES[kind] != length:
                    return
                end = rel + 2 + length
                if end + 4 > have:
                    return
                if check and crc32(view[rel:end]) != struct.unpack_from(">I", buf, end)[0]:
                    return
                pos += _OVERHEAD + length
                self._scan_end = pos
                self._at = rel + 2
                yield kind

    def _scan(self):
        """The frames of every segment, oldest first (as _frames, without the CRC check)."""
        for seg in self._segs:
            yield from self._frames(_name(seg.gen), False)

    def frames(self):
        """Yield (type, payload bytes) of every valid frame, oldest first (tools and tests)."""
        for kind in self._scan():
            yield kind, bytes(self._chunk[self._at:self._at + _SIZES[kind]])

    # ---- appending ---------------------------------------------------------------------

    def _free_bytes(self) -> int:
        free = (self._max_segments - len(self._segs)) * (self._segment_bytes - 46)
        if self._segs and not self._sealed:
            free += self._segment_bytes - self._segs[-1].size
        return free

    def has_room_for_payment(self) -> bool:
        return self._free_bytes() >= _PAYMENT_BYTES + self._reserve

    def _new_segment(self) -> None:
        if len(self._segs) >= self._max_segments:
            raise LogFull()
        self._last_gen += 1
        gen = self._last_gen  # never the number of a fragment left by a refused write
        name = _name(gen)
        head = self._head  # not _small: that may hold the payload waiting for this segment
        struct.pack_into(">II", head, 0, self.next_seq, self.acked_seq)
        head[8:40] = self.prev_hash
        try:
            self._write(name, T_HEAD, memoryview(head)[:40])
        except OSError:
            if not self._landed(name, 0, _OVERHEAD + 40):
                try:
                    self._storage.remove(name)  # a fragment of HEAD only: no record in it
                except OSError:
                    pass  # recovery removes a segment without a complete HEAD
                raise
        self._segs.append(_Segment(gen, _OVERHEAD + 40, self.next_seq, self.next_seq - 1, self.day))
        self._sealed = False

    def _append(self, kind: int, payload) -> None:
        length = _SIZES[kind]
        if (not self._segs or self._sealed
                or self._segs[-1].size + _OVERHEAD + length > self._segment_bytes):
            self._new_segment()
        seg = self._segs[-1]
        name = _name(seg.gen)
        try:
            self._write(name, kind, payload)
        except OSError:
            if not self._landed(name, seg.size, _OVERHEAD + length):
                self._sealed = True  # whatever landed is a torn tail: never append after it
                raise
        seg.size += _OVERHEAD + length

    def _landed(self, name: str, before: int, length: int) -> bool:
        """After a refused write: did the whole frame reach the file anyway?"""
        self.io_errors += 1
        return self._storage.size(name) == before + length

    def _write(self, name: str, kind: int, payload) -> None:
        length = len(payload)
        frame = self._frame
        frame[0] = kind
        frame[1] = length
        frame[2:2 + length] = payload
        struct.pack_into(">I", frame, 2 + length, crc32(self._frame_mv[:2 + length]))
        self._storage.append(name, self._frame_mv[:_OVERHEAD + length])

    def commit(self, body, signature=None) -> None:
        """Durably append a record body (and its signature if already made), then sync.

        body: 90 bytes packed with seq == next_seq and prev_hash == self.prev_hash.
        Raises LogFull when there is no room; then nothing is written.
        """
        assert record.body_seq(body) == self.next_seq
        assert record.body_prev_hash(body) == self.prev_hash
        if not self.has_room_for_payment():
            raise LogFull()
        if signature is None:
            self._append(T_BODY, body)  # OSError: the frame did not land, nothing committed
        else:
            frame = self._small_record(body, signature)
            self._append(T_REC, frame)
        self._segs[-1].last_seq = record.body_seq(body)
        body = bytes(body)
        self._advance(body)
        self._segs[-1].last_day = self.day
        if signature is None:
            self.unsigned.append(record.body_seq(body))
        try:
            self._storage.sync()
        except OSError:
            # The frame is in the file, so it is committed: the next boot will read it, and a
            # second record with this seq would break the chain.
            self.io_errors += 1

    def _small_record(self, body, signature) -> bytes:
        return bytes(body) + bytes(signature)

    def sign_pending(self, signer, limit: int = 8) -> int:
        """Sign up to `limit` committed-but-unsigned records; return how many were signed."""
        done = 0
        while self.unsigned and done < limit:
            seq = self.unsigned[0]
            body = self.last_body if seq == self.next_seq - 1 else self._find_body(seq)
            assert body is not None and record.body_seq(body) == seq
            sig = signer.sign_digest(record.digest(body))
            payload = self._small
            struct.pack_into(">I", payload, 0, seq)
            payload[4:68] = sig
            self._append(T_SIG, memoryview(payload)[:68])
            self._storage.sync()
            self.unsigned.pop(0)
            done += 1
        return done

    def _find_body(self, seq: int):
        buf = self._chunk
        for kind in self._scan():
            at = self._at
            if (kind == T_BODY or kind == T_REC) and _u32(buf, at + _BODY_SEQ_AT) == seq:
                return bytes(buf[at:at + record.BODY_SIZE])
        return None

    # ---- upload and reclaim ------------------------------------------------------------

    def pending(self, limit: int, after_seq: int = 0, until_seq: int = 0) -> "list[bytes]":
        """Up to `limit` signed records above acked_seq and after_seq (and up to until_seq if
        given), in seq order, for upload. During a re-send, "above acked_seq" is above the
        backend's lower value.

        Skips records the backend refused for a reason that re-sending cannot change (NOT_RESENT)
        and unsigned ones (sign_pending first). Copies only the records it returns.
        """
        records = {}  # seq -> the record, its signature filled in when its SIG frame comes
        signed = set()
        floor = max(self._reclaim_floor(), after_seq)
        buf = self._chunk
        for kind in self._scan():
            at = self._at
            if kind == T_BODY or kind == T_REC:
                seq = _u32(buf, at + _BODY_SEQ_AT)
                if seq <= floor or len(records) >= limit or (until_seq and seq > until_seq):
                    continue
                if self.rejected and self.rejected.get(seq) in NOT_RESENT:
                    continue
                rec = records[seq] = bytearray(record.RECORD_SIZE)
                rec[:_SIZES[kind]] = memoryview(buf)[at:at + _SIZES[kind]]
                if kind == T_REC:
                    signed.add(seq)
            elif kind == T_SIG:
                seq = _u32(buf, at)
                rec = records.get(seq)
                if rec is not None:
                    rec[record.BODY_SIZE:] = memoryview(buf)[at + 4:at + 68]
                    signed.add(seq)
        return [records[s] for s in sorted(records) if s in signed]

    def bodies(self):
        """Yield the body of every record still in the log, oldest first (to rebuild offline spend)."""
        buf = self._chunk
        for kind in self._scan():
            if kind == T_BODY or kind == T_REC:
                yield bytes(buf[self._at:self._at + record.BODY_SIZE])

    def mark_rejected(self, seq: int, reason: str) -> None:
        if self.rejected.get(seq) == reason:
            return
        code = REASONS.index(reason) if reason in REASONS else 0
        payload = self._small
        struct.pack_into(">IB", payload, 0, seq, code)
        self._append(T_REJ, memoryview(payload)[:5])
        self._storage.sync()
        self.rejected[seq] = reason

    def acknowledge(self, acked_seq: int, now: "int | None" = None) -> int:
        """Record the backend's acked_seq and reclaim what it covers; return segments freed.

        A value below the log's own starts a re-send (see the module docstring). Segments are
        reclaimed only while more than half are in use, and those holding a record of the local
        day of `now` (the terminal's clock; without it, the newest record's day) stay: the
        offline budget counts the day's records.
        """
        acked_seq = min(acked_seq, self.next_seq - 1)
        if acked_seq < self.acked_seq:
            if acked_seq != self.resend_above:
                self._write_resend(acked_seq, 0)
            return 0
        payload = self._small
        written = acked_seq > self.acked_seq
        if written:
            struct.pack_into(">I", payload, 0, acked_seq)
            self._append(T_ACK, memoryview(payload)[:4])
            self.acked_seq = acked_seq
        if self.resend_above >= 0:  # the backend caught up: the re-send is over
            self._write_resend(acked_seq, 2)
        keep_day = self.day if now is None else (now + self._tz_offset_s) // 86400
        floor = self._reclaim_floor()
        freed = 0
        while (len(self._segs) > max(1, self._max_segments // 2) and self._segs[0].last_seq <= floor
               and self._segs[0].last_day < keep_day):
            if freed == 0:  # the totals of the day must outlive the records they count
                struct.pack_into(">IIi", payload, 0, self.day, self.day_count,
                                 self.day_total_cents)
                self._append(T_DAY, memoryview(payload)[:12])
                self._storage.sync()
            self._storage.remove(_name(self._segs[0].gen))
            gone = self._segs.pop(0).last_seq
            freed += 1
            written = True
            for seq in [s for s in self.rejected if s <= gone]:
                del self.rejected[seq]  # its REJ frame went with the segment
        if written:
            self._storage.sync()
        return freed

    def _reclaim_floor(self) -> int:
        """The highest seq that needs no sending: records above it are uploaded, and kept."""
        if self.resend_above >= 0 and not self.resend_done:
            return self.resend_above
        return self.acked_seq

    def _write_resend(self, acked_seq: int, state: int) -> None:
        payload = self._small
        struct.pack_into(">IB", payload, 0, acked_seq, state)
        self._append(T_RESEND, memoryview(payload)[:5])
        self._storage.sync()
        self.resend_above = -1 if state == 2 else acked_seq
        self.resend_done = state == 1

    def resending(self) -> bool:
        """A re-send after a restore is under way: pending() returns records already acknowledged."""
        return self.resend_above >= 0 and not self.resend_done

    def resent(self) -> None:
        """Every record above the backend's lower acked_seq still in flash was uploaded."""
        if self.resending():
            self._write_resend(self.resend_above, 1)

    def lost(self):
        """(first, last) seqs the backend lacks that this flash no longer holds, or None.

        Only known during a re-send: the backend's acked_seq then says where its gap starts.
        """
        if self.resend_above < 0:
            return None
        held_from = self._segs[0].first_seq if self._segs else self.next_seq
        if held_from <= self.resend_above + 1:
            return None
        return self.resend_above + 1, held_from - 1

    def day_summary(self, now: int):
        """(payments minus voids, net total cents) of the local day of `now`."""
        if (now + self._tz_offset_s) // 86400 != self.day:
            return 0, 0
        return self.day_count, self.day_total_cents

    def stats(self) -> dict:
        return {"segments": len(self._segs), "free_bytes": self._free_bytes(),
                "capacity_bytes": self._max_segments * (self._segment_bytes - 46),
                "next_seq": self.next_seq, "acked_seq": self.acked_seq,
                "unsigned": len(self.unsigned), "rejected": len(self.rejected),
                "resend_above": self.resend_above}
