"""Draw hardware/wiring.svg from hardware/pinmap.toml: the ESP32 on the left, the parts on the
right, one coloured wire per net, each wire in its own vertical lane so none overlap.

    python -m hardware.tools.wiring_svg          # rewrite hardware/wiring.svg
    python -m hardware.tools.wiring_svg --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from xml.sax.saxutils import escape

from hardware.tools.generated import write_or_check
from hardware.tools.pinmap import HARDWARE, PinMap, load_checked

WIRING_SVG = HARDWARE / "wiring.svg"

PIN_PITCH = 22
ESP_X, ESP_W = 30, 230
PART_X, PART_W = 760, 300
LANE_X0, LANE_STEP = ESP_X + ESP_W + 20, 20
TOP = 70
# Wire colours, by the first word of the signal name (as on a real harness).
COLOURS = {
    "I2C_SDA": "#1f77b4",
    "I2C_SCL": "#ff7f0e",
    "NFC": "#9467bd",
    "KEY": "#8c564b",
    "BUZZER": "#e377c2",
    "LED_GREEN": "#2ca02c",
    "LED_RED": "#d62728",
    "BATTERY": "#bcbd22",
    "CHARGING": "#17becf",
    "3V3": "#e41a1c",
    "GND": "#000000",
}


def colour(name: str) -> str:
    if name in COLOURS:
        return COLOURS[name]
    return COLOURS.get(name.split("_")[0], "#555555")


def render(pinmap: PinMap) -> str:
    # Left side: the ESP32 pins in use, power first, then by GPIO number.
    esp_pins = ["3V3", "GND"] + [f"GPIO{s.gpio}" for s in sorted(pinmap.signals, key=lambda s: s.gpio)]
    esp_y = {pin: TOP + 40 + i * PIN_PITCH for i, pin in enumerate(esp_pins)}
    esp_h = 40 + len(esp_pins) * PIN_PITCH
    # Right side: every part, stacked, with its header pins.
    part_y: dict[str, int] = {}
    part_boxes = []
    y = TOP
    for part, spec in pinmap.parts.items():
        box_top = y
        y += 40
        for pin in spec["pins"]:
            part_y[f"{part}.{pin}"] = y
            y += PIN_PITCH
        part_boxes.append((part, spec["label"], box_top, y - box_top))
        y += 20
    height = max(y, TOP + esp_h) + 60
    nets = [(s.name, f"GPIO{s.gpio}", list(s.to)) for s in pinmap.signals]
    for rail in pinmap.rails:
        ends = [e for e in rail["to"] if not e.startswith("ESP32.")]
        nets.append((rail["name"], rail["name"], [rail["from"], *ends]))
    width = PART_X + PART_W + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{ESP_X}" y="30" font-size="18" font-weight="bold">Caisse terminal - wiring '
        f"(generated from hardware/pinmap.toml)</text>",
        f'<rect x="{ESP_X}" y="{TOP}" width="{ESP_W}" height="{esp_h}" fill="#eef3fb" stroke="#333"/>',
        f'<text x="{ESP_X + 8}" y="{TOP + 22}" font-weight="bold">{escape(pinmap.board["module"][:30])}</text>',
    ]
    by_gpio = {f"GPIO{s.gpio}": s.name for s in pinmap.signals}
    for pin, py in esp_y.items():
        label = f"{pin} {by_gpio.get(pin, '')}".strip()
        out.append(f'<text x="{ESP_X + 8}" y="{py + 4}">{escape(label)}</text>')
        out.append(f'<circle cx="{ESP_X + ESP_W}" cy="{py}" r="3" fill="#333"/>')
    for _, label, top, h in part_boxes:
        out.append(f'<rect x="{PART_X}" y="{top}" width="{PART_W}" height="{h}" fill="#f6f6f0" stroke="#333"/>')
        out.append(f'<text x="{PART_X + 8}" y="{top + 22}" font-weight="bold">{escape(label)}</text>')
    for end, py in part_y.items():
        pin = end.split(".", 1)[1]
        out.append(f'<text x="{PART_X + 12}" y="{py + 4}">{escape(pin)}</text>')
        out.append(f'<circle cx="{PART_X}" cy="{py}" r="3" fill="#333"/>')
    for lane, (name, esp_pin, ends) in enumerate(nets):
        lane_x = LANE_X0 + lane * LANE_STEP
        c = colour(name)
        y0 = esp_y[esp_pin]
        ys = [part_y[e] for e in ends]
        out.append(f'<g stroke="{c}" stroke-width="2" fill="none"><title>{escape(name)}</title>')
        out.append(f'<polyline points="{ESP_X + ESP_W},{y0} {lane_x},{y0}"/>')
        out.append(f'<polyline points="{lane_x},{min([y0, *ys])} {lane_x},{max([y0, *ys])}"/>')
        for py in ys:
            out.append(f'<polyline points="{lane_x},{py} {PART_X},{py}"/>')
        out.append("</g>")
        out.append(f'<circle cx="{lane_x}" cy="{y0}" r="3" fill="{c}"/>')
        out.append(f'<text x="{ESP_X + ESP_W + 6}" y="{y0 - 4}" font-size="9" fill="{c}">{escape(name)}</text>')
    out.append(
        f'<text x="{ESP_X}" y="{height - 20}" font-size="11">Pull-ups: I2C on the modules; '
        "CHARGING 10k to 3V3; BATTERY_SENSE 100k/100k divider from the cell, 100 nF to GND.</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    text = render(load_checked())
    return write_or_check(WIRING_SVG, text, argv, module="hardware.tools.wiring_svg")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
