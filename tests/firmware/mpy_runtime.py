"""Run code inside the real MicroPython runtime (WebAssembly port under Node) from pytest.

The launcher lives in caisse.simulation.micropython, which `caisse simulate --firmware-runtime
micropython` uses too.
"""

from caisse.simulation.micropython import FIRMWARE, ROOT, RUNNER, TIMEOUT_S, MicroPythonError, node, run

__all__ = ["FIRMWARE", "ROOT", "RUNNER", "TIMEOUT_S", "MicroPythonError", "node", "run"]
