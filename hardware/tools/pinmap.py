"""Load hardware/pinmap.toml and check its pin choices against the ESP32's rules.

The rules come from the ESP32 datasheet (section "Strapping Pins" and the pin list) and the
ESP32-WROOM-32E datasheet: GPIO6..11 are wired to the module's SPI flash; GPIO0, 2, 5, 12 and 15
are sampled at reset to choose the boot mode, flash voltage and debug output; GPIO1 and 3 are
UART0, the USB console used for provisioning; GPIO34..39 are inputs only, without internal
pull-up or pull-down resistors.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

HARDWARE = Path(__file__).resolve().parents[1]
PINMAP = HARDWARE / "pinmap.toml"

FLASH_PINS = frozenset(range(6, 12))
STRAPPING_PINS = frozenset({0, 2, 5, 12, 15})
CONSOLE_PINS = frozenset({1, 3})
INPUT_ONLY_PINS = frozenset(range(34, 40))
# Pins that exist on an ESP32 (GPIO20, 24 and 28..31 are not bonded out).
ESP32_GPIOS = frozenset([*range(0, 20), 21, 22, 23, 25, 26, 27, *range(32, 40)])
DIRECTIONS = ("in", "out", "io")
PULLS = ("up", "ext", "none")


@dataclass(frozen=True)
class Signal:
    name: str
    gpio: int
    dir: str
    pull: str
    to: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class PinMap:
    board: dict
    addresses: dict[str, int]
    parts: dict[str, dict]
    signals: tuple[Signal, ...]
    rails: tuple[dict, ...]


def load(path: Path = PINMAP) -> PinMap:
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    signals = tuple(
        Signal(
            name=s["name"],
            gpio=s["gpio"],
            dir=s["dir"],
            pull=s["pull"],
            to=tuple(s["to"]),
            note=s.get("note", ""),
        )
        for s in raw["signal"]
    )
    return PinMap(
        board=raw["board"],
        addresses=dict(raw["i2c_addresses"]),
        parts=dict(raw["parts"]),
        signals=signals,
        rails=tuple(raw.get("rail", ())),
    )


def problems(pinmap: PinMap) -> list[str]:
    """Every rule the pin map breaks, as sentences; empty when the map is legal."""
    found: list[str] = []
    seen_gpio: dict[int, str] = {}
    seen_name: set[str] = set()
    for s in pinmap.signals:
        where = f"{s.name} on GPIO{s.gpio}"
        if s.name in seen_name:
            found.append(f"{s.name} is defined twice")
        seen_name.add(s.name)
        if s.gpio in seen_gpio:
            found.append(f"GPIO{s.gpio} is used by both {seen_gpio[s.gpio]} and {s.name}")
        seen_gpio[s.gpio] = s.name
        if s.gpio not in ESP32_GPIOS:
            found.append(f"{where}: the ESP32 has no such GPIO")
        if s.gpio in FLASH_PINS:
            found.append(f"{where}: GPIO6..11 belong to the module's SPI flash")
        if s.gpio in STRAPPING_PINS:
            found.append(f"{where}: strapping pin, its level at reset changes the boot mode")
        if s.gpio in CONSOLE_PINS:
            found.append(f"{where}: UART0 is the USB console used for provisioning")
        if s.dir not in DIRECTIONS:
            found.append(f"{where}: dir must be one of {DIRECTIONS}")
        if s.pull not in PULLS:
            found.append(f"{where}: pull must be one of {PULLS}")
        if s.gpio in INPUT_ONLY_PINS and s.dir != "in":
            found.append(f"{where}: GPIO34..39 are input-only, cannot be '{s.dir}'")
        if s.gpio in INPUT_ONLY_PINS and s.pull == "up":
            found.append(f"{where}: GPIO34..39 have no internal pull-up, use an external one")
        for end in s.to:
            part, _, pin = end.partition(".")
            if part not in pinmap.parts or pin not in pinmap.parts[part]["pins"]:
                found.append(f"{where}: unknown part pin {end}")
    for rail in pinmap.rails:
        for end in [rail["from"], *rail["to"]]:
            part, _, pin = end.partition(".")
            if part != "ESP32" and (part not in pinmap.parts or pin not in pinmap.parts[part]["pins"]):
                found.append(f"rail {rail['name']}: unknown part pin {end}")
    addresses = list(pinmap.addresses.values())
    if len(set(addresses)) != len(addresses):
        found.append("two parts share an I2C address")
    return found


def load_checked(path: Path = PINMAP) -> PinMap:
    """The pin map, or SystemExit (status 1) listing every rule it breaks: nothing is generated
    from an illegal map."""
    pinmap = load(path)
    errors = problems(pinmap)
    if errors:
        raise SystemExit("\n".join(errors))
    return pinmap
