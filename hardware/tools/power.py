"""Compute the battery life in hardware/power.toml into hardware/power.md.

    python -m hardware.tools.power          # rewrite hardware/power.md
    python -m hardware.tools.power --check  # exit 1 if it is out of date

A market day is a run of identical payment cycles (market_day_hours / payments_per_day each).
In one cycle (t = 0 at the first key, the tap at typing + wait):
- the PN532's field is on while a card is expected (wait_card_s), then from the end of RESULT
  until nfc_awake_s after the tap, and in power-down otherwise;
- the screen is at full brightness until screen_dim_s after the tap, dimmed until screen_off_s
  after it, then off, until the next payment's first key;
- a sync (sync.seconds with the radio busy) runs every sync_every_s;
- the ESP32 is awake all the time (Wi-Fi connected, modem sleep): the firmware does not sleep.
Identical cycles are the pessimistic case for the screen: real gaps vary, and long quiet
spells turn the screen off.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hardware.tools.generated import write_or_check
from hardware.tools.pinmap import HARDWARE

POWER_TOML = HARDWARE / "power.toml"
POWER_MD = HARDWARE / "power.md"


@dataclass(frozen=True)
class Budget:
    raw: dict

    @property
    def current(self) -> dict[str, float]:
        return self.raw["current"]

    @property
    def firmware(self) -> dict[str, float]:
        return self.raw["firmware"]

    @property
    def usable_mah(self) -> float:
        battery = self.raw["battery"]
        return battery["capacity_mah"] * battery["usable_fraction"]

    @property
    def ldo_ma(self) -> float:
        return self.raw["battery"]["ldo_quiescent_ma"]

    @property
    def cycle_s(self) -> float:
        return self.raw["market_day_hours"] * 3600 / self.raw["payments_per_day"]

    def seconds(self) -> dict[str, float]:
        """Seconds of one payment cycle in each state."""
        fw, pay, cycle = self.firmware, self.raw["payment"], self.cycle_s
        tap = pay["typing_s"] + pay["wait_card_s"]
        assert tap + fw["result_s"] <= cycle, "payments closer than one payment takes"
        field = pay["wait_card_s"] + max(0.0, min(tap + fw["nfc_awake_s"], cycle) - (tap + fw["result_s"]))
        full = min(cycle, tap + fw["screen_dim_s"])
        dim = max(0.0, min(cycle, tap + fw["screen_off_s"]) - full)
        sync = cycle / fw["sync_every_s"] * self.raw["sync"]["seconds"]
        return {"field": field, "power_down": cycle - field, "full": full, "dim": dim, "off": cycle - full - dim,
                "sync": sync}

    def parts_ma(self) -> dict[str, float]:
        """Average current of each part over the day."""
        c, s, cycle = self.current, self.seconds(), self.cycle_s
        return {
            "ESP32": c["esp32_awake"] + (c["esp32_radio"] - c["esp32_awake"]) * s["sync"] / cycle,
            "PN532": (c["pn532_field"] * s["field"] + c["pn532_power_down"] * s["power_down"]) / cycle,
            "OLED": (c["oled_full"] * s["full"] + c["oled_dim"] * s["dim"] + c["oled_off"] * s["off"]) / cycle,
            "others and LDO": c["others"] + self.ldo_ma,
        }

    def average_ma(self) -> float:
        return sum(self.parts_ma().values())

    def day_hours(self) -> float:
        return self.usable_mah / self.average_ma()

    def worst_ma(self) -> float:
        """Without any power management: field always on, screen always full, radio idle."""
        c = self.current
        return c["esp32_awake"] + c["pn532_field"] + c["oled_full"] + c["others"] + self.ldo_ma

    def worst_hours(self) -> float:
        return self.usable_mah / self.worst_ma()


def load(path: Path = POWER_TOML) -> Budget:
    return Budget(tomllib.loads(path.read_text(encoding="utf-8")))


def render(budget: Budget) -> str:
    s, c, fw, cycle = budget.seconds(), budget.current, budget.firmware, budget.cycle_s
    raw = budget.raw

    def share(seconds: float) -> str:
        return f"{100 * seconds / cycle:.1f} %"

    lines = [
        "# Power budget",
        "",
        "Generated from `hardware/power.toml` by `hardware/tools/power.py`; edit the data, not this",
        "page. Currents in mA drawn from the cell (3.3 V rail plus the LDO's quiescent current), typical",
        "datasheet values; the time in each state follows the firmware's constants (`firmware/caisse_terminal/power.py`).",
        "",
        f"A market day: {raw['market_day_hours']} h, {raw['payments_per_day']} payments, one every {cycle:.0f} s. "
        f"One payment: {raw['payment']['typing_s']} s typing the amount (RF field off), "
        f"{raw['payment']['wait_card_s']} s waiting for the card (field on), {fw['result_s']} s of result, then the "
        f"amount screen with the field on until {fw['nfc_awake_s']} s after the tap; the screen dims "
        f"{fw['screen_dim_s']} s and goes off {fw['screen_off_s']} s after the last key or tap; a sync of "
        f"{raw['sync']['seconds']:.0f} s every {fw['sync_every_s']} s.",
        "",
        "| part | state | mA | share of the day | average mA |",
        "|---|---|---:|---:|---:|",
        f"| ESP32 | Wi-Fi connected, modem sleep, CPU on (never sleeps) | {c['esp32_awake']:.2f} | 100 % | |",
        f"| ESP32 | sync (radio busy) | {c['esp32_radio']:.2f} | {share(s['sync'])} | "
        f"{budget.parts_ma()['ESP32']:.2f} |",
        f"| PN532 | RF field on | {c['pn532_field']:.2f} | {share(s['field'])} | |",
        f"| PN532 | power-down | {c['pn532_power_down']:.2f} | {share(s['power_down'])} | "
        f"{budget.parts_ma()['PN532']:.2f} |",
        f"| OLED | full contrast | {c['oled_full']:.2f} | {share(s['full'])} | |",
        f"| OLED | dimmed | {c['oled_dim']:.2f} | {share(s['dim'])} | |",
        f"| OLED | off | {c['oled_off']:.2f} | {share(s['off'])} | {budget.parts_ma()['OLED']:.2f} |",
        f"| others, LDO | ATECC608 asleep, divider, LED and buzzer pulses | {c['others'] + budget.ldo_ma:.3f} | 100 % | "
        f"{budget.parts_ma()['others and LDO']:.3f} |",
        "",
        f"- Usable charge: {budget.usable_mah:.0f} mAh ({raw['battery']['capacity_mah']} mAh x "
        f"{raw['battery']['usable_fraction']:.2f}).",
        f"- Average over the market day: **{budget.average_ma():.1f} mA**, so **{budget.day_hours():.1f} h** per charge "
        f"(goal: {raw['goal_hours']} h).",
        f"- Without the power management (field always on, screen always full): {budget.worst_ma():.1f} mA, "
        f"**{budget.worst_hours():.1f} h**.",
        "",
        "The ESP32 is now the largest consumer: the firmware keeps it awake with Wi-Fi associated. Light",
        "sleep between keypad scans would cut it to a few mA but needs the keypad on GPIO wake-up; it is",
        "not done. Charge every evening (TP4056, 1 A: about 3 h from empty).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render(load())
    return write_or_check(POWER_MD, text, argv, module="hardware.tools.power")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
