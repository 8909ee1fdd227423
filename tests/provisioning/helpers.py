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
