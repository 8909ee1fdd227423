"""esptool is driven as a library; a fake stands in for the chip."""

from __future__ import annotations

import pytest

from caisse_provisioning.errors import FlashError
from caisse_provisioning.flasher import MICROPYTHON_OFFSET, flash


class FakeEsptool:
    def __init__(self, chip: str) -> None:
        self.chip = chip
        self.calls: list[tuple] = []

    def detect_chip(self, port):
        self.calls.append(("detect_chip", port))
        return type("Loader", (), {"CHIP_NAME": self.chip, "_port": None})()

    def write_flash(self, esp, addr_data):
        self.calls.append(("write_flash", addr_data))

    def reset_chip(self, esp, mode):
        self.calls.append(("reset_chip", mode))


def image(tmp_path, first_byte=b"\xe9"):
    path = tmp_path / "micropython.bin"
    path.write_bytes(first_byte + bytes(100))
    return path


def test_an_esp32_is_flashed_at_the_micropython_offset_then_reset(tmp_path):
    fake = FakeEsptool("ESP32")
    assert flash("/dev/ttyUSB0", image(tmp_path), cmds=fake) == "ESP32"
    assert fake.calls[0] == ("detect_chip", "/dev/ttyUSB0")
    assert fake.calls[1] == ("write_flash", [(MICROPYTHON_OFFSET, b"\xe9" + bytes(100))])
    assert fake.calls[2] == ("reset_chip", "hard-reset")


def test_another_chip_is_refused_before_writing(tmp_path):
    fake = FakeEsptool("ESP32-S3")
    with pytest.raises(FlashError, match="ESP32-S3, pas un ESP32"):
        flash("/dev/ttyUSB0", image(tmp_path), cmds=fake)
    assert [c[0] for c in fake.calls] == ["detect_chip"]


def test_a_file_that_is_not_an_esp32_image_is_refused_before_touching_the_board(tmp_path):
    fake = FakeEsptool("ESP32")
    with pytest.raises(FlashError, match="n'est pas une image ESP32"):
        flash("/dev/ttyUSB0", image(tmp_path, b"PK"), cmds=fake)
    assert fake.calls == []
