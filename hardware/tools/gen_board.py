"""Generate firmware/board.py from hardware/pinmap.toml.

    python -m hardware.tools.gen_board          # rewrite firmware/board.py
    python -m hardware.tools.gen_board --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import sys

from hardware.tools.generated import write_or_check
from hardware.tools.pinmap import HARDWARE, PinMap, load_checked

BOARD_PY = HARDWARE.parent / "firmware" / "board.py"


def render(pinmap: PinMap) -> str:
    out = [
        '"""Pin and bus assignments of the reference terminal.',
        "",
        "GENERATED from hardware/pinmap.toml by hardware/tools/gen_board.py: edit the pin map, not",
        "this file (tests/hardware checks they agree).",
        '"""',
        "",
        "from micropython import const",
        "",
        f"# {pinmap.board['module']}",
        f"I2C_ID = const({pinmap.board['i2c_id']})",
        f"I2C_FREQ_HZ = const({pinmap.board['i2c_freq_hz']})",
        "",
        "# 7-bit I2C addresses",
    ]
    for part, address in pinmap.addresses.items():
        out.append(f"ADDR_{part} = const(0x{address:02X})")
    out += ["", "# GPIO numbers"]
    for s in pinmap.signals:
        comment = f"  # {s.dir}, pull {s.pull}: {', '.join(s.to)}"
        out.append(f"{s.name} = const({s.gpio}){comment}")
    rows = [s.gpio for s in pinmap.signals if s.name.startswith("KEY_ROW")]
    cols = [s.gpio for s in pinmap.signals if s.name.startswith("KEY_COL")]
    out += [
        "",
        "KEYPAD_ROWS = (" + ", ".join(map(str, rows)) + ")",
        "KEYPAD_COLS = (" + ", ".join(map(str, cols)) + ")",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = render(load_checked())
    return write_or_check(BOARD_PY, text, argv, module="hardware.tools.gen_board")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
