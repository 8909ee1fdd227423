"""Run code inside the real MicroPython runtime (WebAssembly port under Node) from pytest."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("mp_run.mjs")
FIRMWARE = ROOT / "firmware"
# One script is a few seconds at most; 120 s leaves room for a loaded 2-core machine. (It was
# 300 s while a script that left an asyncio task behind kept Node alive until killed.)
TIMEOUT_S = 120


class MicroPythonError(AssertionError):
    """The script raised inside MicroPython; the message holds its traceback."""


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("Node.js is required to run firmware tests under MicroPython")
    return found


def run(code: str, *, mounts: dict[Path, str] | None = None, heap_bytes: int = 1024 * 1024,
        timeout_s: float = TIMEOUT_S) -> str:
    """Run `code` with firmware/ at /flash (and any extra host folders); return its stdout.

    The script starts with /flash on sys.path.
    """
    all_mounts = {FIRMWARE: "/flash", **(mounts or {})}
    prelude = "import sys\nsys.path.insert(0, '/flash')\n"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(prelude + code)
    try:
        argv = [node(), str(RUNNER), "--heap", str(heap_bytes)]
        for host, target in all_mounts.items():
            argv += ["--mount", f"{host}:{target}"]
        done = subprocess.run(argv + [script.name], capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    finally:
        Path(script.name).unlink()
    if done.returncode != 0:
        raise MicroPythonError(f"MicroPython exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done.stdout
