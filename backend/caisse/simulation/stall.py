"""One vendor's stall: the firmware's `Terminal` (log, policy, flow, sync, software key) on the
simulated peripherals of `caisse_terminal.sim`, driven key by key and tap by tap like the device.

Power cuts reuse the firmware power-cut rig's approach (tests/firmware/scenarios/powercut.py):
the flash is a `MemoryStorage` whose write budget runs out in the middle of a write; the
terminal then reboots on the same files (recovery drops the torn tail) and the vendor carries on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from caisse_terminal import flow, hal, policy, record, sim
from caisse_terminal.soft_signer import SoftwareSigner
from caisse_terminal.terminal import Terminal

# First line of a decline screen -> the code the report uses (both "too high" screens: over_limit).
DECLINES = {screen[0]: code for screen, code in (
    (policy.BLOCKED, "card_blocked"), (policy.UNKNOWN, "unknown_card"), (policy.INSUFFICIENT, "insufficient_budget"),
    (policy.DAY_LIMIT, "daily_limit"),
    (policy.TOO_HIGH, "over_limit"), (policy.SYNC_NEEDED, "sync_required"), (flow.LOG_FULL, "log_full"),
    (policy.NO_VOID, "nothing_to_void"), (policy.VOID_TOO_LATE, "void_too_late"),
    (policy.VOID_OTHER_CARD, "void_other_card"))}


@dataclass(frozen=True, slots=True)
class TapOutcome:
    """What the terminal did with one operation: the record it committed (it beeped), or why not."""

    body: bytes | None  # the committed 90-byte body when approved
    decline: str | None  # a DECLINES code, "power_cut", or None when approved


def key_stream(seed: str) -> Callable[[int], bytes]:
    """A deterministic stand-in for os.urandom, so a stall's key is the same on every run."""
    counter = 0

    def urandom(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            counter += 1
            out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        return out[:n]

    return urandom


class Stall:
    def __init__(self, *, name: str, transport: Callable[..., Any], now_s: int) -> None:
        self.files: dict[str, bytearray] = {}
        self.storage = sim.MemoryStorage(self.files)
        self.signer = SoftwareSigner.load_or_create(self.storage, urandom=key_stream(f"caisse simulation {name}"))
        self.clock = sim.ManualClock(now_s)
        self.transport = transport
        self.reboots = 0
        self.clock_offset_s = 0  # a lying hardware clock (caisse.simulation.adversaries): ahead of the world by this much
        self.terminal = self._boot()

    def _boot(self) -> Terminal:
        self.display, self.keypad, self.beeper = sim.ScreenLog(), sim.QueueKeypad(), sim.Beeper()
        self.reader = sim.FieldReader()
        return Terminal(storage=self.storage, display=self.display, keypad=self.keypad, reader=self.reader,
                        indicator=self.beeper, clock=self.clock, signer=self.signer, transport=self.transport)

    def reboot(self) -> None:
        """Power back: a fresh MemoryStorage on the same files, every object rebuilt from flash."""
        self.reboots += 1
        self.storage = sim.MemoryStorage(self.files)
        self.terminal = self._boot()

    def provision(self, terminal_id: int) -> None:
        self.terminal.policy.terminal_id = terminal_id
        self.terminal.policy.save()

    def cut_power_after(self, write_units: int) -> None:
        """The power fails after this many more write units (bytes appended, renames...)."""
        self.storage.budget = write_units

    def set_time(self, now_s: int) -> None:
        self.clock.t = now_s + self.clock_offset_s
        self.clock.ms = now_s * 1000
        self.terminal.flow.tick()

    # ---- operations, each surviving a power cut ---------------------------------------------

    def pay(self, card: hal.Card, amount_cents: int) -> TapOutcome:
        return self._operate(lambda: self._pay(card, amount_cents))

    def void_last(self, card: hal.Card) -> TapOutcome:
        return self._operate(lambda: self._void(card))

    def sync(self):
        """One sync (sign, upload, fetch); None when the power failed during it."""
        outcome: list[Any] = []
        self._guarded(lambda: outcome.append(self.terminal.sync_now()))
        return outcome[0] if outcome else None

    def forge(self, *, card_uid: bytes, amount_cents: int, card_auth: bytes) -> bytes | None:
        """A payment committed to the log without a tap (a compromised terminal), chained and
        signed like the others: its next sync uploads it. None when the power failed."""
        log = self.terminal.log
        body = bytearray(record.BODY_SIZE)
        record.pack_body(body, record.KIND_PAYMENT, 0, card_uid, self.terminal.policy.terminal_id, log.next_seq,
                         self.clock.now(), amount_cents, 0, card_auth, log.prev_hash)
        if not self._guarded(lambda: log.commit(body)):
            return None
        self._guarded(self.terminal.background_sign)
        return bytes(body)

    def sign_pending(self) -> None:
        self._guarded(lambda: self.terminal.log.sign_pending(self.signer, limit=1000))

    def _guarded(self, action: Callable[[], object]) -> bool:
        try:
            action()
            return True
        except sim.PowerCut:
            self.reboot()
            return False

    def _operate(self, action: Callable[[], None]) -> TapOutcome:
        log = self.terminal.log
        before = log.next_seq
        self.beeper.events.clear()
        if not self._guarded(action):
            return TapOutcome(None, "power_cut")  # the beep never came: the vendor takes it again
        if log.next_seq == before + 1 and self.beeper.events[-1:] == ["approve"]:
            assert log.last_body is not None
            body = bytes(log.last_body)
            self._guarded(self.terminal.background_sign)  # the tap is committed even if this fails
            return TapOutcome(body, None)
        first = self.display.lines[0] if self.display.lines else ""
        return TapOutcome(None, DECLINES.get(first, first or "no_answer"))

    def _keys(self, keys: str) -> None:
        self.keypad.press(keys)
        self.terminal.poll_keys()

    def _tap(self, card: hal.Card) -> None:
        self.reader.card = card
        self.terminal.poll_card()
        self.reader.card = None
        self.terminal.poll_card()

    def _pay(self, card: hal.Card, amount_cents: int) -> None:
        whole, cents = divmod(amount_cents, 100)
        self._keys(f"X{whole},{cents:02d}V")
        self._tap(card)  # no household has a member code, so no code is asked (docs/simulation.md)

    def _void(self, card: hal.Card) -> None:
        self._keys("XM2")
        self._tap(card)
