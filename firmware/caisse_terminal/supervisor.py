"""The supervisor: runs the terminal's periodic tasks, survives their exceptions, feeds the
watchdog.

Each task is a step function called every `period_ms`. When a step raises, the supervisor
counts the error (health.py, by the part that failed), asks for a recovery of that part (the
terminal's `recover(kind)`: re-read the log from flash, reset and reconfigure the PN532,
clear the I2C bus, wake the secure element), waits a backoff (RESTART_MIN_MS doubling to
RESTART_MAX_MS) and runs the task again. A task that still fails MAX_FAILURES times within
FAILURE_WINDOW_MS makes run() raise Reboot: main.py then resets the chip, and the boot streak
(health.py) turns a crash loop into safe mode.

The watchdog (machine.WDT on the device) is fed from the supervisor's own loop only, so a step
that never returns (an infinite loop, a C call that hangs the bus) resets the chip. Long
operations that wait on purpose (a sync's network waits, a software signature, PN532 polls)
call the terminal's pump, which also feeds it, but never for more than PUMP_FEED_MAX_MS after
the loop itself last fed it: a wait that never ends is still reset.

`sleep_ms` and `spawn` are asyncio's by default; tests pass a virtual-time loop.
"""

try:
    import asyncio
except ImportError:  # very old MicroPython ports
    import uasyncio as asyncio  # type: ignore

from .clock import ticks_diff
from .health import HEALTHY_AFTER_MS, kind_of

WATCHDOG_TIMEOUT_MS = 30000
FEED_EVERY_MS = 1000
PUMP_FEED_MAX_MS = 300000
RESTART_MIN_MS = 100
RESTART_MAX_MS = 5000
MAX_FAILURES = 5
FAILURE_WINDOW_MS = 60000


class Reboot(Exception):
    """A task keeps failing after recovery: only a reset of the chip can help."""


def _asyncio_sleep_ms(ms):
    return asyncio.sleep(ms / 1000)


class _Task:
    __slots__ = ("name", "step", "period_ms", "kind", "failures", "window_ms")

    def __init__(self, name, step, period_ms, kind):
        self.name = name
        self.step = step
        self.period_ms = period_ms
        self.kind = kind
        self.failures = 0
        self.window_ms = 0


class Supervisor:
    def __init__(self, health, clock, *, recover=None, wdt=None, sleep_ms=None, spawn=None) -> None:
        self._health = health
        self._clock = clock
        self._recover = recover  # callable(kind) -> None
        self._wdt = wdt
        self._sleep_ms = sleep_ms or _asyncio_sleep_ms
        self._spawn = spawn or asyncio.create_task
        self._tasks = []
        self._fed_ms = None  # when the loop itself last fed the watchdog
        self.reboot = None  # why run() must raise Reboot
        self.restarts = 0

    def add(self, name: str, step, period_ms: int, kind: str = "other") -> None:
        """A periodic task; `kind` names the part its errors are blamed on when the exception
        does not say (health.kind_of)."""
        self._tasks.append(_Task(name, step, period_ms, kind))

    # ---- watchdog -------------------------------------------------------------------------

    def feed(self) -> None:
        """From the loop: the watchdog is fed."""
        self._fed_ms = self._clock.ticks_ms()
        if self._wdt is not None:
            self._wdt.feed()

    def feed_from_pump(self) -> None:
        """From a long operation that is making progress (see the module docstring)."""
        if self._wdt is not None and self._fed_ms is not None \
                and ticks_diff(self._clock.ticks_ms(), self._fed_ms) < PUMP_FEED_MAX_MS:
            self._wdt.feed()

    # ---- tasks ----------------------------------------------------------------------------

    async def _run(self, task: _Task) -> None:
        step = task.step
        period = task.period_ms
        while True:
            try:
                while True:
                    step()
                    await self._sleep_ms(period)
            except Exception as e:  # any failure of a step: count it, recover, run it again
                self._failed(task, e)
            await self._sleep_ms(min(RESTART_MAX_MS, RESTART_MIN_MS << min(task.failures - 1, 6)))

    def _failed(self, task: _Task, exc) -> None:
        kind = kind_of(exc, task.kind)
        self._health.error(kind, exc)
        now = self._clock.ticks_ms()
        if task.failures == 0 or ticks_diff(now, task.window_ms) > FAILURE_WINDOW_MS:
            task.failures = 0
            task.window_ms = now
        task.failures += 1
        if task.failures >= MAX_FAILURES and self.reboot is None:
            self.reboot = "%s: %s" % (task.name, self._health.last_error)
        if self._recover is not None:
            try:
                self._recover(kind)
            except Exception as e:  # the recovery itself failed: counted, retried next time
                self._health.error(kind_of(e, kind), e)
        self.restarts += 1
        self._health.restarted()

    async def run(self) -> None:
        """Start every task, then feed the watchdog until a task needs a reboot."""
        for task in self._tasks:
            self._spawn(self._run(task))
        started = self._clock.ticks_ms()
        healthy = False
        while True:
            if self.reboot is not None:
                raise Reboot(self.reboot)
            self.feed()
            self._health.flush()
            if not healthy and ticks_diff(self._clock.ticks_ms(), started) >= HEALTHY_AFTER_MS:
                healthy = True
                self._health.healthy()
            await self._sleep_ms(FEED_EVERY_MS)
