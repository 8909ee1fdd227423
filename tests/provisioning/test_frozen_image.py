"""A board flashed with the frozen image gets no firmware copies, and loses those it had: a file
on its filesystem would be imported instead of the frozen module."""

from __future__ import annotations

import json

from caisse_provisioning import bundle, device_scripts


class BoardWithFiles:
    """Answers the hashing and frozen-image scripts as a board holding `files` would."""

    def __init__(self, files: dict[str, str], *, frozen: bool) -> None:
        self.files = files
        self.frozen = frozen

    def ask(self, code: str, *, doing: str, timeout_s: int = 10):
        if code == device_scripts.frozen_firmware():
            return {"frozen": self.frozen, "version": "0.2.0" if self.frozen else None}
        paths = json.loads(code.split("json.loads(", 1)[1].split(")", 1)[0].strip("'\""))
        return {p: self.files.get(p) for p in paths}


FIRMWARE = [bundle.DeviceFile("/caisse_terminal/cards.mpy", b"new cards"),
            bundle.DeviceFile("/main.py", b"new main")]


def test_a_frozen_image_gets_nothing_copied_and_every_copy_it_had_removed():
    board = BoardWithFiles({"/caisse_terminal/cards.mpy": "old", "/caisse_terminal/cards.py": "older",
                            "/main.py": "old"}, frozen=True)
    assert bundle.frozen_image(board)  # type: ignore[arg-type]
    changed, stale = bundle.plan(board, FIRMWARE, frozen=True)  # type: ignore[arg-type]
    assert changed == [] and sorted(stale) == ["/caisse_terminal/cards.mpy", "/caisse_terminal/cards.py", "/main.py"]


def test_a_plain_image_gets_the_changed_files_as_before():
    board = BoardWithFiles({"/caisse_terminal/cards.mpy": bundle.DeviceFile("", b"new cards").sha256,
                            "/caisse_terminal/cards.py": "older"}, frozen=False)
    assert not bundle.frozen_image(board)  # type: ignore[arg-type]
    changed, stale = bundle.plan(board, FIRMWARE)  # type: ignore[arg-type]
    assert [f.path for f in changed] == ["/main.py"] and stale == ["/caisse_terminal/cards.py"]
