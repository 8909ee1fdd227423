"""Run a test script in MicroPython with the drivers at /flash and the simulators at /sim."""

from pathlib import Path

from tests.firmware.mpy_runtime import run

SIM = Path(__file__).resolve().parents[1] / "sim"
PRELUDE = "import sys\nsys.path.insert(0, '/sim')\n"


def mp(code: str) -> str:
    return run(PRELUDE + code, mounts={SIM: "/sim"})


def raises(code: str, exception: str) -> str:
    """Python source that runs `code` and asserts it raises `exception`; prints its message."""
    indented = "\n".join("    " + line for line in code.strip().splitlines())
    return (f"try:\n{indented}\nexcept {exception} as e:\n    caught = e\n    print('raised', repr(e))\n"
            f"else:\n    raise AssertionError('{exception} not raised')\n")
