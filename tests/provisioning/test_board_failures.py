"""No board, an inaccessible port, and a cable pulled in the middle of the copy."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from caisse_provisioning.device import serial_transport
from caisse_provisioning.errors import BoardDisconnected, BoardNotFound, PortNotAccessible, SeveralBoards
from caisse_provisioning.ports import find_port
from tests.provisioning.helpers import Technician, firmware, flash_files, run_provision, settings_for
from tests.provisioning.simboard.launcher import SimBoard


@dataclass
class FakePort:
    device: str
    vid: int | None
    pid: int | None
    description: str = ""


def test_no_board_plugged_in(tmp_path):
    ports = [FakePort("/dev/ttyS0", None, None), FakePort("/dev/ttyACM9", 0x2341, 0x0043)]  # serial, Arduino
    with pytest.raises(BoardNotFound) as error:
        find_port(lister=lambda: ports)
    assert "Aucun terminal" in str(error.value) and "câble" in str(error.value)


def test_the_only_esp32_is_found_and_several_are_refused(board):
    esp = FakePort(board.port, 0x10C4, 0xEA60)
    assert find_port(lister=lambda: [FakePort("/dev/ttyS0", None, None), esp]) == board.port
    with pytest.raises(SeveralBoards, match="CP210x.*CH340|CH340.*CP210x"):
        find_port(lister=lambda: [esp, FakePort("/dev/ttyUSB7", 0x1A86, 0x7523)])


def test_a_port_that_does_not_exist(tmp_path):
    with pytest.raises(BoardNotFound, match="n'existe pas"):
        find_port(str(tmp_path / "ttyUSB0"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every device: no permission error to see")
def test_a_port_without_permission(tmp_path):
    port = tmp_path / "ttyUSB0"
    port.write_text("")
    port.chmod(0)
    with pytest.raises(PortNotAccessible, match="dialout"):
        find_port(str(port))


def test_a_busy_port_is_reported_as_busy(board):
    import serial

    holder = serial.Serial(board.port, exclusive=True)
    try:
        with pytest.raises(PortNotAccessible, match="déjà utilisé"):
            serial_transport(board.port)
    finally:
        holder.close()


def test_cable_pulled_mid_copy_then_a_second_run_finishes(tmp_path: Path, backend, vendor_id):
    board_dir = tmp_path / "b"
    settings = settings_for(backend.url, backend.token)
    with SimBoard(board_dir) as sim:
        tech = Technician()
        original = tech.hooks

        def hooks():
            h = original()
            copied = h.file_copied

            def pull_after_three(path: str, done: int, total: int) -> None:
                copied(path, done, total)
                if done == 3:
                    sim.unplug()

            h.file_copied = pull_after_three
            return h

        tech.hooks = hooks  # type: ignore[method-assign]
        with pytest.raises(BoardDisconnected) as error:
            run_provision(settings, sim.port, vendor_id, tech)
        assert "Liaison perdue" in str(error.value) and "Rebranchez" in str(error.value)
    with backend.admin() as client:
        assert client.get("/v1/admin/terminals/1").status_code == 404, "nothing registered"
    partial = flash_files(board_dir / "flash")
    assert 3 <= len(partial) < len(firmware())
    with SimBoard(board_dir) as again:
        tech = Technician()
        summary = run_provision(settings, again.port, vendor_id, tech)
    assert summary.terminal_id is not None
    assert summary.files_copied <= len(firmware()) - 3, "files already on the board are not copied again"
