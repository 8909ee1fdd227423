"""Offline policy: may this card pay this amount now, without asking the backend?

- Card table (cards.py): the sync v2 entries themselves (36 bytes: uid_len u8, uid 10, status u8,
  balance_cents i32, code_salt 8, code_verifier 8, household u32) in small sorted files in
  flash, looked up by binary search with one entry buffer: 10 000 cards cost 360 KB of flash and
  no RAM. Blocked cards are the deny list. The single-file table of an older firmware is moved
  into it at boot, and the next sync is a full one.
- Member code: above the code threshold, a card whose household has a code (non-zero salt or
  verifier) pays only after the member types it. The verifier is keyed to this terminal
  (docs/protocol.md, "Member-code verifiers"): HMAC(code key, SHA-256(salt || 4 ASCII digits)[:8])
  [:8], the HMAC made by the ATECC608 (`code_mac`), which alone holds the key; a terminal
  registered before member-code keys compares SHA-256(salt || digits)[:8] itself; one without a
  chip gets the salt alone and refuses such payments (CODE_UNAVAILABLE). Wrong
  tries are counted per card in "codes.json"; after code_max_tries the card is locked on this
  terminal (every payment refused) until a sync brings a newer entry for it. The counts are
  reported at sync (sync.py) and then forgotten; a lock is not.
- Offline budget, per household (all its cards together), on this terminal:
  - its balance at the last sync minus what this terminal took from it in records the backend
    has not acknowledged yet (`spend`);
  - and, per day, at most min(balance at the last sync x offline_share_bp / 10 000,
    offline_daily_cap_cents) in all the records of the day (`day_spend`, acknowledged or not).
  Both are rebuilt from the log at boot and after each sync (a power cut loses nothing the
  terminal approved); the log keeps the segments holding the day's records (log.acknowledge).
  The day is the terminal's: its clock at UTC+1 (DAY_OFFSET_S), as the log's day summary.
- Accreditation (sync v3): whether the vendor may take payments, and the moment its
  accreditation ends. Every payment is refused while it may not, and from that moment on by the
  terminal's own clock, synced or not (an unsynced clock lags: it never refuses too early).
  Voids and balance enquiries still work.
- Limits from the sync: maximum per payment, maximum for a tap without SUN message (basic
  card), PIN threshold, maximum age of the last sync, void window, wrong codes before a lock.
  Kept with the terminal id and the cards version in "config.json".
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

from . import record
from .cards import BALANCE_AT, CODE_SALT_AT, CODE_VERIFIER_AT, ENTRY_SIZE, HOUSEHOLD_AT, LEGACY_ENTRY_SIZE, PAGE_ENTRIES, STATUS_AT, CardTable

CONFIG_FILE = "config.json"
DAY_OFFSET_S = const(3600)  # the terminal's day, as log.Log's tz_offset_s (the backend judges the same)
CODES_FILE = "codes.json"
CODE_DIGITS = const(4)
CODE_OK = const(0)
CODE_WRONG = const(1)
CODE_LOCKED = const(2)
_NO_CODE = bytes(8)
CODE_FAILURE_SIZE = const(15)  # one card in the code-failures report
STATUS_ACTIVE = const(0)
STATUS_BLOCKED = const(1)
_SPEND_STEP = const(16)  # records counted between two steps of rebuild_spend_steps
MAX_SPEND_HOUSEHOLDS = const(1024)  # distinct households with spend to remember; then sync first

DEFAULT_LIMITS = {
    "max_payment_cents": 15000,
    "pin_threshold_cents": 0,  # 0: never ask for a PIN
    "offline_max_age_s": 259200,
    "void_window_s": 300,
    "code_max_tries": 3,
}

# Decline reasons, as the member and the vendor read them (hal.LINE_CHARS per line).
BLOCKED = ("Carte bloquée",)
UNKNOWN = ("Carte inconnue",)
INSUFFICIENT = ("Solde", "insuffisant")
DAY_LIMIT = ("Plafond du jour", "atteint")
TOO_HIGH = ("Montant trop", "élevé")
TOO_HIGH_BASIC = ("Montant trop", "élevé pour", "cette carte")
SYNC_NEEDED = ("Synchronisation", "requise")
NO_VOID = ("Rien à annuler",)
VOID_TOO_LATE = ("Annulation", "trop tardive")
VOID_OTHER_CARD = ("Pas la même", "carte")
LOCKED = ("Carte", "verrouillée")
CODE_UNAVAILABLE = ("Code requis :", "ce terminal ne", "peut pas le", "vérifier")
NOT_ACCREDITED = ("Commerce non", "conventionné")


class Policy:
    def __init__(self, storage, log, clock) -> None:
        self._storage = storage
        self._log = log
        self._clock = clock
        self._entry = bytearray(ENTRY_SIZE)
        self.cards = CardTable(storage)
        self.spend = {}  # household -> cents taken in records above acked_seq
        self.day_spend = {}  # household -> cents taken in the records of spend_day still in the log
        self.spend_day = 0
        self._left = 0  # set by _judge: balance left, daily budget left (None: no daily limit), household
        self._day_left = None
        self._household = 0
        self.terminal_id = 0
        self.cards_version = 0
        self.last_sync = 0  # server time of the last successful sync, 0: never
        self.limits = dict(DEFAULT_LIMITS)
        self.accredited = True  # sync v3: the vendor may take payments (a backend before v3 never says no)
        self.accredited_until = 0  # unix s from which payments are refused; 0: no end date
        self.codes = {}  # uid hex -> [wrong tries toward the lock, failures not reported, locked]
        self.code_mac = None  # the ATECC608's HMAC with the member-code key (drivers.atecc608)
        self._moving = None  # the entry size of a cards.bin being moved into the table
        self.load()

    # ---- persistence ---------------------------------------------------------------------

    def load(self) -> None:
        raw = self._storage.read(CONFIG_FILE)
        legacy_entry = LEGACY_ENTRY_SIZE  # firmware 0.1 wrote no entry_size: 32-byte v1 entries
        if raw:
            cfg = json.loads(raw)
            self.terminal_id = cfg.get("terminal_id", 0)
            self.cards_version = cfg.get("cards_version", 0)
            self.last_sync = cfg.get("last_sync", 0)
            self.limits.update(cfg.get("limits", {}))
            self.accredited, self.accredited_until = cfg.get("accreditation", (True, 0))
            # the size of cards.bin's entries: saved by a move cut short, or the firmware's own
            legacy_entry = cfg.get("legacy_entry_size", cfg.get("entry_size", legacy_entry))
        raw = self._storage.read(CODES_FILE)
        self.codes = json.loads(raw) if raw else {}
        if self.cards.has_legacy():  # the first boot after an update from a single-file table
            # Ask for every card again (saved first, so a move cut short still ends with a full
            # sync): v1 entries have no household and v1 member-code verifiers.
            self.cards_version = 0
            self._moving = legacy_entry
            self.save()
            self.cards.upgrade(legacy_entry)
            self._moving = None

    def save(self) -> None:
        cfg = {"terminal_id": self.terminal_id, "cards_version": self.cards_version,
               "last_sync": self.last_sync, "limits": self.limits, "entry_size": ENTRY_SIZE,
               "accreditation": (self.accredited, self.accredited_until)}
        if self._moving:
            cfg["legacy_entry_size"] = self._moving  # cards.bin's, until it is moved
        self._storage.replace(CONFIG_FILE, json.dumps(cfg).encode())
        self._storage.sync()

    # ---- card table ----------------------------------------------------------------------

    def card_count(self) -> int:
        return self.cards.count()

    def _find(self, uid: bytes) -> bool:
        """On success the card's entry is in self._entry."""
        return self.cards.find(uid, self._entry)

    def lookup(self, uid: bytes):
        """(status, balance_cents) at the last sync, or None for a card the table lacks."""
        if not self._find(uid):
            return None
        return self._entry[STATUS_AT], struct.unpack_from(">i", self._entry, BALANCE_AT)[0]

    def apply_page(self, full: bool):
        """Apply the page the card table received (a generator: one bucket per step)."""
        return self.cards.commit(full, self._unlock if self.codes else None)

    def apply_cards(self, packed, full: bool) -> None:
        """Merge entries (ENTRY_SIZE bytes each, in RAM: provisioning, tests) into the table, a
        page at a time; full: they replace it."""
        assert len(packed) % ENTRY_SIZE == 0
        packed = memoryview(packed)
        page = PAGE_ENTRIES * ENTRY_SIZE
        for start in range(0, max(len(packed), 1), page):
            self.cards.begin()
            for at in range(start, min(len(packed), start + page), ENTRY_SIZE):
                self.cards.add(packed[at:at + ENTRY_SIZE])
            for _ in self.apply_page(full and start == 0):
                pass
        self.cards.release()

    # ---- offline spend -------------------------------------------------------------------

    def rebuild_spend(self) -> None:
        """The spend per household: of the records above acked_seq, and of today's records."""
        for _ in self.rebuild_spend_steps():
            pass

    def rebuild_spend_steps(self):
        """rebuild_spend as a generator, a step per _SPEND_STEP records: a sync rebuilds it over
        a day of records and pumps between the steps (its heap is bounded per step)."""
        self.spend = {}
        self.day_spend = {}
        self.spend_day = self._today()
        households = {}  # uid -> household: one table search per card, not per record
        n = 0
        for body in self._log.bodies():
            uid = bytes(body[24:24 + body[3]])
            if uid not in households:
                households[uid] = self._household_of(uid)
            self._count(body, households[uid])
            n += 1
            if n % _SPEND_STEP == 0:
                yield

    def on_commit(self, body) -> None:
        """Count a record just committed (its card was looked up by check_payment or check_void)."""
        self._roll_day()
        self._count(body, self._household_of(bytes(body[24:24 + body[3]])))

    def _count(self, body, household: int) -> None:
        amount = struct.unpack_from(">I", body, 16)[0]
        if body[1] == record.KIND_VOID:
            amount = -amount
        if record.body_seq(body) > self._log.acked_seq:
            self.spend[household] = self.spend.get(household, 0) + amount
        if (struct.unpack_from(">I", body, 12)[0] + DAY_OFFSET_S) // 86400 == self.spend_day:
            self.day_spend[household] = self.day_spend.get(household, 0) + amount

    def _household_of(self, uid: bytes) -> int:
        """The card's household; 0 for a card the table lacks (its spend is counted apart)."""
        if not self._find(uid):
            return 0
        return struct.unpack_from(">I", self._entry, HOUSEHOLD_AT)[0]

    def _today(self) -> int:
        return (self._clock.now() + DAY_OFFSET_S) // 86400

    def _roll_day(self) -> None:
        """A new day starts with nothing spent in it."""
        today = self._today()
        if today != self.spend_day:
            self.day_spend.clear()
            self.spend_day = today

    # ---- decisions -----------------------------------------------------------------------

    def set_accreditation(self, answer) -> None:
        """From a v3 answer's `accreditation`: {"active": bool, "ends_at": unix s or null}.
        Anything else is a ValueError (the sync fails, nothing applied); a missing or non-true
        `active` refuses payments."""
        ends_at = answer.get("ends_at") if isinstance(answer, dict) else 0.5
        if not (ends_at is None or isinstance(ends_at, int)):
            raise ValueError("accreditation: not an object with an integer ends_at")
        self.accredited = answer.get("active") is True
        self.accredited_until = ends_at or 0

    def may_take_payments(self) -> bool:
        return self.accredited and not (self.accredited_until and self._clock.now() >= self.accredited_until)

    def sync_too_old(self) -> bool:
        if self.last_sync == 0:
            return True
        return self._clock.now() - self.last_sync > self.limits["offline_max_age_s"]

    def _judge(self, uid: bytes):
        """Decline reason or None; sets _left, _day_left and _household (no tuple on the tap path)."""
        if not self._find(uid):
            return UNKNOWN
        entry = self._entry
        if entry[11] == STATUS_BLOCKED:
            return BLOCKED
        balance = struct.unpack_from(">i", entry, 12)[0]
        household = struct.unpack_from(">I", entry, HOUSEHOLD_AT)[0]
        self._household = household
        self._left = balance - self.spend.get(household, 0)
        share = self.limits.get("offline_share_bp")
        cap = self.limits.get("offline_daily_cap_cents")
        if share is None or cap is None:  # limits of before sync v2: no daily budget
            self._day_left = None
            return None
        self._roll_day()
        self._day_left = min(balance * share // 10000, cap) - self.day_spend.get(household, 0)
        return None

    def available(self, uid: bytes):
        """(decline reason or None, balance left, daily budget left or None) for a balance enquiry."""
        reason = self._judge(uid)
        if reason is not None:
            return reason, 0, 0
        return None, self._left, self._day_left

    def check_payment(self, uid: bytes, amount_cents: int, secure: bool):
        """(decline reason or None, balance left after this payment).

        secure: the tap carried a SUN message. A card without one (basic, or a copy of a secure
        card's UID) pays at most basic_card_max_payment_cents, when the backend sets it.
        """
        if not self.may_take_payments():
            return NOT_ACCREDITED, 0
        if amount_cents > self.limits["max_payment_cents"]:
            return TOO_HIGH, 0
        if not secure and amount_cents > self.limits.get("basic_card_max_payment_cents", amount_cents):
            return TOO_HIGH_BASIC, 0
        if self.sync_too_old():
            return SYNC_NEEDED, 0
        reason = self._judge(uid)
        if reason is not None:
            return reason, 0
        if self.code_locked(uid):
            return LOCKED, 0
        left = self._left
        if amount_cents > left:
            return INSUFFICIENT, left
        if self._day_left is not None and amount_cents > self._day_left:
            return DAY_LIMIT, left
        if self._household not in self.spend and len(self.spend) >= MAX_SPEND_HOUSEHOLDS:
            return SYNC_NEEDED, left
        return None, left - amount_cents

    def needs_pin(self, uid: bytes, amount_cents: int) -> bool:
        """Above the threshold, for a card whose household has a member code (a salt, with or
        without a verifier for this terminal)."""
        threshold = self.limits["pin_threshold_cents"]
        if threshold <= 0 or amount_cents < threshold or not self._find(uid):
            return False
        entry = self._entry
        return bytes(entry[CODE_SALT_AT:CODE_SALT_AT + 8]) != _NO_CODE \
            or bytes(entry[CODE_VERIFIER_AT:CODE_VERIFIER_AT + 8]) != _NO_CODE

    def can_check_code(self, uid: bytes) -> bool:
        """False when the backend sent no verifier for this terminal (it has no chip to hold a
        member-code key): a payment that needs the code is refused here."""
        return self._find(uid) and bytes(self._entry[CODE_VERIFIER_AT:CODE_VERIFIER_AT + 8]) != _NO_CODE

    # ---- member codes --------------------------------------------------------------------

    def code_locked(self, uid: bytes) -> bool:
        if not self.codes:  # the usual case: no hex name to allocate on the tap path
            return False
        state = self.codes.get(_hex(uid))
        return bool(state and state[2])

    def check_code(self, uid: bytes, code: str) -> int:
        """CODE_OK, CODE_WRONG (a try counted) or CODE_LOCKED (this try reached the limit)."""
        if self.code_locked(uid) or not self._find(uid):
            return CODE_LOCKED
        entry = self._entry
        typed = hashlib.sha256(bytes(entry[CODE_SALT_AT:CODE_SALT_AT + 8]) + code.encode()).digest()[:8]
        if self.code_mac is not None:
            typed = self.code_mac(typed)[:8]
        name = _hex(uid)
        state = self.codes.get(name)
        if len(code) == CODE_DIGITS and typed == bytes(entry[CODE_VERIFIER_AT:CODE_VERIFIER_AT + 8]):
            if state and state[0]:
                state[0] = 0
                self._save_codes()
            return CODE_OK
        state = self.codes.setdefault(name, [0, 0, 0])
        state[0] += 1
        state[1] += 1
        if state[0] >= self.limits["code_max_tries"]:
            state[2] = 1
        self._save_codes()  # before the screen says anything: a power cut must not refund a try
        return CODE_LOCKED if state[2] else CODE_WRONG

    def tries_left(self, uid: bytes) -> int:
        state = self.codes.get(_hex(uid))
        return self.limits["code_max_tries"] - (state[0] if state else 0)

    def code_failures(self) -> bytes:
        """The code-failures report, CODE_FAILURE_SIZE bytes a card: uid_len, uid 10, failures u16,
        locked u8, reserved u8."""
        out = bytearray()
        for name, (_, failures, locked) in self.codes.items():
            if failures or locked:
                uid = binascii.unhexlify(name)
                out += struct.pack(">B10sHBB", len(uid), uid, min(failures, 0xFFFF), locked, 0)
        return bytes(out)

    def forget_reported_codes(self) -> None:
        """After the backend stored the report: counts restart from zero, locks stay."""
        for state in self.codes.values():
            state[1] = 0
        self._save_codes()

    def _unlock(self, entry, at: int) -> None:
        """A newer entry for a card ends its lock and its tries on this terminal."""
        state = self.codes.get(_hex(entry[at + 1:at + 1 + entry[at]]))
        if state and (state[0] or state[2]):
            state[0] = state[2] = 0
            self._save_codes()

    def _save_codes(self) -> None:
        for name in [n for n, state in self.codes.items() if not any(state)]:
            del self.codes[name]
        self._storage.replace(CODES_FILE, json.dumps(self.codes).encode())
        self._storage.sync()

    def check_void(self, uid: bytes):
        """(decline reason or None, the record to void) for the terminal's last record."""
        body = self._log.last_body
        if body is None or body[1] != record.KIND_PAYMENT:
            return NO_VOID, None
        rec = record.decode(bytes(body) + record.NO_SIGNATURE)
        if self._clock.now() - rec.time > self.limits["void_window_s"]:
            return VOID_TOO_LATE, None
        if rec.card_uid != uid:
            return VOID_OTHER_CARD, None
        return None, rec


def _hex(uid) -> str:
    return binascii.hexlify(bytes(uid)).decode()

