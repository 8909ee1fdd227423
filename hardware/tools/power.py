"""Compute the power budget in hardware/power.toml into hardware/power.md.

    python -m hardware.tools.power          # rewrite hardware/power.md
    python -m hardware.tools.power --check  # exit 1 if it is out of date
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
PARTS = ("esp32", "pn532", "oled", "others")


@dataclass(frozen=True)
class Budget:
    states: list[dict]
    usable_mah: float
    ldo_ma: float
    market_day_hours: float

    def state_ma(self, state: dict) -> float:
        """Cell current in this state: the rail current plus the LDO's own."""
        return sum(state[p] for p in PARTS) + self.ldo_ma

    def hours_in(self, state: dict) -> float:
        return self.usable_mah / self.state_ma(state)

    def average_ma(self) -> float:
        return sum(s["share"] * self.state_ma(s) for s in self.states)

    def day_hours(self) -> float:
        """Hours on one charge with the market-day mix of states."""
        return self.usable_mah / self.average_ma()

    def worst_hours(self) -> float:
        """Hours on one charge if the terminal never leaves its hungriest state but Wi-Fi."""
        return min(self.hours_in(s) for s in self.states if s["key"] != "wifi")


def load(path: Path = POWER_TOML) -> Budget:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    battery = raw["battery"]
    return Budget(
        states=raw["state"],
        usable_mah=battery["capacity_mah"] * battery["usable_fraction"],
        ldo_ma=battery["ldo_quiescent_ma"],
        market_day_hours=raw["market_day_hours"],
    )


def render(budget: Budget) -> str:
    lines = [
        "# Power budget",
        "",
        "Generated from `hardware/power.toml` by `hardware/tools/power.py`; edit the data, not this",
        "page. Currents in mA drawn from the cell (3.3 V rail plus the LDO's quiescent current).",
        "",
        "| state | ESP32 | PN532 | OLED | others | total mA | share of a market day | hours if always in this state |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in budget.states:
        lines.append(
            f"| {s['name']} | {s['esp32']:.2f} | {s['pn532']:.2f} | {s['oled']:.2f} | {s['others']:.2f} "
            f"| {budget.state_ma(s):.2f} | {s['share'] * 100:.0f} % | {budget.hours_in(s):.1f} |"
        )
    lines += [
        "",
        f"- Usable charge: {budget.usable_mah:.0f} mAh.",
        f"- Average over a market day: **{budget.average_ma():.1f} mA**, so **{budget.day_hours():.1f} h** per charge"
        f" against a {budget.market_day_hours:.0f} h market day.",
        f"- Worst case, NFC polling without pause: **{budget.worst_hours():.1f} h**.",
        "",
        "The firmware keeps the PN532 in power-down except while a payment waits for a card, and",
        "turns the screen off after a minute without a key: those two choices are what make the",
        "day average. Charge every evening (TP4056, 1 A: about 3 h from empty).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render(load())
    return write_or_check(POWER_MD, text, argv, module="hardware.tools.power")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
