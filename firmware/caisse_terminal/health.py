"""The terminal's health: error counters, restarts, the boot streak behind safe mode, and the
signed report that rides on the sync request (docs/protocol.md, "Health report").

Everything lives in one small file, health.json, replaced atomically. Writing it is best
effort: a full flash costs a counter, never a payment (the log has its own space), so a failed
save is counted in memory and the terminal goes on. Saves after an error are spaced out
(SAVE_EVERY_MS), so a peripheral failing in a loop does not wear the flash.

Boot streak (firmware/boot.py calls on_boot): a reset the firmware did not choose to survive
(a crash that made main.py reset the chip, or the watchdog) adds one; a healthy run
(HEALTHY_AFTER_MS without escalation) clears it; a power-on changes nothing. At SAFE_MODE_AFTER
the terminal boots into safe mode (firmware/main.py) until someone chooses to retry.
"""

import binascii
import hashlib
import json
import struct

from . import VERSION
from .clock import ticks_diff

HEALTH_FILE = "health.json"
ERROR_KINDS = ("i2c", "nfc", "secure_element", "flash", "sync", "other")
SAFE_MODE_AFTER = 3  # crash or watchdog resets in a row, without a healthy run between them
HEALTHY_AFTER_MS = 60000
SAVE_EVERY_MS = 10000
LAST_ERROR_CHARS = 80
HEALTH_DOMAIN = b"caisse-health-v1"

# Pending reasons for the next boot, written just before main.py resets the chip.
CRASH = "crash"
TECHNICIAN = "technician"  # Ctrl-C on the USB console: reboot into safe mode, no watchdog

# errno values of a bus that does not answer (ENODEV, EIO, ETIMEDOUT on lwIP and Linux) and of
# a full filesystem.
_BUS_ERRNOS = (5, 19, 110, 116)
_ENOSPC = 28
_NFC_ERRORS = ("PN532Error", "PN532Timeout", "FrameError", "Nack", "ApplicationError", "CardGone",
               "CardError", "SunMissing")
_SE_ERRORS = ("ATECCError", "ATECCCommError")


def kind_of(exc, default: str = "other") -> str:
    """Which part failed, from the exception (drivers are not imported here: names suffice)."""
    name = type(exc).__name__
    if name in _NFC_ERRORS:
        return "nfc"
    if name in _SE_ERRORS:
        return "secure_element"
    if isinstance(exc, OSError):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code == _ENOSPC:
            return "flash"
        if code in _BUS_ERRNOS:
            return "i2c"
    return default


def describe(exc) -> str:
    """'OSError: 19', printable ASCII, cut to LAST_ERROR_CHARS: for the report and the console.
    A str is taken as it is (a sync report's error)."""
    text = exc if isinstance(exc, str) else "%s: %s" % (type(exc).__name__, exc)
    out = "".join(c if " " <= c <= "~" else "?" for c in text)
    return out[:LAST_ERROR_CHARS]


def health_digest(terminal_id: int, time: int, body: bytes) -> bytes:
    """What the terminal signs for its health report (same shape as the code-failures report)."""
    message = HEALTH_DOMAIN + struct.pack(">II", terminal_id, time) + hashlib.sha256(body).digest()
    return hashlib.sha256(message).digest()


class Health:
    def __init__(self, storage, clock=None) -> None:
        self._storage = storage
        self._clock = clock
        self.boots = 0
        self.streak = 0
        self.safe_mode = False
        self.safe_mode_boots = 0
        self.pending = ""
        self.watchdog_resets = 0
        self.crash_resets = 0
        self.task_restarts = 0
        self.errors = {}
        for kind in ERROR_KINDS:
            self.errors[kind] = 0
        self.last_error = ""
        self.save_failures = 0  # saves refused by the flash (never persisted, by definition)
        self._dirty = False
        self._saved_ms = None
        self.load()

    # ---- persistence ---------------------------------------------------------------------

    def load(self) -> None:
        try:
            raw = self._storage.read(HEALTH_FILE)
            data = json.loads(raw) if raw else {}
        except (OSError, ValueError):
            data = {}  # unreadable: start counting again rather than refuse to boot
        if not isinstance(data, dict):
            data = {}
        for name in ("boots", "streak", "safe_mode_boots", "watchdog_resets", "crash_resets",
                     "task_restarts"):
            value = data.get(name, 0)
            setattr(self, name, value if isinstance(value, int) and value >= 0 else 0)
        self.safe_mode = data.get("safe_mode") is True
        pending = data.get("pending", "")
        self.pending = pending if pending in (CRASH, TECHNICIAN) else ""
        errors = data.get("errors")
        if isinstance(errors, dict):
            for kind in ERROR_KINDS:
                value = errors.get(kind, 0)
                self.errors[kind] = value if isinstance(value, int) and value >= 0 else 0
        last = data.get("last_error", "")
        self.last_error = last[:LAST_ERROR_CHARS] if isinstance(last, str) else ""

    def save(self, force: bool = True) -> bool:
        """Write health.json; without force, at most once per SAVE_EVERY_MS. False if not written."""
        self._dirty = True
        if not force and self._clock is not None and self._saved_ms is not None \
                and ticks_diff(self._clock.ticks_ms(), self._saved_ms) < SAVE_EVERY_MS:
            return False
        data = {"boots": self.boots, "streak": self.streak, "safe_mode": self.safe_mode,
                "safe_mode_boots": self.safe_mode_boots, "pending": self.pending,
                "watchdog_resets": self.watchdog_resets, "crash_resets": self.crash_resets,
                "task_restarts": self.task_restarts, "errors": self.errors,
                "last_error": self.last_error}
        try:
            self._storage.replace(HEALTH_FILE, json.dumps(data).encode())
            self._storage.sync()
        except OSError:
            self.save_failures += 1
            return False
        self._dirty = False
        if self._clock is not None:
            self._saved_ms = self._clock.ticks_ms()
        return True

    def flush(self) -> None:
        """Write what a spaced-out save left in memory (the supervisor calls it every second)."""
        if self._dirty:
            self.save(force=False)

    # ---- boot and safe mode -------------------------------------------------------------

    def on_boot(self, watchdog_reset: bool) -> bool:
        """Count this boot; return True when it must be a safe-mode boot."""
        self.boots += 1
        technician = self.pending == TECHNICIAN
        if self.pending == CRASH:
            self.crash_resets += 1
            self.streak += 1
        elif watchdog_reset:
            self.watchdog_resets += 1
            self.streak += 1
        self.pending = ""
        self.safe_mode = technician or self.streak >= SAFE_MODE_AFTER
        if self.safe_mode:
            self.safe_mode_boots += 1
        self.save()
        return self.safe_mode

    def before_reset(self, reason: str, exc=None) -> None:
        """main.py is about to reset the chip: remember why, for the next boot."""
        self.pending = reason
        if exc is not None:
            self.last_error = describe(exc)
        self.save()

    def healthy(self) -> None:
        """The terminal ran HEALTHY_AFTER_MS without escalating: forget the crash streak."""
        if self.streak:
            self.streak = 0
            self.save()

    def retry(self) -> None:
        """Leave safe mode (the V key on its screen, or a technician): one more crash or watchdog
        reset brings it back."""
        self.streak = min(self.streak, SAFE_MODE_AFTER - 1)
        self.safe_mode = False
        self.save()

    # ---- errors -------------------------------------------------------------------------

    def error(self, kind: str, exc) -> None:
        self.errors[kind if kind in self.errors else "other"] += 1
        self.last_error = describe(exc)
        self.save(force=False)

    def restarted(self) -> None:
        self.task_restarts += 1
        self.save(force=False)

    def error_count(self) -> int:
        total = 0
        for kind in ERROR_KINDS:
            total += self.errors[kind]
        return total

    # ---- the report ---------------------------------------------------------------------

    def report(self, *, log, unsent: int, uptime_s: int, battery_mv, battery_low: bool) -> bytes:
        """The health report's body: compact JSON, ASCII only (docs/protocol.md). unsent: the
        records that were waiting for the backend when this sync began."""
        stats = log.stats()
        data = {
            "firmware": VERSION, "uptime_s": uptime_s, "boots": self.boots,
            "watchdog_resets": self.watchdog_resets, "crash_resets": self.crash_resets,
            "task_restarts": self.task_restarts, "safe_mode_boots": self.safe_mode_boots,
            "errors": self.errors, "last_error": self.last_error,
            "battery_mv": battery_mv, "battery_low": battery_low,
            "unsent_records": unsent,
            "unsigned_records": stats["unsigned"], "log_free_bytes": stats["free_bytes"],
            "acked_seq": stats["acked_seq"],
        }
        lost = log.lost()
        if lost is not None:
            data["lost_first"], data["lost_last"] = lost
        return json.dumps(data).encode()

    def headers(self, body: bytes, terminal_id: int, now: int, signer) -> dict:
        """The two sync headers that carry the report and its signature."""
        sig = signer.sign_digest(health_digest(terminal_id, now, body))
        return {"X-Caisse-Health": binascii.b2a_base64(body).decode().strip(),
                "X-Caisse-Health-Signature": binascii.hexlify(sig).decode()}
