"""A MicroPython board seen through a transport: run code, read answers, copy files.

The transport is mpremote's (`SerialTransport` for a real board; tests hand it the port of a
simulated board). Only its raw-REPL calls are used: `enter_raw_repl`, `exec_raw`,
`fs_writefile`, `exit_raw_repl`, `close`. Every failure of the link becomes BoardDisconnected,
every Python error on the board DeviceError.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import serial
from mpremote.transport import TransportError, TransportExecError

from .errors import BoardDisconnected, DeviceError
from .ports import open_error

ANSWER_MARK = "@@caisse@@"  # prefix of the JSON line a device script answers with
READ_TIMEOUT_S = 5  # one serial read; the board answers a command within this
LONG_STEP_TIMEOUT_S = 120  # key generation in software on an ESP32 takes seconds


class Transport(Protocol):
    def enter_raw_repl(self, soft_reset: bool = True) -> None: ...
    def exit_raw_repl(self) -> None: ...
    def exec_raw(self, command: str | bytes, timeout: int = 10, data_consumer: Any = None) -> tuple[bytes, bytes]: ...
    def fs_writefile(self, dest: str, data: bytes, chunk_size: int = 256, progress_callback: Any = None) -> None: ...
    def close(self) -> None: ...


def serial_transport(port: str) -> Transport:
    from mpremote.transport_serial import SerialTransport

    try:
        return SerialTransport(port, timeout=READ_TIMEOUT_S)
    except TransportError as error:  # mpremote's "failed to access": find out why
        try:
            serial.Serial(port, exclusive=True).close()
        except (OSError, serial.SerialException) as cause:
            raise open_error(port, cause) from error
        raise open_error(port, error) from error


class Board:
    def __init__(self, transport: Transport, port: str) -> None:
        self.transport = transport
        self.port = port

    @contextmanager
    def _link(self, doing: str) -> Iterator[None]:
        try:
            yield
        except TransportExecError as error:
            raise DeviceError(f"Erreur sur le terminal pendant : {doing}.") from error
        except (serial.SerialException, OSError, TransportError) as error:
            raise BoardDisconnected(f"Liaison perdue avec le terminal ({self.port}) pendant : {doing}.") from error

    def start(self) -> None:
        with self._link("la connexion à MicroPython"):
            try:
                self.transport.enter_raw_repl(soft_reset=True)
            except TransportError as error:
                raise DeviceError(f"Le terminal sur {self.port} ne répond pas comme une carte MicroPython.") from error

    def run(self, code: str, *, doing: str, timeout_s: int = 10) -> str:
        """Run code on the board; its stdout, or DeviceError with the board's traceback."""
        with self._link(doing):
            out, err = self.transport.exec_raw(code, timeout=timeout_s)
        if err:
            traceback = err.decode(errors="replace").strip()
            error = DeviceError(f"Erreur sur le terminal pendant : {doing} ({traceback.splitlines()[-1]}).")
            error.traceback = traceback  # for developers: the whole traceback from the board
            raise error
        return out.decode(errors="replace")

    def ask(self, code: str, *, doing: str, timeout_s: int = 10) -> Any:
        """Run a device script that prints ANSWER_MARK + JSON; return the decoded answer."""
        out = self.run(code, doing=doing, timeout_s=timeout_s)
        for line in reversed(out.splitlines()):
            if line.startswith(ANSWER_MARK):
                return json.loads(line[len(ANSWER_MARK):])
        raise DeviceError(f"Réponse inattendue du terminal pendant : {doing}.")

    def write_file(self, path: str, data: bytes, progress: Callable[[int, int], None] | None = None) -> None:
        with self._link(f"la copie de {path}"):
            self.transport.fs_writefile(path, data, chunk_size=256, progress_callback=progress)

    def finish(self) -> None:
        """Leave the raw REPL and soft-reset: the board runs main.py, i.e. the terminal, with
        the files and configuration just written."""
        try:
            self.transport.exit_raw_repl()
            line = getattr(self.transport, "serial", None)
            if line is not None:
                line.write(b"\x04")  # Ctrl-D in the friendly REPL: soft reset
            self.transport.close()
        except (serial.SerialException, OSError, TransportError):
            pass  # the cable may already be gone: nothing left to tell the board
