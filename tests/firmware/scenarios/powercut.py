"""Power-cut scenario, run unchanged under MicroPython (mounted at /scenarios) and CPython.

A fixed workload of payments, a void and syncs runs on a MemoryStorage whose power fails after
`cut_at` write units (a unit is one byte appended, or one remove/replace). The terminal then
reboots (recover, sign what is unsigned) and carries on; the payment being typed when the power
failed was not approved, so the vendor takes it again. Returns what a checker needs: every body
approved (beeped), every record the fake backend received, and invariant violations seen on the
way.
"""

from caisse_terminal import log, record, sim
from caisse_terminal.soft_signer import SoftwareSigner

T0 = 1767254400
A = b"\x04\xa1\xb2\xc3\xd4\xe5\xf6"
B = b"\xde\xad\xbe\xef"
C = b"\x04\xde\x5f\x1e\xac\xc0\x40\x11\x22\x33"
WORKLOAD = (
    ("pay", A, 1250), ("pay", B, 380), ("void",), ("pay", C, 2000), ("sync",),
    ("pay", A, 999), ("pay", B, 5), ("pay", C, 15000), ("pay", A, 42), ("sync",),
    ("restore", 3),  # the backend's database goes back to a backup holding records 1..3
    ("pay", B, 777), ("pay", C, 100), ("void",), ("pay", A, 2500), ("sync",), ("pay", B, 1),
)
TERMINAL_ID = 7
SEGMENT_BYTES = 1024
SEGMENTS = 4


class MemoSigner:
    """Deterministic signatures, so cache them: every cut point replays the same bodies."""

    def __init__(self, secret: bytes) -> None:
        self._signer = SoftwareSigner(secret)
        self._cache = {}

    def sign_digest(self, digest: bytes) -> bytes:
        sig = self._cache.get(digest)
        if sig is None:
            sig = self._cache[digest] = self._signer.sign_digest(digest)
        return sig


class Run:
    def __init__(self, signer, cut_at: int, then=()) -> None:
        self.files = {}
        self.signer = signer
        self.approved = []  # bodies that beeped
        self.backend = {}  # seq -> record bytes, as a backend would store them
        self.received = {}  # every record the backend ever stored, a restore notwithstanding
        self.uploads = 0  # records sent, re-sent ones included
        self.forgotten = 0  # records the restore took from the backend
        self.errors = []
        self.reboots = 0
        self.storage = sim.MemoryStorage(self.files)
        self.storage.budget = cut_at
        self.then = list(then)  # budgets of the boots after each cut: power fails again
        self.log = self._boot()
        self.body = bytearray(record.BODY_SIZE)
        self.time = T0

    def _boot(self):
        lg = log.Log(self.storage, segment_bytes=SEGMENT_BYTES, segments=SEGMENTS)
        lg.recover()
        return lg

    def reboot(self) -> None:
        self.reboots += 1
        self.storage = sim.MemoryStorage(self.files)  # power back
        if self.then:
            self.storage.budget = self.then.pop(0)
        self.log = self._boot()
        present = {}
        for kind, payload in self.log.frames():
            if kind == log.T_BODY or kind == log.T_REC:
                present[record.body_seq(payload)] = payload[:record.BODY_SIZE]
        for body in self.approved:
            seq = record.body_seq(body)
            if seq <= self.log.acked_seq:
                if seq not in self.received or self.received[seq][:record.BODY_SIZE] != body:
                    self.errors.append("acked seq %d is not at the backend" % seq)
            elif present.get(seq) != body:
                self.errors.append("approved seq %d lost or changed after reboot" % seq)
        expected = record.body_seq(self.approved[-1]) + 1 if self.approved else 1
        if self.log.next_seq != expected:
            self.errors.append("next_seq %d does not follow the last approved" % self.log.next_seq)

    def step(self, op) -> None:
        lg = self.log
        lg.sign_pending(self.signer, limit=100)  # the background task, before the next tap
        self.time += 37
        if op[0] == "pay":
            record.pack_body(self.body, record.KIND_PAYMENT, 0, op[1], TERMINAL_ID, lg.next_seq,
                             self.time, op[2], 0, None, lg.prev_hash)
        elif op[0] == "void":
            last = lg.last_body
            assert last is not None and last[1] == record.KIND_PAYMENT
            rec = record.decode(bytes(last) + bytes(64))
            record.pack_body(self.body, record.KIND_VOID, 0, rec.card_uid, TERMINAL_ID,
                             lg.next_seq, self.time, rec.amount_cents, rec.seq, None,
                             lg.prev_hash)
        elif op[0] == "restore":
            for seq in [s for s in self.backend if s > op[1]]:
                del self.backend[seq]
                self.forgotten += 1
            return
        else:
            self.sync()
            return
        lg.commit(self.body)
        self.approved.append(bytes(self.body))  # the beep

    def sync(self) -> None:
        lg = self.log
        lg.sign_pending(self.signer, limit=100)
        self._upload()
        lg.acknowledge(self._acked())
        if lg.resending():  # the backend is behind the log: what it lacks goes again
            self._upload(lg.acked_seq)
            lg.resent()
            lg.acknowledge(self._acked())  # as the terminal's second sync answer

    def _acked(self) -> int:
        acked = 0
        while acked + 1 in self.backend:
            acked += 1
        return acked

    def _upload(self, until_seq: int = 0) -> None:
        for raw in self.log.pending(256, 0, until_seq):
            seq = record.body_seq(raw)
            if seq in self.received and self.received[seq] != raw:
                self.errors.append("seq %d uploaded twice with different bytes" % seq)
            self.backend[seq] = self.received[seq] = raw
            self.uploads += 1


def _reboot(r: Run) -> None:
    while True:
        try:
            r.reboot()  # recovery itself may write (drop a torn segment head)
            return
        except sim.PowerCut:
            pass


def run(signer, cut_at: int, then=()) -> Run:
    r = Run(signer, cut_at, then)
    i = 0
    while i < len(WORKLOAD):
        try:
            r.step(WORKLOAD[i])
            i += 1
        except sim.PowerCut:
            _reboot(r)
    while True:
        try:
            r.sync()
            break
        except sim.PowerCut:
            _reboot(r)
    return r


def total_units(signer) -> int:
    r = run(signer, -1)
    return r.storage.units


def summary(r: Run) -> dict:
    import binascii
    return {
        "approved": [binascii.hexlify(b).decode() for b in r.approved],
        "backend": {str(k): binascii.hexlify(v).decode() for k, v in r.backend.items()},
        "errors": r.errors,
        "reboots": r.reboots,
        "pending": len(r.log.pending(256)),
    }
