"""Fixtures shared by the provisioning tests: a simulated board on a pseudo-terminal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.provisioning.simboard.launcher import SimBoard


@pytest.fixture
def board(tmp_path: Path) -> Iterator[SimBoard]:
    with SimBoard(tmp_path / "board") as sim:
        yield sim
