"""A virtual-time loop for the terminal's tasks under the WebAssembly port, which has no
asyncio.run and whose sleeps wait on JavaScript timers.

Tasks are the supervisor's coroutines; they await `sleep_ms(ms)`, a generator that yields the
delay to this loop. Virtual time only moves when every task sleeps, or when a simulated wait
inside a step calls advance() (a network answer, a chip's delay): events scheduled with at()
(a key pressed, a card put down) run at their virtual time, in order. The loop also measures
real time: `max_step_us` is the longest step (the longest the loop was blocked) and
`max_scan_gap_us` the longest real time between two keypad scans (when the test wraps them).
"""

import time


class Clock:
    """hal.Clock on virtual time: ticks_ms is the loop's, now() follows it."""

    def __init__(self, now=1767254400):
        self._t0 = now
        self.ms = 0

    def now(self):
        return self._t0 + self.ms // 1000

    def set(self, unix_s):
        self._t0 = unix_s - self.ms // 1000

    def ticks_ms(self):
        return self.ms


class FakeWDT:
    """machine.WDT on virtual time: not fed within `timeout`, it ends the instance (SystemExit,
    as a reset ends a run; the harness keeps the flash for the next boot)."""

    def __init__(self, clock, timeout):
        self.clock = clock
        self.timeout = timeout
        self.fed_ms = clock.ms
        self.feeds = 0

    def feed(self):
        self.fed_ms = self.clock.ms
        self.feeds += 1

    def check(self):
        if self.clock.ms - self.fed_ms > self.timeout:
            print("@@watchdog reset at", self.clock.ms)
            raise SystemExit()


def sleep_ms(ms):
    yield ms


class Loop:
    def __init__(self, clock):
        self.clock = clock
        self._tasks = []  # [wake_ms, order, coroutine]
        self._events = []  # [at_ms, order, fn]
        self._order = 0
        self.wdt = None
        self.max_step_us = 0
        self.steps = 0
        self.max_scan_gap_us = 0
        self._last_scan_us = None
        self.until_ms = None  # run() returns once virtual time passes this

    sleep_ms = staticmethod(sleep_ms)

    def reset(self):
        """A reset of the chip: every task of the previous run is gone (events stay: they are
        the outside world)."""
        self._tasks = []
        self.wdt = None

    def spawn(self, coro):
        self._order += 1
        self._tasks.append([self.clock.ms, self._order, coro])

    def at(self, ms, fn):
        self._order += 1
        self._events.append([ms, self._order, fn])

    def _due_event(self, until):
        best = None
        for e in self._events:
            if e[0] <= until and (best is None or (e[0], e[1]) < (best[0], best[1])):
                best = e
        return best

    def advance(self, ms):
        """Virtual time passes inside a step (a simulated wait): due events run, the watchdog
        is checked."""
        target = self.clock.ms + ms
        while True:
            e = self._due_event(target)
            if e is None:
                break
            self._events.remove(e)
            self.clock.ms = max(self.clock.ms, e[0])
            self._check()
            e[2]()
        self.clock.ms = target
        self._check()

    def _check(self):
        if self.wdt is not None:
            self.wdt.check()

    def scanned(self):
        """Call at each keypad scan: keeps the longest real-time gap between two scans."""
        now = time.ticks_us()
        if self._last_scan_us is not None:
            gap = time.ticks_diff(now, self._last_scan_us)
            if gap > self.max_scan_gap_us:
                self.max_scan_gap_us = gap
        self._last_scan_us = now

    def run(self, coro, until_ms=None):
        """Run `coro` and the tasks it spawns until virtual time passes until_ms (or forever)."""
        if until_ms is None:
            until_ms = self.until_ms
        self.spawn(coro)
        while True:
            task = None
            for t in self._tasks:
                if task is None or (t[0], t[1]) < (task[0], task[1]):
                    task = t
            wake = task[0] if task is not None else None
            e = self._due_event(wake if wake is not None else 1 << 60)
            if e is not None and (wake is None or e[0] <= wake):
                if until_ms is not None and e[0] > until_ms:
                    return
                self._events.remove(e)
                self.clock.ms = max(self.clock.ms, e[0])
                self._check()
                e[2]()
                continue
            if task is None or (until_ms is not None and wake > until_ms):
                if until_ms is not None:
                    self.clock.ms = max(self.clock.ms, until_ms)
                return
            self.clock.ms = max(self.clock.ms, wake)
            self._check()
            t0 = time.ticks_us()
            try:
                delay = task[2].send(None)
            except StopIteration:
                self._tasks.remove(task)
                continue
            spent = time.ticks_diff(time.ticks_us(), t0)
            self.steps += 1
            if spent > self.max_step_us:
                self.max_step_us = spent
            self._order += 1
            task[0] = self.clock.ms + (delay or 0)
            task[1] = self._order
            self._check()
