"""Building the provisioning library's collaborators around a simulated board and a backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from caisse_provisioning import bundle
from caisse_provisioning.backend import AdminClient, Settings
from caisse_provisioning.device import Board, serial_transport
from caisse_provisioning.provision import Hooks, Options, provision

_FIRMWARE_CACHE: list[bundle.DeviceFile] = []


def firmware() -> list[bundle.DeviceFile]:
    """The real firmware/ tree, compiled once per test session."""
    if not _FIRMWARE_CACHE:
        _FIRMWARE_CACHE.extend(bundle.build())
    return list(_FIRMWARE_CACHE)


@dataclass
class Technician:
    """Answers the confirmation questions as told, and remembers what was asked and shown."""

    answers: list[bool] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def hooks(self) -> Hooks:
        return Hooks(step=self.steps.append, file_copied=lambda path, done, total: self.files.append(path),
                     confirm=self._confirm)

    def _confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answers.pop(0) if self.answers else False


def settings_for(url: str, token: str) -> Settings:
    return Settings(backend_url=url, admin_token=token)


def run_provision(settings: Settings, port: str, vendor_id: int, technician: Technician | None = None,
                  **options: object) -> object:
    technician = technician or Technician()
    admin = AdminClient.connect(settings)
    try:
        return provision(
            Options(vendor_id=vendor_id, port=port, hardware_selftest=bool(options.pop("hardware_selftest", True)),
                    **options),  # type: ignore[arg-type]
            settings=settings, admin=admin, find_port=lambda p: p or port,
            open_board=lambda p: Board(serial_transport(p), p), hooks=technician.hooks(), firmware=firmware)
    finally:
        admin.close()


def flash_files(flash_dir: Path) -> set[str]:
    return {"/" + p.relative_to(flash_dir).as_posix() for p in flash_dir.rglob("*") if p.is_file()}


# MicroPython run on the simulated board: the provisioned terminal, with the firmware's own fake
# peripherals and the board's simulated Wi-Fi. Scripts append what they do with `terminal`.
DEVICE_TERMINAL = """
import binascii, json, time
import simnet
from caisse_terminal import sim
from caisse_terminal.hal import Card
from caisse_terminal.soft_signer import SoftwareSigner
from caisse_terminal.storage import FileStorage
from caisse_terminal.terminal import Terminal

class Clock:  # the RTC that provisioning set
    def now(self):
        return int(time.time())
    def set(self, unix_s):
        pass
    def ticks_ms(self):
        return time.ticks_ms()

storage = FileStorage('/data')
settings = json.loads(storage.read('provision.json'))
keypad, reader = sim.QueueKeypad(), sim.FieldReader()
terminal = Terminal(storage=storage, display=sim.ScreenLog(), keypad=keypad, reader=reader,
                    indicator=sim.Beeper(), clock=Clock(), signer=SoftwareSigner.load_or_create(storage),
                    transport=simnet.SimHttpTransport(settings['backend_url']))
"""
