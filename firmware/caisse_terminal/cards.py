"""The card table in flash: the sync's card entries, found by UID, updated in place.

An entry is ENTRY_SIZE bytes, the v2 sync entry (docs/protocol.md): uid_len u8, uid 10 (zero
padded), status u8, balance_cents i32 BE, code_salt 8, code_verifier 8, household u32 BE. Its
first KEY_SIZE bytes are the card's key.

Layout: BUCKETS small files "cards00".."cards7f"; a card lives in the bucket its key hashes to,
each bucket sorted by key. A lookup is one binary search in one small file (no RAM beyond one
entry). A sync page rewrites only the buckets its cards fall in: on LittleFS a file is
copy-on-write and rewriting it costs its own blocks (about one 4 KiB erase for a bucket of up to
113 cards, 14 000 cards in all), where the single sorted file it replaces was rewritten whole,
80 erases for 10 000 cards, on every page (docs/performance.md, "Card table").

Receiving a page: begin(), add() each entry as it is decoded, then commit(full), a generator
that merges bucket after bucket (the sync yields between them). The first RAM_ENTRIES entries
stay in RAM; a bigger page spills to the staging file "cards.pg" in flash, so a page is never
whole in RAM. Nothing is applied before commit(), so a cut or garbled answer changes nothing.
A power cut during commit() leaves every bucket either old or new (rename is atomic): each card
has one of its two entries, and the cards version, saved only after the whole sync, makes the
next sync ask for the same page again.
"""

import struct
from array import array

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

ENTRY_SIZE = const(36)
KEY_SIZE = const(11)
STATUS_AT = const(11)
BALANCE_AT = const(12)
CODE_SALT_AT = const(16)
CODE_VERIFIER_AT = const(24)
HOUSEHOLD_AT = const(32)
BUCKETS = const(128)  # a power of two: bucket = hash & (BUCKETS - 1)
PAGE_ENTRIES = const(512)  # the most entries one sync answer may carry (docs/protocol.md)
RAM_ENTRIES = const(64)  # entries of a page kept in RAM (2.3 KB) before it spills to flash
LEGACY_FILE = "cards.bin"  # the table of older firmware: one sorted file (32-byte v1 entries in 0.1)
LEGACY_ENTRY_SIZE = const(32)
LEGACY_HOUSEHOLD = const(0x3F000000)  # + the entry's place: a household of its own until the full sync
_PREFIX = "cards"
_STAGE = "cards.pg"
_TMP = "cards.tmp"
_OUT_ENTRIES = const(16)  # entries per copy of a bucket being rewritten


def card_key(uid, buf) -> None:
    """The KEY_SIZE-byte key of a UID into buf: its length, then the UID zero padded."""
    n = len(uid)
    buf[0] = n
    buf[1:1 + n] = uid
    for i in range(1 + n, KEY_SIZE):
        buf[i] = 0


def bucket_of(buf, at: int) -> int:
    """The bucket of the key at buf[at:at + KEY_SIZE]. Spreads random and consecutive UIDs alike
    (10 000 cards: at most ~100 a bucket); every product stays below 2**30, a small int."""
    h = 0
    for i in range(at, at + KEY_SIZE):
        h = ((h ^ buf[i]) * 0x6F5) & 0x3FFFF
    h ^= h >> 7
    h ^= h >> 13
    return h & (BUCKETS - 1)


def bucket_name(bucket: int) -> str:
    return "%s%02x" % (_PREFIX, bucket)


def compare_keys(a, at: int, b, bt: int) -> int:
    """-1, 0 or 1: the key at a[at:] against the key at b[bt:]."""
    for i in range(KEY_SIZE):
        x, y = a[at + i], b[bt + i]
        if x != y:
            return -1 if x < y else 1
    return 0


class PageTooLarge(ValueError):
    """More entries than PAGE_ENTRIES in one sync answer."""


class CardTable:
    def __init__(self, storage) -> None:
        self._storage = storage
        self._key = bytearray(KEY_SIZE)
        self._n = 0  # entries received in the page being received
        self._staged = 0  # of which in the staging file
        self._pb = None  # _PageBuffers while pages are received (a sync), else None
        self._stage = None  # the staging file's Writer while a big page is received

    # ---- lookup (the tap path) -----------------------------------------------------------

    def find(self, uid, entry) -> bool:
        """Binary search of the card's bucket; on success its entry is in `entry`."""
        key = self._key
        card_key(uid, key)
        name = bucket_name(bucket_of(key, 0))
        lo, hi = 0, self._storage.size(name) // ENTRY_SIZE
        if hi <= 0:
            return False
        with self._storage.reader(name) as bucket:
            while lo < hi:
                mid = (lo + hi) // 2
                bucket.readinto(mid * ENTRY_SIZE, entry)
                c = compare_keys(entry, 0, key, 0)
                if c == 0:
                    return True
                if c < 0:
                    lo = mid + 1
                else:
                    hi = mid
        return False

    def count(self) -> int:
        total = 0
        for b in range(BUCKETS):
            size = self._storage.size(bucket_name(b))
            if size > 0:
                total += size // ENTRY_SIZE
        return total

    def entries(self):
        """Every entry (bytes), bucket after bucket, each bucket in key order (tests, tools)."""
        for b in range(BUCKETS):
            data = self._storage.read(bucket_name(b)) or b""
            for at in range(0, len(data), ENTRY_SIZE):
                yield data[at:at + ENTRY_SIZE]

    def clear(self) -> None:
        for b in range(BUCKETS):
            self._storage.remove(bucket_name(b))
        self._storage.remove(_STAGE)
        self._storage.remove(_TMP)
        self._storage.sync()

    # ---- receiving a page ----------------------------------------------------------------

    def begin(self) -> None:
        """Start receiving a page (forgets one received but not committed)."""
        self._close_stage()
        self._buffers()
        self._n = self._staged = 0

    def release(self) -> None:
        """Give the page buffers back to the heap (after a sync: taps do not need them)."""
        self._close_stage()
        self._pb = None

    def _close_stage(self) -> None:
        if self._stage is not None:
            self._stage.close()
            self._stage = None

    def _buffers(self) -> "_PageBuffers":
        if self._pb is None:
            self._pb = _PageBuffers()
        return self._pb

    @property
    def received(self) -> int:
        return self._n

    def add(self, entry) -> None:
        """Receive one entry; a shorter one (v1: 32 bytes) is padded with zeros."""
        if self._n >= PAGE_ENTRIES:
            raise PageTooLarge("more than %d cards in one answer" % PAGE_ENTRIES)
        pb = self._buffers()
        ram = pb.ram
        slot = self._n - self._staged
        if slot == RAM_ENTRIES:  # spill the RAM part to flash, the staging file kept open
            if self._stage is None:
                self._stage = self._storage.writer(_STAGE)
            self._stage.write(ram)
            self._staged += RAM_ENTRIES
            slot = 0
        at = slot * ENTRY_SIZE
        size = len(entry)
        ram[at:at + size] = entry
        for i in range(at + size, at + ENTRY_SIZE):
            ram[i] = 0
        pb.bucket[self._n] = bucket_of(ram, at)
        self._n += 1

    def commit(self, full: bool, on_entry=None):
        """Apply the received page: a generator, one bucket merged per step.

        full: the page replaces the table (every bucket is emptied first). on_entry(buf, at) is
        called for each entry written from the page (the policy lifts code locks there).
        """
        n = self._n
        storage = self._storage
        pb = self._buffers()
        if self._stage is not None:  # the whole page in the staging file, read back through one reader
            self._stage.write(memoryview(pb.ram)[:(n - self._staged) * ENTRY_SIZE])
            self._close_stage()
            storage.sync()
        if full:
            for b in range(BUCKETS):
                storage.remove(bucket_name(b))
            storage.sync()
            yield
        _group_by_bucket(pb, n)
        first = pb.first
        source = storage.reader(_STAGE) if self._staged else None
        try:
            for b in range(BUCKETS):
                start, end = first[b], first[b + 1]
                while start < end:  # more than RAM_ENTRIES cards in one bucket: in rounds
                    stop = min(end, start + RAM_ENTRIES)
                    self._merge(pb, b, start, stop, source, on_entry)
                    start = stop
                    yield
        finally:
            if source is not None:
                source.close()
        if self._staged:
            storage.remove(_STAGE)
        self._n = self._staged = 0

    def _merge(self, pb, b: int, start: int, stop: int, source, on_entry) -> None:
        """Rewrite bucket b with the entries order[start:stop] of the page merged in.

        The new entries are sorted (a few per bucket); each finds its place in the old bucket by
        binary search, and the old entries between are copied in chunks: Python work per new
        entry, not per entry of the bucket.
        """
        work, order, perm = pb.work, pb.order, pb.perm
        count = stop - start
        # 1. this bucket's new entries into `work`, perm = their order by key (insertion sort:
        #    stable, so of two entries for one card the later one comes last, and wins below)
        for k in range(count):
            i = order[start + k]
            at = k * ENTRY_SIZE
            if source is None:
                work[at:at + ENTRY_SIZE] = memoryview(pb.ram)[i * ENTRY_SIZE:(i + 1) * ENTRY_SIZE]
            else:
                source.readinto(i * ENTRY_SIZE, memoryview(work)[at:at + ENTRY_SIZE])
            j = k
            while j and compare_keys(work, perm[j - 1] * ENTRY_SIZE, work, at) > 0:
                perm[j] = perm[j - 1]
                j -= 1
            perm[j] = k
        # 2. the old bucket, with the new entries put in, into the temporary file; rename over it
        storage = self._storage
        name = bucket_name(b)
        old_count = max(0, storage.size(name)) // ENTRY_SIZE
        old = storage.reader(name) if old_count else _NO_FILE
        new = storage.writer(_TMP)  # one open file: one erase per 4 KB block, not per append
        key = pb.read
        copy = memoryview(pb.out)
        cursor = 0  # old entries before it are written
        try:
            for k in range(count):
                at = perm[k] * ENTRY_SIZE
                if k + 1 < count and compare_keys(work, at, work, perm[k + 1] * ENTRY_SIZE) == 0:
                    continue  # an older entry for the same card in this page: the later wins
                lo, hi = cursor, old_count  # the first old entry not below the new one
                while lo < hi:
                    mid = (lo + hi) // 2
                    old.readinto(mid * ENTRY_SIZE, key)
                    if compare_keys(key, 0, work, at) < 0:
                        lo = mid + 1
                    else:
                        hi = mid
                _copy(old, new, copy, cursor, lo)
                cursor = lo
                if lo < old_count:
                    old.readinto(lo * ENTRY_SIZE, key)
                    if compare_keys(key, 0, work, at) == 0:
                        cursor += 1  # replaced
                new.write(memoryview(work)[at:at + ENTRY_SIZE])
                if on_entry is not None:
                    on_entry(work, at)
            _copy(old, new, copy, cursor, old_count)
        finally:
            old.close()
            new.close()
        storage.sync()
        storage.rename(_TMP, name)
        storage.sync()

    # ---- firmware upgrade ----------------------------------------------------------------

    def has_legacy(self) -> bool:
        return self._storage.size(LEGACY_FILE) >= 0

    def upgrade(self, legacy_entry: int = LEGACY_ENTRY_SIZE) -> None:
        """Rebuild the table from the single sorted file of an older firmware (cards.bin of
        `legacy_entry`-byte entries), then remove that file.

        A 32-byte v1 entry has no household: it gets one of its own, LEGACY_HOUSEHOLD + its
        place in the file (no household id the backend gives), so until the full sync that
        follows, its offline budget is counted per card as that firmware counted it. The legacy
        file is read once per group of buckets, so each bucket is written about once (not once
        per 512 cards). Cut short, it starts over at the next boot: the legacy file goes last.
        """
        storage = self._storage
        total = max(0, storage.size(LEGACY_FILE)) // legacy_entry
        self.clear()
        groups = min(BUCKETS, total // (PAGE_ENTRIES // 2) + 1)
        per_group = (BUCKETS + groups - 1) // groups
        entry = bytearray(ENTRY_SIZE)
        view = memoryview(entry)[:legacy_entry]
        for g in range(0, BUCKETS, per_group):
            self.begin()
            with storage.reader(LEGACY_FILE) as legacy:
                for i in range(total):
                    legacy.readinto(i * legacy_entry, view)
                    if g <= bucket_of(entry, 0) < g + per_group:
                        if self._n == PAGE_ENTRIES:
                            for _ in self.commit(False):
                                pass
                            self.begin()
                        if legacy_entry < HOUSEHOLD_AT + 4:
                            struct.pack_into(">I", entry, HOUSEHOLD_AT, LEGACY_HOUSEHOLD + i)
                        self.add(entry)
            for _ in self.commit(False):
                pass
        storage.remove(LEGACY_FILE)
        storage.sync()
        self.release()


class _PageBuffers:
    """What receiving and merging a page needs (5.2 KB), made once per sync."""

    def __init__(self) -> None:
        self.ram = bytearray(RAM_ENTRIES * ENTRY_SIZE)  # the page's first entries
        self.work = bytearray(RAM_ENTRIES * ENTRY_SIZE)  # one bucket's new entries, sorted
        self.read = bytearray(KEY_SIZE)  # an old entry's key, in a binary search
        self.out = bytearray(_OUT_ENTRIES * ENTRY_SIZE)  # old entries copied through
        self.perm = bytearray(RAM_ENTRIES)  # the new entries of a bucket in key order
        self.bucket = bytearray(PAGE_ENTRIES)  # bucket of each received entry
        self.order = array("H", range(PAGE_ENTRIES))  # entry indices grouped by bucket
        self.first = array("H", range(BUCKETS + 1))  # where each bucket starts in order


def _group_by_bucket(pb: _PageBuffers, n: int) -> None:
    """Counting sort of the entry indices by bucket, arrival order kept within a bucket."""
    bucket, order, first = pb.bucket, pb.order, pb.first
    for b in range(BUCKETS + 1):
        first[b] = 0
    for i in range(n):
        first[bucket[i] + 1] += 1
    for b in range(BUCKETS):
        first[b + 1] += first[b]
    for i in range(n):  # first[b] is bucket b's cursor meanwhile...
        b = bucket[i]
        order[first[b]] = i
        first[b] += 1
    for b in range(BUCKETS, 0, -1):  # ...and ends at bucket b + 1's start: shift back
        first[b] = first[b - 1]
    first[0] = 0


def _copy(old, new, buf, first: int, stop: int) -> None:
    """Copy old entries first..stop (exclusive) to the new file, a buffer at a time."""
    per = len(buf) // ENTRY_SIZE
    while first < stop:
        n = min(per, stop - first) * ENTRY_SIZE
        part = buf[:n]
        old.readinto(first * ENTRY_SIZE, part)
        new.write(part)
        first += per


class _NoFile:
    """The reader of a bucket that does not exist yet: never read (it has no entries)."""

    def readinto(self, offset: int, buf) -> int:
        return 0

    def close(self) -> None:
        pass


_NO_FILE = _NoFile()
