"""Fixtures shared by the provisioning tests: a simulated board on a pseudo-terminal."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlmodel import Session

from caisse.config import Settings
from caisse.db import make_engine, session_factory, upgrade
from caisse.main import create_app
from tests.provisioning.simboard.launcher import Hardware, SimBoard


@pytest.fixture
def board(tmp_path: Path) -> Iterator[SimBoard]:
    """A complete terminal without a secure element: the key is made in software (key.bin)."""
    with SimBoard(tmp_path / "board", hardware=Hardware(secure_element=None)) as sim:
        yield sim


@pytest.fixture
def make_board(tmp_path: Path) -> Iterator[Callable[[Hardware], SimBoard]]:
    """Start a simulated board with the given hardware; stopped at the end of the test."""
    started: list[SimBoard] = []

    def make(hardware: Hardware) -> SimBoard:
        sim = SimBoard(tmp_path / f"board{len(started)}", hardware=hardware).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


ADMIN_TOKEN = "provisioning-test-token"
VENDOR = {"name": "Ferme des Lilas", "kind": "producer", "zone": "Nord"}


@dataclass
class Backend:
    url: str
    token: str
    session: Callable[[], Session]

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    """The real app (caisse.main.create_app) under uvicorn on a free loopback port, SQLite."""
    db = tmp_path / "caisse.db"
    settings = Settings(environment="test", admin_token=ADMIN_TOKEN, database_url=f"sqlite:///{db}")  # type: ignore[call-arg]
    engine = make_engine(settings.database_url)
    upgrade(engine)
    app = create_app(settings, engine=engine)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:  # bounded wait for readiness
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn died at start"
        time.sleep(0.01)
    try:
        yield Backend(url=f"http://127.0.0.1:{port}", token=ADMIN_TOKEN, session=session_factory(engine))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()


@pytest.fixture
def vendor_id(backend: Backend) -> int:
    with backend.admin() as client:
        response = client.post("/v1/admin/vendors", json=VENDOR)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])
