"""One terminal: the log, policy, flow and sync wired to the hardware, and its supervised tasks.

Under CPython (demo, market simulation) build it with the fakes of sim.py and either call
`await terminal.run()` or drive it by hand: terminal.flow.key("5"), terminal.poll_card(),
terminal.background_sign(), terminal.sync_now().

The loop (run(), supervisor.py) never waits on a human and never blocks for long:
- keys are scanned every KEYS_MS, and also by pump(), which every long operation calls while
  it waits (network waits of a sync, the software signature between comb columns, PN532
  polls): a key pressed during them is captured in the keypad's queue, in order, and handled
  as soon as the operation returns;
- a software signature starts only when nobody is typing (the flow at rest);
- a sync starts only when nobody is typing: the flow at rest and no key for SYNC_QUIET_MS,
  unless the vendor asked for it from the menu;
- the screen is sent page by page (flush_step), and the buzzer waits for the last page: it
  never sounds before the screen says why (_AfterScreen);
- the PN532 and the screen follow power.py (power-down between taps, dimmed then off).
"""

try:
    import asyncio  # noqa: F401  (the supervisor's default loop)
except ImportError:  # very old MicroPython ports
    import uasyncio as asyncio  # type: ignore  # noqa: F401

from . import log as log_module
from . import record
from . import status as status_module
from .clock import TimeKeeper, ticks_diff
from .flow import AMOUNT, PIN, RESULT, VOID_CARD, WAIT_CARD, Flow
from .hal import CardRemoved
from .health import Health
from .policy import Policy
from .power import Power
from .supervisor import Supervisor
from .sync import SyncClient

KEYS_MS = 10
SCREEN_MS = 10
POLL_CARD_MS = 50
TICK_MS = 100
SIGN_MS = 100
SYNC_CHECK_MS = 1000
SYNC_EVERY_S = 120
SYNC_QUIET_MS = 5000
LOW_BATTERY = "Batterie faible"


class _AfterScreen:
    """The indicator, held back until the screen shows why: approve() and decline() are played
    by release(), which the tasks call once the display has sent its last page."""

    def __init__(self, indicator, display) -> None:
        self._indicator = indicator
        self._display = display
        self.pending = None

    def approve(self) -> None:
        self.pending = "approve"

    def decline(self) -> None:
        self.pending = "decline"

    def key_click(self) -> None:
        self._indicator.key_click()

    def release(self) -> None:
        if self.pending is not None and not getattr(self._display, "dirty", False):
            sound = self.pending
            self.pending = None
            getattr(self._indicator, sound)()


class Terminal:
    def __init__(self, *, storage, display, keypad, reader, indicator, clock, signer,
                 transport=None, inline_signer=None, code_mac=None,
                 segment_bytes=log_module.SEGMENT_BYTES, segments=log_module.SEGMENTS,
                 health=None, battery=None, recover=None) -> None:
        """health: a Health on the same storage (made here if None). battery: anything with
        read_mv(). recover: callable(kind) that resets a part after a failure ("i2c", "nfc",
        "secure_element"); the terminal recovers the flash itself."""
        self.clock = clock = TimeKeeper(clock, storage)  # untrusted until a sync sets it
        self.signer = signer
        self._display = display
        self._keypad = keypad
        self._reader = reader
        self._indicator = indicator
        self._recover_parts = recover
        self.health = health if health is not None else Health(storage, clock)
        self.log = log_module.Log(storage, segment_bytes, segments)
        self.log.recover()
        self.policy = Policy(storage, self.log, clock)
        self.policy.rebuild_spend()
        self.policy.code_mac = code_mac  # config.load_code_mac: None without a member-code key
        last = self.log.last_body
        clock.at_least(max(self.policy.last_sync, 0 if last is None else record.body_time(last)))
        self.indicator = _AfterScreen(indicator, display)
        self.power = Power(clock, display, reader, battery)
        self.power.read_battery()
        self.flow = Flow(display, self.indicator, clock, self.log, self.policy, inline_signer,
                         request_sync=self.request_sync, status=self.status_lines)
        self.sync = None if transport is None else SyncClient(
            transport, self.log, self.policy, signer, clock, extra_headers=self._health_headers)
        if getattr(signer, "idle", 0) is None:
            signer.idle = self.pump  # a software signature scans the keypad as it computes
        self.supervisor = None
        self.last_report = None
        self._last_uid = None
        self._sync_requested = False
        self._boot_ms = clock.ticks_ms()
        self._key_ms = None  # when the last key was handled
        self._synced_ms = None  # when the last sync ended
        self._unsent_at_sync = 0  # records not acknowledged when the current sync began
        self._scan = getattr(keypad, "scan", None)  # a matrix keypad scanned by this loop
        self._scanned_ms = None

    # ---- one step of each task (callable by hand) ----------------------------------------

    def poll_keys(self) -> None:
        if self.indicator.pending is not None:
            return  # the screen that says why is still being sent: keys wait in the keypad
        try:
            k = self._keypad.read_key()
            while k is not None:
                self._key_ms = self.clock.ticks_ms()
                self.power.activity()
                self.flow.key(k)
                k = self._keypad.read_key()
        finally:
            self.indicator.release()

    def poll_card(self) -> None:
        """Turn reader polls into flow events: one card() per tap, not one per poll."""
        if not self.power.nfc_on:
            return  # the PN532 is powered down: nobody expects a card
        try:
            self._poll_card()
        finally:
            self.indicator.release()  # a decline is due even when the handler raised

    def _poll_card(self) -> None:
        try:
            card = self._reader.poll()
        except CardRemoved:
            self._last_uid = None
            self.power.activity()
            self.flow.card_removed()
            return
        if card is None:
            if self._last_uid is not None:
                self._last_uid = None
                self.flow.card_gone()
        elif card.uid != self._last_uid:
            self._last_uid = card.uid
            self.power.activity()
            self.flow.card(card)

    def tick(self) -> None:
        """Timers: the flow's timeouts, the power states, the battery, and the time written to
        flash once a minute."""
        self.flow.tick()
        self.power.tick(self.flow)
        self.flow.notice = LOW_BATTERY if self.power.battery_low else None
        self.indicator.release()
        self.clock.persist_if_due()

    def background_sign(self) -> int:
        """Sign one committed record (after the beep); never while a card is expected."""
        if not self.log.unsigned or self.flow.state in (WAIT_CARD, PIN, VOID_CARD):
            return 0
        return self.log.sign_pending(self.signer, limit=1)

    def request_sync(self) -> None:
        self._sync_requested = True

    def sync_now(self):
        """Run one sync (blocking: the transport is, pumping the keypad while it waits); tell
        the flow how it went."""
        self._sync_requested = False
        if self.sync is None:
            self.flow.sync_done(False)
            return None
        self._unsent_at_sync = self.unsent()
        try:
            self.last_report = report = self.sync.sync(self.pump)
        finally:
            self._synced_ms = self.clock.ticks_ms()
        if report.error is not None:
            self.health.error("sync", report.error)
        self.flow.sync_done(report.error is None)
        self.indicator.release()
        return report

    def pump(self) -> None:
        """What a long operation calls while it waits: capture keys, keep the watchdog fed.

        Keys only go to the keypad's queue here (the flow is in the middle of something):
        poll_keys() hands them over in order when the operation returns.
        """
        if self._scan is not None:
            now = self.clock.ticks_ms()
            if self._scanned_ms is None or ticks_diff(now, self._scanned_ms) >= KEYS_MS:
                self._scanned_ms = now
                self._scan()
        if self.supervisor is not None:
            self.supervisor.feed_from_pump()

    def recover(self, kind: str) -> None:
        """After a task failed because of `kind`: put that part back in a known state."""
        if kind == "flash":
            self.log.recover()  # the flash is the truth: reread it, repair a torn tail
            self.policy.rebuild_spend()
        elif self._recover_parts is not None:
            self._recover_parts(kind)
            if kind == "nfc" or kind == "i2c":
                self.power.nfc_on = True  # a re-initialized PN532 is awake

    def unsent(self) -> int:
        """Records the backend has not acknowledged yet (they live only in this flash)."""
        return max(0, self.log.next_seq - 1 - self.log.acked_seq)

    def status_lines(self, page: int) -> tuple:
        return status_module.lines(page, health=self.health, log=self.log, policy=self.policy,
                                   clock=self.clock, power=self.power)

    def _health_headers(self, now: int) -> dict:
        body = self.health.report(log=self.log, unsent=self._unsent_at_sync, uptime_s=ticks_diff(self.clock.ticks_ms(), self._boot_ms) // 1000,
                                  battery_mv=self.power.battery_mv, battery_low=self.power.battery_low)
        return self.health.headers(body, self.policy.terminal_id, now, self.signer)

    # ---- the supervised tasks --------------------------------------------------------------

    def _keys_step(self) -> None:
        if self._scan is not None:
            self._scanned_ms = self.clock.ticks_ms()
            self._scan()
        self.poll_keys()

    def _screen_step(self) -> None:
        flush = getattr(self._display, "flush_step", None)
        if flush is not None:
            flush()
        self.indicator.release()

    def _at_rest(self) -> bool:
        """Nobody is typing, and the last answer is on the screen with its sound."""
        if self.indicator.pending is not None or getattr(self._display, "dirty", False):
            return False
        state = self.flow.state
        return (state == AMOUNT and not self.flow.typing) or state == RESULT

    def _sign_step(self) -> None:
        if self._at_rest():
            self.background_sign()

    def _sync_step(self) -> None:
        if self._sync_requested:
            self.sync_now()  # asked from the menu: the vendor is waiting for it
            return
        if self.sync is None or self.log.unsigned or not self._at_rest() or not self.sync.due():
            return
        now = self.clock.ticks_ms()
        if self._key_ms is not None and ticks_diff(now, self._key_ms) < SYNC_QUIET_MS:
            return  # somebody is using the keypad
        if self._synced_ms is not None and ticks_diff(now, self._synced_ms) < SYNC_EVERY_S * 1000:
            return
        self.sync_now()

    def add_tasks(self, supervisor) -> None:
        supervisor.add("keys", self._keys_step, KEYS_MS)
        supervisor.add("screen", self._screen_step, SCREEN_MS, "i2c")
        supervisor.add("card", self.poll_card, POLL_CARD_MS, "nfc")
        supervisor.add("tick", self.tick, TICK_MS)
        supervisor.add("sign", self._sign_step, SIGN_MS)
        supervisor.add("sync", self._sync_step, SYNC_CHECK_MS, "sync")
        buzzer = getattr(self._indicator, "tick", None)
        if buzzer is not None:
            supervisor.add("buzzer", buzzer, 10)

    async def run(self, *, wdt=None, sleep_ms=None, spawn=None) -> None:
        """Run every task under a supervisor until it raises supervisor.Reboot."""
        self.supervisor = Supervisor(self.health, self.clock, recover=self.recover, wdt=wdt,
                                     sleep_ms=sleep_ms, spawn=spawn)
        self.add_tasks(self.supervisor)
        await self.supervisor.run()
