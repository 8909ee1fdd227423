"""The status screen (menu, key 4): what a producer or a technician needs to know about the
terminal, in French, two pages of hal.LINES lines of at most hal.LINE_CHARS characters."""

from . import VERSION
from .power import battery_percent

PAGES = 2
_MAX_SHOWN = 9999  # counters above this show as 9999: the line must fit


def _n(value: int, most: int = _MAX_SHOWN) -> int:
    return min(max(value, 0), most)


def _battery(mv, low: bool) -> str:
    if mv is None:
        return "Batterie ?"
    return "Batterie faible" if low else "Batterie %d %%" % battery_percent(mv)


def _age(seconds: int) -> str:
    if seconds < 60:
        return "<1 min"
    if seconds < 3600:
        return "%d min" % (seconds // 60)
    if seconds < 86400:
        return "%d h" % (seconds // 3600)
    return "%d j" % _n(seconds // 86400)


def lines(page: int, *, health, log, policy, clock, power) -> tuple:
    if page % PAGES == 0:
        sync = "Synchro : jamais" if not policy.last_sync else \
            "Synchro : " + _age(max(0, clock.now() - policy.last_sync))
        return (_battery(power.battery_mv, power.battery_low),
                "Non envoyés %d" % _n(log.next_seq - 1 - log.acked_seq),
                sync,
                "Erreurs : %d" % _n(health.error_count()))
    stats = log.stats()
    free = 100 * stats["free_bytes"] // stats["capacity_bytes"]
    terminal = "Terminal %d" % policy.terminal_id
    return ("Logiciel " + VERSION[:7],
            "Redémarrages %d" % _n(health.watchdog_resets + health.crash_resets, 999),
            "Mém. libre %d %%" % min(free, 100),
            terminal if len(terminal) <= 16 else "Term. %d" % policy.terminal_id)
