"""One terminal: the log, policy, flow and sync wired to the hardware, and its asyncio tasks.

Under CPython (demo, market simulation) build it with the fakes of sim.py and either call
`await terminal.run()` or drive it by hand: terminal.flow.key("5"), terminal.poll_card(),
terminal.background_sign(), terminal.sync_now().
"""

try:
    import asyncio
except ImportError:  # very old MicroPython ports
    import uasyncio as asyncio  # type: ignore

from . import log as log_module
from . import record
from .clock import TimeKeeper
from .flow import AMOUNT, PIN, VOID_CARD, WAIT_CARD, Flow
from .hal import CardRemoved
from .policy import Policy
from .sync import SyncClient

POLL_CARD_MS = 50
TICK_MS = 100
SYNC_EVERY_S = 120


class Terminal:
    def __init__(self, *, storage, display, keypad, reader, indicator, clock, signer,
                 transport=None, inline_signer=None, code_mac=None,
                 segment_bytes=log_module.SEGMENT_BYTES, segments=log_module.SEGMENTS) -> None:
        self.clock = clock = TimeKeeper(clock, storage)  # untrusted until a sync sets it
        self.signer = signer
        self._keypad = keypad
        self._reader = reader
        self.log = log_module.Log(storage, segment_bytes, segments)
        self.log.recover()
        self.policy = Policy(storage, self.log, clock)
        self.policy.rebuild_spend()
        self.policy.code_mac = code_mac  # config.load_code_mac: None without a member-code key
        last = self.log.last_body
        clock.at_least(max(self.policy.last_sync, 0 if last is None else record.body_time(last)))
        self.flow = Flow(display, indicator, clock, self.log, self.policy, inline_signer,
                         request_sync=self.request_sync)
        self.sync = None if transport is None else SyncClient(
            transport, self.log, self.policy, signer, clock)
        self.last_report = None
        self._last_uid = None
        self._sync_requested = False

    # ---- one step of each task (callable by hand) ----------------------------------------

    def poll_keys(self) -> None:
        k = self._keypad.read_key()
        while k is not None:
            self.flow.key(k)
            k = self._keypad.read_key()

    def poll_card(self) -> None:
        """Turn reader polls into flow events: one card() per tap, not one per poll."""
        try:
            card = self._reader.poll()
        except CardRemoved:
            self._last_uid = None
            self.flow.card_removed()
            return
        if card is None:
            if self._last_uid is not None:
                self._last_uid = None
                self.flow.card_gone()
        elif card.uid != self._last_uid:
            self._last_uid = card.uid
            self.flow.card(card)

    def tick(self) -> None:
        """Timers: the flow's timeouts, and the time written to flash once a minute."""
        self.flow.tick()
        self.clock.persist_if_due()

    def background_sign(self) -> int:
        """Sign one committed record (after the beep); never while a card is expected."""
        if not self.log.unsigned or self.flow.state in (WAIT_CARD, PIN, VOID_CARD):
            return 0
        return self.log.sign_pending(self.signer, limit=1)

    def request_sync(self) -> None:
        self._sync_requested = True

    def sync_now(self):
        """Run one sync (blocking: the transport is); tell the flow how it went."""
        self._sync_requested = False
        if self.sync is None:
            self.flow.sync_done(False)
            return None
        self.last_report = report = self.sync.sync()
        self.flow.sync_done(report.error is None)
        return report

    # ---- asyncio -------------------------------------------------------------------------

    async def _every(self, period_ms: int, step) -> None:
        while True:
            step()
            await asyncio.sleep(period_ms / 1000)

    async def _sync_task(self) -> None:
        waited_ms = SYNC_EVERY_S * 1000
        while True:
            idle = self.flow.state == AMOUNT and not self.log.unsigned
            if self.sync is not None and (self._sync_requested or (
                    idle and waited_ms >= SYNC_EVERY_S * 1000 and self.sync.due())):
                self.sync_now()
                waited_ms = 0
            await asyncio.sleep(1)
            waited_ms += 1000

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(self._every(20, self.poll_keys)),
            asyncio.create_task(self._every(POLL_CARD_MS, self.poll_card)),
            asyncio.create_task(self._every(TICK_MS, self.tick)),
            asyncio.create_task(self._every(TICK_MS, self.background_sign)),
            asyncio.create_task(self._sync_task()),
        ]
        await asyncio.gather(*tasks)
