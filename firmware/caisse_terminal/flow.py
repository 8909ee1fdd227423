"""The payment flow: a state machine fed by events, with the French screens.

Events are method calls: key(k), card(card), card_removed() (the card left mid-read),
card_gone(), tick() (timers, from a periodic task) and sync_done(ok). The asyncio tasks in
terminal.py produce them; tests and the CPython simulator call them directly.

    AMOUNT --digits, V--> WAIT_CARD --card--> [PIN --4 digits, V-->] commit, RESULT
      |  \\--card, no amount--> RESULT (balance)              \\--refused--> RESULT
      M--> MENU --1--> RESULT (day summary)
                --2--> VOID_CARD --same card--> commit void, RESULT
                --3--> SYNCING --sync_done--> RESULT
                --4--> STATUS (status.py: 4 or V next page, X back)
    RESULT --any key (digits/M also act) or 4 s--> AMOUNT;  WAIT_CARD, PIN, MENU, VOID_CARD --X or 30 s--> AMOUNT

The tap path commits the record to the log (synced) before the approval beep; the signature is
made by the background task (Log.sign_pending) unless an inline signer is fast enough (secure
element).
"""

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython
    def const(x):
        return x

from . import hal, record
from .clock import ticks_add, ticks_diff
from .log import LogFull
from .policy import CODE_DIGITS, CODE_OK, CODE_UNAVAILABLE, CODE_WRONG, LOCKED

AMOUNT = const(0)
WAIT_CARD = const(1)
PIN = const(2)
RESULT = const(3)
MENU = const(4)
VOID_CARD = const(5)
SYNCING = const(6)
STATUS = const(7)
STATE_NAMES = ("AMOUNT", "WAIT_CARD", "PIN", "RESULT", "MENU", "VOID_CARD", "SYNCING", "STATUS")

RESULT_MS = const(4000)
WAIT_MS = const(30000)
SYNC_WAIT_MS = const(60000)
_MAX_INT_DIGITS = const(5)  # 99999,99 EUR, far above any limit

REMOVED_EARLY = ("Carte retirée", "trop tôt,", "recommencez")
LOG_FULL = ("Mémoire pleine", "Synchronisez", "le terminal")
STORAGE_ERROR = ("Erreur mémoire", "Paiement refusé", "Réessayez")
SIGN_ERROR = ("Erreur signature", "Paiement refusé", "Représentez", "la carte")
MENU_LINES = ("1 Résumé du jour", "2 Annulation", "3 Synchroniser", "4 État terminal")


def fmt_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return "%s%d,%02d EUR" % (sign, cents // 100, cents % 100)


class Flow:
    def __init__(self, display, indicator, clock, log, policy, inline_signer=None,
                 request_sync=None, status=None) -> None:
        self._display = display
        self._indicator = indicator
        self._clock = clock
        self._log = log
        self._policy = policy
        self._inline_signer = inline_signer
        self._request_sync = request_sync  # callable(): the sync task should run now
        self._status = status  # callable(page) -> lines of the status screen, or None
        self._status_page = 0
        self.notice: str | None = None  # a warning for the amount screen's footer (low battery)
        self._body = bytearray(record.BODY_SIZE)
        self._digits = ""
        self._pin = ""
        self._card = None
        self.amount_cents = 0
        self.state = AMOUNT
        self._deadline = None
        self.start()

    # ---- screens -----------------------------------------------------------------------

    def start(self) -> None:
        self._enter(AMOUNT)
        self._show_amount_entry()

    def _enter(self, state: int, timeout_ms=None) -> None:
        self.state = state
        self._deadline = None if timeout_ms is None else ticks_add(self._clock.ticks_ms(), timeout_ms)

    def _show_amount_entry(self) -> None:
        if not self._log.has_room_for_payment():
            self._display.show(LOG_FULL)
            return
        self._display.show_amount("Montant ?", self._typed_cents(), self.notice or "Carte: solde")

    def _result(self, lines, approved: bool) -> None:
        self._display.show(lines)  # the screen says why before the buzzer sounds
        if approved:
            self._indicator.approve()
        else:
            self._indicator.decline()
        self._enter(RESULT, RESULT_MS)

    def _info(self, lines) -> None:
        self._display.show(lines)
        self._enter(RESULT, RESULT_MS)

    @property
    def typing(self) -> bool:
        """An amount is being typed (a tap on the amount screen would be ignored)."""
        return bool(self._digits)

    def _typed_cents(self) -> int:
        text = self._digits
        if not text:
            return 0
        whole, _, frac = text.partition(",")
        return int(whole or "0") * 100 + int((frac + "00")[:2])

    # ---- events ------------------------------------------------------------------------

    def key(self, k: str) -> None:
        state = self.state
        if state == AMOUNT:
            self._key_amount(k)
        elif state == PIN:
            self._key_pin(k)
        elif state == MENU:
            self._key_menu(k)
        elif state == STATUS:
            self._key_status(k)
        elif state == RESULT:
            # Leave the result; a digit or the menu key also starts the next operation.
            self._digits = ""
            self.start()
            if k != hal.KEY_VALIDATE and k != hal.KEY_CANCEL:
                self._key_amount(k)
        elif k == hal.KEY_CANCEL and state in (WAIT_CARD, VOID_CARD):
            self._digits = ""
            self.start()

    def _key_amount(self, k: str) -> None:
        d = self._digits
        if "0" <= k <= "9":
            whole, comma, frac = d.partition(",")
            if comma and len(frac) >= 2 or not comma and len(whole) >= _MAX_INT_DIGITS:
                return
            if d == "0":
                d = ""
            self._digits = d + k
        elif k == hal.KEY_COMMA:
            if "," not in d:
                self._digits = (d or "0") + ","
        elif k == hal.KEY_CORRECT:
            self._digits = d[:-1]
        elif k == hal.KEY_CANCEL:
            self._digits = ""
        elif k == hal.KEY_MENU:
            self._digits = ""
            self._display.show(MENU_LINES if self._status is not None else MENU_LINES[:3])
            self._enter(MENU, WAIT_MS)
            return
        elif k == hal.KEY_VALIDATE:
            amount = self._typed_cents()
            if amount <= 0:
                return
            if not self._log.has_room_for_payment():
                self._display.show(LOG_FULL)
                self._indicator.decline()
                return
            self.amount_cents = amount
            self._display.show_amount("Présentez", amount, "la carte")
            self._enter(WAIT_CARD, WAIT_MS)
            return
        self._show_amount_entry()

    def _key_pin(self, k: str) -> None:
        if "0" <= k <= "9" and len(self._pin) < CODE_DIGITS:
            self._pin += k
        elif k == hal.KEY_CORRECT:
            self._pin = self._pin[:-1]
        elif k == hal.KEY_CANCEL:
            self._digits = ""
            self.start()
            return
        elif k == hal.KEY_VALIDATE and len(self._pin) == CODE_DIGITS and self._card is not None:
            self._check_code(self._card)
            return
        self._display.show(("Code PIN ?", "*" * len(self._pin), fmt_cents(self.amount_cents)))

    def _check_code(self, card) -> None:
        """The member code, checked offline; wrong tries are counted in flash first."""
        outcome = self._policy.check_code(card.uid, self._pin)
        self._pin = ""
        if outcome == CODE_OK:
            self._pay(card, record.FLAG_PIN)
        elif outcome == CODE_WRONG:
            left = self._policy.tries_left(card.uid)
            self._display.show(("Code erroné", "Reste %d essai%s" % (left, "s" if left > 1 else ""),
                                fmt_cents(self.amount_cents)))
            self._indicator.decline()
        else:
            self._digits = ""
            self._card = None
            self._result(LOCKED, False)

    def _key_menu(self, k: str) -> None:
        if k == "1":
            count, total = self._log.day_summary(self._clock.now())
            self._info(("Aujourd'hui", "%d paiement%s" % (count, "s" if count > 1 else ""),
                        fmt_cents(total)))
        elif k == "2":
            self._display.show(("Annulation", "Présentez la", "même carte"))
            self._enter(VOID_CARD, WAIT_MS)
        elif k == "3":
            self._display.show(("Synchronisation", "en cours..."))
            self._enter(SYNCING, SYNC_WAIT_MS)
            if self._request_sync is not None:
                self._request_sync()
        elif k == "4" and self._status is not None:
            self._status_page = 0
            self._display.show(self._status(0))
            self._enter(STATUS, WAIT_MS)
        elif k == hal.KEY_CANCEL or k == hal.KEY_MENU:
            self.start()

    def _key_status(self, k: str) -> None:
        if k == hal.KEY_CANCEL or k == hal.KEY_MENU:
            self.start()
            return
        status = self._status
        if status is None:
            return
        self._status_page += 1  # any other key: the next page, round and round
        self._display.show(status(self._status_page))
        self._enter(STATUS, WAIT_MS)

    def card(self, card) -> None:
        """A card entered the field and was read completely (hal.Card)."""
        state = self.state
        if state == AMOUNT and not self._digits:
            self._balance(card.uid)
        elif state == WAIT_CARD:
            if not self._policy.needs_pin(card.uid, self.amount_cents):
                self._pay(card, 0)  # checks the payment itself: one card lookup for the tap
                return
            reason, _ = self._policy.check_payment(card.uid, self.amount_cents, card.auth is not None)
            if reason is None and not self._policy.can_check_code(card.uid):
                reason = CODE_UNAVAILABLE
            if reason is not None:
                self._result(reason, False)
                self._digits = ""
            else:  # ask for the code only when the payment could go through
                self._card = card
                self._pin = ""
                self._display.show(("Code PIN ?", "", fmt_cents(self.amount_cents)))
                self._enter(PIN, WAIT_MS)
        elif state == VOID_CARD:
            self._void(card)

    def card_removed(self) -> None:
        """The reader lost the card before the read completed."""
        if self.state in (WAIT_CARD, VOID_CARD):
            self._display.show(REMOVED_EARLY)
            self._indicator.decline()
            # stay in the same state: the member taps again

    def card_gone(self) -> None:
        """The field is empty again (nothing to do today; kept for drivers and tests)."""

    def tick(self) -> None:
        if self._deadline is not None and ticks_diff(self._clock.ticks_ms(), self._deadline) >= 0:
            if self.state in (WAIT_CARD, PIN, VOID_CARD, SYNCING):
                self._digits = ""
                self._display.show(("Délai dépassé",))
                self._enter(RESULT, RESULT_MS)
            else:
                self._digits = ""
                self.start()

    def sync_done(self, ok: bool) -> None:
        if self.state == SYNCING:
            self._info(("Synchronisation", "réussie" if ok else "échouée"))

    # ---- actions -----------------------------------------------------------------------

    def _balance(self, uid: bytes) -> None:
        reason, left, day_left = self._policy.available(uid)
        if reason is not None:
            self._result(reason, False)
        else:  # the daily budget on this terminal, when it is less than the balance
            day = "" if day_left is None or day_left >= left else "Jour: " + fmt_cents(max(day_left, 0))
            self._display.show_amount("Solde disponible", left, day)
            self._enter(RESULT, RESULT_MS)

    def _commit(self, kind: int, flags: int, uid: bytes, amount: int, ref_seq: int, auth) -> bool:
        log = self._log
        if not self._clock.trusted:  # after a boot, until a sync sets the clock
            flags |= record.FLAG_UNTRUSTED_TIME
        record.pack_body(self._body, kind, flags, uid, self._policy.terminal_id, log.next_seq,
                         self._clock.now(), amount, ref_seq, auth, log.prev_hash)
        signature = None
        if self._inline_signer is not None:
            try:
                signature = self._inline_signer.sign_digest(record.digest(self._body))
            except Exception:
                # Nothing committed: the amount still waits for a card, the supervisor
                # recovers the secure element, and the member taps again.
                self._display.show(SIGN_ERROR)
                self._indicator.decline()
                raise
        try:
            log.commit(self._body, signature)
        except LogFull:
            self._result(LOG_FULL, False)
            return False
        except OSError:
            self._result(STORAGE_ERROR, False)  # nothing committed (log.py): say so, then
            raise  # let the supervisor count it and recover the flash
        self._policy.on_commit(self._body)
        return True

    def _pay(self, card, flags: int) -> None:
        amount = self.amount_cents
        reason, left = self._policy.check_payment(card.uid, amount, card.auth is not None)
        self._digits = ""
        self._card = None
        if reason is not None:
            self._result(reason, False)
            return
        if self._commit(record.KIND_PAYMENT, flags, card.uid, amount, 0, card.auth):
            self._display.show(("Paiement accepté", fmt_cents(amount), "Reste",
                                fmt_cents(left)))
            self._indicator.approve()
            self._enter(RESULT, RESULT_MS)

    def _void(self, card) -> None:
        reason, rec = self._policy.check_void(card.uid)
        if reason is not None or rec is None:
            self._result(reason or ("Rien à annuler",), False)
            return
        if self._commit(record.KIND_VOID, 0, rec.card_uid, rec.amount_cents, rec.seq, card.auth):
            self._display.show(("Paiement annulé", fmt_cents(rec.amount_cents)))
            self._indicator.approve()
            self._enter(RESULT, RESULT_MS)
