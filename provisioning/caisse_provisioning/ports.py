"""Which serial port is the terminal? pyserial's port list, filtered by USB vendor/product id."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from typing import Protocol

from .errors import BoardNotFound, PortNotAccessible, SeveralBoards

# (vendor id, product id or None for any), name shown to the technician.
KNOWN_BRIDGES: dict[tuple[int, int | None], str] = {
    (0x303A, None): "Espressif USB natif",  # ESP32-S2/S3/C3/C6 native USB (CDC or JTAG serial)
    (0x10C4, 0xEA60): "Silicon Labs CP210x",  # DevKitC and most ESP32 boards
    (0x1A86, 0x7523): "WCH CH340",
    (0x1A86, 0x55D4): "WCH CH9102",
    (0x0403, 0x6001): "FTDI FT232R",
}


class PortInfo(Protocol):
    device: str
    vid: int | None
    pid: int | None
    description: str


def bridge_name(port: PortInfo) -> str | None:
    if port.vid is None:
        return None
    return KNOWN_BRIDGES.get((port.vid, port.pid)) or KNOWN_BRIDGES.get((port.vid, None))


def default_lister() -> Iterable[PortInfo]:
    from serial.tools import list_ports

    return list_ports.comports()


def find_port(port: str | None = None, *, lister: Callable[[], Iterable[PortInfo]] = default_lister) -> str:
    """The port given, checked; else the only port that looks like a terminal."""
    if port is not None:
        check_access(port)
        return port
    candidates = [p for p in lister() if bridge_name(p) is not None]
    if not candidates:
        raise BoardNotFound("Aucun terminal trouvé sur les ports USB.")
    if len(candidates) > 1:
        listed = ", ".join(f"{p.device} ({bridge_name(p)})" for p in candidates)
        raise SeveralBoards(f"Plusieurs cartes branchées : {listed}.")
    check_access(candidates[0].device)
    return candidates[0].device


def check_access(port: str) -> None:
    """Fail with what to do when the port is missing or not readable by this user."""
    if port.startswith(("rfc2217://", "socket://")) or os.name == "nt":
        return  # checked when opened
    if not os.path.exists(port):
        raise BoardNotFound(f"Le port {port} n'existe pas.",
                            "le terminal est-il branché ? Le nom du port a pu changer : "
                            "relancez sans --port pour le chercher.")
    if not os.access(port, os.R_OK | os.W_OK):
        raise permission_denied(port)


def permission_denied(port: str) -> PortNotAccessible:
    return PortNotAccessible(
        f"Accès refusé au port {port}.",
        "sous Linux, ajoutez votre compte au groupe « dialout » (sudo usermod -aG dialout "
        "$USER) puis fermez et rouvrez la session ; voir docs/provisioning.md.")


def port_busy(port: str) -> PortNotAccessible:
    return PortNotAccessible(
        f"Le port {port} est déjà utilisé par un autre programme.",
        "fermez Thonny, l'IDE Arduino, screen, minicom ou une autre fenêtre de "
        "« caisse terminal », puis relancez.")


def open_error(port: str, error: BaseException) -> PortNotAccessible | BoardNotFound:
    """Translate what pyserial raised when opening the port."""
    code = getattr(error, "errno", None)
    text = str(error).lower()
    if code in (errno.EACCES, errno.EPERM) or "permission" in text or "access is denied" in text:
        return permission_denied(port)
    if code in (errno.EBUSY, errno.EAGAIN) or "busy" in text or "lock" in text:
        return port_busy(port)
    return BoardNotFound(f"Impossible d'ouvrir le port {port} ({error}).",
                         "le terminal est-il branché ? Débranchez-le, rebranchez-le et relancez.")
