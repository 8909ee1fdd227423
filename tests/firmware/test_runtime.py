"""The harness itself: code really runs in MicroPython, and failures surface in pytest."""

import pytest

from tests.firmware.mpy_runtime import MicroPythonError, run


def test_code_runs_in_micropython_with_firmware_on_the_path():
    out = run("import sys\nprint(sys.implementation.name, '/flash' in sys.path)")
    assert out.split() == ["micropython", "True"]


def test_an_exception_in_micropython_fails_with_its_traceback():
    with pytest.raises(MicroPythonError, match="ValueError: boom"):
        run("raise ValueError('boom')")
