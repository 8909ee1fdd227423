"""The harness itself: code really runs in MicroPython, and failures surface in pytest."""

import pytest

from tests.firmware.mpy_runtime import MicroPythonError, run


def test_code_runs_in_micropython_with_firmware_on_the_path():
    out = run("import sys\nprint(sys.implementation.name, '/flash' in sys.path)")
    assert out.split() == ["micropython", "True"]


def test_an_exception_in_micropython_fails_with_its_traceback():
    with pytest.raises(MicroPythonError, match="ValueError: boom"):
        run("raise ValueError('boom')")


def test_the_runner_exits_when_the_script_ends_even_with_an_asyncio_task_pending():
    # The port's asyncio runs on JavaScript timers: a task still scheduled when the script ends
    # kept Node alive until the harness timeout. The runner now exits when runPython returns.
    code = """
import asyncio
async def forever():
    while True:
        await asyncio.sleep(0.01)
asyncio.create_task(forever())
print('script done')
"""
    assert run(code, timeout_s=30).splitlines() == ["script done"]


def test_large_output_reaches_pytest_whole():
    out = run("for i in range(20000):\n    print('%05d' % i, 'x' * 40)")
    lines = out.splitlines()
    assert len(lines) == 20000 and lines[-1].startswith("19999 ")
