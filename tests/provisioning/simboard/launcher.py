"""Start a simulated board on a pseudo-terminal: what mpremote sees is a serial port.

    with SimBoard(tmp_path / "board") as board:
        transport = SerialTransport(board.port)

The board is `simboard.mjs` under Node, running the real MicroPython runtime. Its flash is the
folder `board_dir/flash` on the host, so a second SimBoard on the same folder is the same board
plugged in again. `unplug()` pulls the cable: the process dies at once and the port goes away.

`hardware` says what is wired to the ESP32 (board_hw.py simulates it behind machine.I2C, Pin and
PWM): by default the reference terminal, complete, with an ATECC608 fresh from the factory.

    SimBoard(dir, hardware=Hardware(secure_element=None))   # no secure element: software key
    SimBoard(dir, hardware=Hardware(nfc="absent"))          # the NFC reader does not answer
    SimBoard(dir, hardware=Hardware.bare_board())                 # an ESP32 alone on the bench
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import tty
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from tests.firmware.mpy_runtime import node

SCRIPT = Path(__file__).with_name("simboard.mjs")
ROOT = Path(__file__).resolve().parents[3]
BOOT_TIMEOUT_S = 30


@dataclass(frozen=True)
class Hardware:
    nfc: Literal["ok", "absent", "silent"] = "ok"  # absent: NACKs its address; silent: never ready
    secure_element: Literal["factory", "foreign"] | None = "factory"  # foreign: locked by someone else
    display: bool = True
    stuck_key: tuple[int, int] | None = None  # (row, col) of a key held down
    card_uid: str | None = "04a1b2c3d4e5f6"  # a card lying on the reader
    bare: bool = False

    @classmethod
    def bare_board(cls) -> Hardware:
        return cls(bare=True)

    def as_json(self) -> str:
        fields = asdict(self)
        fields["se"] = fields.pop("secure_element")
        return json.dumps(fields)


class SimBoard:
    def __init__(self, board_dir: Path, *, heap_bytes: int = 4 * 1024 * 1024,
                 hardware: Hardware | None = None) -> None:
        self.board_dir = Path(board_dir)
        self.heap_bytes = heap_bytes
        self.hardware = hardware if hardware is not None else Hardware()
        self.port = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._slave_fd = -1

    @property
    def flash_dir(self) -> Path:
        return self.board_dir / "flash"

    def secure_element_state(self) -> dict:
        """The ATECC608 as the chip keeps it: {"config": hex, "keys": {slot: secret hex},
        "slots": {slot: data hex}, "genkeys": n} (nothing but zero GenKeys before its first write)."""
        path = self.board_dir / "atecc608.json"
        return json.loads(path.read_text()) if path.exists() else {"keys": {}, "slots": {}, "genkeys": 0}

    def hardware_log(self) -> list[str]:
        """Every tone of the buzzer and change of the LEDs, in order."""
        path = self.board_dir / "hardware.log"
        return path.read_text().splitlines() if path.exists() else []

    def start(self) -> SimBoard:
        assert self._process is None, "board already started"
        self.board_dir.mkdir(parents=True, exist_ok=True)
        master_fd, slave_fd = os.openpty()
        # Raw from the start: otherwise the line discipline echoes and translates the bytes of
        # the banner before pyserial opens the port and sets raw mode itself.
        tty.setraw(slave_fd)
        self._slave_fd = slave_fd  # held open so the master never reads EIO between two opens
        self.port = os.ttyname(slave_fd)
        log = open(self.board_dir / "simboard.log", "ab")
        try:
            self._process = subprocess.Popen(
                [node(), str(SCRIPT), "--fd", str(master_fd), "--board-dir", str(self.board_dir),
                 "--heap", str(self.heap_bytes), "--hardware", self.hardware.as_json()],
                stdout=subprocess.PIPE, stderr=log, pass_fds=(master_fd,), cwd=ROOT,
            )
        finally:
            os.close(master_fd)  # only the board holds it: its death is the unplugged cable
            log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], BOOT_TIMEOUT_S)
        line = self._process.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self.stop()
            log = (self.board_dir / "simboard.log").read_text(errors="replace")
            raise RuntimeError(f"simulated board did not boot within {BOOT_TIMEOUT_S} s:\n{log}")

    def unplug(self) -> None:
        """The cable is pulled: no flush, no goodbye."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._forget_process()
        self._close_slave()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._forget_process()
        self._close_slave()

    def _forget_process(self) -> None:
        assert self._process is not None
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def _close_slave(self) -> None:
        if self._slave_fd >= 0:
            os.close(self._slave_fd)
            self._slave_fd = -1

    def __enter__(self) -> SimBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
