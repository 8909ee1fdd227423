"""Put a MicroPython image on the board with esptool (as a library), after checking the chip.

The esptool module is passed in so tests can check the arguments and the chip check with a
fake; nothing else of esptool is used than detect_chip, write_flash and reset_chip.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import FlashError

EXPECTED_CHIPS = ("ESP32",)  # the reference board: ESP32-WROOM-32E (hardware/README.md)
MICROPYTHON_OFFSET = 0x1000  # where the ESP32 MicroPython image (bootloader first) starts


def _esptool_cmds() -> ModuleType:
    from esptool import cmds

    return cmds


def flash(port: str, image: Path, *, cmds: Any = None, expected_chips: tuple[str, ...] = EXPECTED_CHIPS) -> str:
    """Flash image at MICROPYTHON_OFFSET; return the chip name. Refuses another chip type."""
    if not image.is_file():
        raise FlashError(f"Image introuvable : {image}.", "le chemin donné à --firmware-image.")
    data = image.read_bytes()
    if data[:1] != b"\xe9":
        raise FlashError(f"{image.name} n'est pas une image ESP32 (premier octet 0x{data[:1].hex() or '??'}).",
                         "téléchargez le fichier .bin « ESP32_GENERIC » sur micropython.org.")
    cmds = cmds or _esptool_cmds()
    try:
        esp = cmds.detect_chip(port)
    except Exception as error:  # esptool raises FatalError and serial errors alike
        raise FlashError(f"Impossible de parler au chargeur de démarrage de la carte sur {port} ({error}).") from error
    try:
        chip = str(getattr(esp, "CHIP_NAME", "inconnue"))
        if chip not in expected_chips:
            raise FlashError(f"La carte est un {chip}, pas un {' ou '.join(expected_chips)} : flashage annulé.",
                             "la référence de la carte (voir hardware/README.md) et l'image choisie.")
        try:
            cmds.write_flash(esp, [(MICROPYTHON_OFFSET, data)])
            cmds.reset_chip(esp, "hard-reset")
        except Exception as error:
            raise FlashError(f"Échec de l'écriture de l'image sur la carte ({error}).") from error
    finally:
        port_obj = getattr(esp, "_port", None)
        if port_obj is not None:
            port_obj.close()
    return chip
