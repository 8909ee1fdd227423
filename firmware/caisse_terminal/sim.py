"""Simulated peripherals for the CPython demo, the market simulation and the tests.

MemoryStorage is a flash that can lose power: give it a budget of write units (one per byte
appended, one per remove/replace) and it raises PowerCut when the budget runs out, keeping
exactly the bytes written so far. Its `files` survive into a new MemoryStorage: a reboot.
It can also be full: with `capacity` set (bytes for all files), a write that does not fit
raises OSError(ENOSPC) like LittleFS, after appending the prefix that fits.
"""

from .clock import TICKS_MAX
from .hal import Card, CardReader, Clock, Display, Indicator, Keypad, Storage

ENOSPC = 28


class PowerCut(Exception):
    """The simulated power failed during a write."""


class MemoryStorage(Storage):
    def __init__(self, files=None) -> None:
        self.files = files if files is not None else {}
        self.budget = -1  # write units left before the power cut; -1: never
        self.units = 0  # write units spent since creation (to enumerate cut points)
        self.bytes_written = 0
        self.capacity = -1  # bytes all files may hold; -1: unlimited

    def _room(self) -> int:
        if self.capacity < 0:
            return 1 << 30
        return max(0, self.capacity - sum(len(d) for d in self.files.values()))

    def _spend(self, n: int) -> int:
        """Spend up to n units; return how many may be done before the cut."""
        if self.budget < 0:
            self.units += n
            return n
        done = min(n, self.budget)
        self.budget -= done
        self.units += done
        return done

    def names(self) -> "list[str]":
        return list(self.files)

    def size(self, name: str) -> int:
        data = self.files.get(name)
        return -1 if data is None else len(data)

    def readinto(self, name: str, offset: int, buf) -> int:
        data = self.files[name]
        n = max(0, min(len(buf), len(data) - offset))
        buf[:n] = data[offset:offset + n]
        return n

    def read(self, name: str) -> "bytes | None":
        data = self.files.get(name)
        return None if data is None else bytes(data)

    def append(self, name: str, data) -> None:
        n = len(data)
        room = self._room()
        if room < n:
            data = data[:room]
        done = self._spend(len(data))
        target = self.files.get(name)
        if target is None:
            target = self.files[name] = bytearray()
        target.extend(bytes(data[:done]))
        self.bytes_written += done
        if done < len(data):
            raise PowerCut()
        if done < n:
            raise OSError(ENOSPC)

    def _atomic(self) -> None:
        if self._spend(1) < 1:
            raise PowerCut()

    def replace(self, name: str, data) -> None:
        if self._room() < len(data):
            raise OSError(ENOSPC)  # the temporary file does not fit beside the old: it stays
        self._atomic()
        self.files[name] = bytearray(data)
        self.bytes_written += len(data)

    def remove(self, name: str) -> None:
        if name in self.files:
            self._atomic()
            del self.files[name]

    def rename(self, old: str, new: str) -> None:
        self._atomic()
        self.files[new] = self.files.pop(old)

    def sync(self) -> None:
        pass  # every byte is durable as soon as written: the harshest case for the log


class ScreenLog(Display):
    """Keeps what is shown; `lines` is the current screen, `level` its brightness (2 full,
    1 dimmed, 0 off)."""

    def __init__(self) -> None:
        self.lines = []
        self.history = []
        self.level = 2

    def brightness(self, level: int) -> None:
        self.level = level

    def show(self, lines) -> None:
        self.lines = list(lines)
        self.history.append(self.lines)

    def show_amount(self, title: str, amount_cents: int, footer: str = "") -> None:
        self.show([title, "%d,%02d EUR" % (amount_cents // 100, amount_cents % 100), footer])

    def text(self) -> str:
        return " | ".join(self.lines)


class QueueKeypad(Keypad):
    def __init__(self) -> None:
        self.keys = []

    def press(self, keys: str) -> None:
        self.keys.extend(keys)

    def read_key(self) -> "str | None":
        return self.keys.pop(0) if self.keys else None


class FieldReader(CardReader):
    """A card field: put a card in it, take it away, or make the next read fail mid-way."""

    def __init__(self) -> None:
        self.card: Card | None = None
        self.fail_next = False
        self.asleep = False  # the reader's power-down (a real one sees no card then)
        self.polls = 0

    def sleep(self) -> None:
        self.asleep = True

    def wake(self) -> None:
        self.asleep = False

    def poll(self) -> "Card | None":
        self.polls += 1
        if self.asleep:
            return None
        if self.fail_next:
            from .hal import CardRemoved
            self.fail_next = False
            raise CardRemoved()
        return self.card


class Beeper(Indicator):
    def __init__(self) -> None:
        self.events = []

    def approve(self) -> None:
        self.events.append("approve")

    def decline(self) -> None:
        self.events.append("decline")

    def key_click(self) -> None:
        pass


class Battery:
    """A battery gauge reading `mv` millivolts (None: no reading)."""

    def __init__(self, mv=3900) -> None:
        self.mv = mv

    def read_mv(self):
        return self.mv


class ManualClock(Clock):
    """The board's RTC (`t`, which a power cut sends back to 2000) and its millisecond ticks,
    which wrap every TICKS_PERIOD like time.ticks_ms() on the device."""

    def __init__(self, now: int = 1767254400, ms: int = 0) -> None:
        self.t = now
        self.ms = ms

    def now(self) -> int:
        return self.t

    def set(self, unix_s: int) -> None:
        self.t = unix_s

    def ticks_ms(self) -> int:
        return self.ms & TICKS_MAX

    def advance(self, seconds: int) -> None:
        self.t += seconds
        self.ms += seconds * 1000
