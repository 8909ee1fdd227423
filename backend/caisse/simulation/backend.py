"""The real backend under simulated time: `create_app` served in-process through httpx's
ASGITransport, and every clock the backend reads frozen at the simulation's current second.

The backend dates card blocks, sync answers, allowances and settlement runs with the wall clock;
time-machine replaces that clock for the whole process while the simulation runs, so those dates
come from the simulation and a run is the same whatever day it is replayed.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import time_machine
from sqlalchemy import Engine, inspect, select
from sqlmodel import Session, col

from caisse.config import Settings
from caisse.db import make_engine, session_factory, table_of, upgrade
from caisse.main import create_app
from caisse.models import AllowanceKind, UnspentPolicy, Vendor

ADMIN_TOKEN = "simulation-admin-token"
# Fixed here rather than read from CAISSE_* variables, so a run does not change with the shell;
# values of many types, each checked by Settings.
SETTINGS: dict[str, Any] = {
    "environment": "test",
    "admin_token": ADMIN_TOKEN,
    "max_payment_cents": 15_000,
    "pin_threshold_cents": 5_000,
    "offline_max_age_s": 259_200,
    "void_window_s": 300,
    "sync_clock_window_s": 300,
    "offline_share_bp": 5_000,
    "offline_daily_cap_cents": 10_000,
    "allowance_rule": AllowanceKind.PER_MEMBER,
    "allowance_base_cents": 15_000,
    "allowance_per_extra_member_cents": 7_500,
    "allowance_pro_rata": True,
    "allowance_unspent": UnspentPolicy.CARRY_OVER,
    "allowance_carry_over_cap_cents": 5_000,
    "settlement_requires_approval": False,
    "settlement_timezone": "Europe/Paris",
}


class SimulationError(RuntimeError):
    """The simulation cannot run (a non-empty database, an unexpected answer); message in French."""


class Backend:
    """One backend: its engine, the app, an HTTP client on it, and the simulated clock."""

    def __init__(self, *, database_url: str | None, start_s: int, extra_settings: dict[str, Any] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="caisse-simulation-")
        url = database_url or f"sqlite:///{Path(self._tmp.name) / 'caisse.db'}"
        self.settings = Settings(database_url=url, settlement_dir=str(Path(self._tmp.name) / "reglements"),
                                 **SETTINGS, **(extra_settings or {}))
        self.engine: Engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        if self._holds_a_caisse():  # checked before migrating: a refused database is left as it was
            self.engine.dispose()
            self._tmp.cleanup()
            raise SimulationError("la base de données n'est pas vide : la simulation demande une base neuve")
        upgrade(self.engine)
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(self.settings, engine=self.engine)),
                                         base_url="http://caisse.simulation")
        # The server's log of unexpected errors, kept with the run instead of printed: an adversary's
        # junk that makes the app fail is judged from its answer, and a person sees no traceback.
        self.server_errors: list[str] = []
        self._logger = logging.getLogger("caisse")
        self._handler = _Collect(self.server_errors)
        self._logger.addHandler(self._handler)
        self._propagate, self._logger.propagate = self._logger.propagate, False
        self._travel = time_machine.travel(datetime.fromtimestamp(start_s, UTC), tick=False)
        self._clock = self._travel.start()
        self.now_s = start_s

    def _holds_a_caisse(self) -> bool:
        if not inspect(self.engine).has_table(table_of(Vendor).name):
            return False
        with self.sessions() as session:
            return session.execute(select(col(Vendor.id)).limit(1)).first() is not None

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._logger.propagate = self._propagate
        self._travel.stop()
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()
        self.engine.dispose()
        self._tmp.cleanup()

    def move_to(self, now_s: int) -> None:
        """Advance the backend's clock (never backwards: the simulation's events are in order)."""
        assert now_s >= self.now_s, (now_s, self.now_s)
        if now_s != self.now_s:
            self._clock.move_to(datetime.fromtimestamp(now_s, UTC))
            self.now_s = now_s

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        """One HTTP exchange with the app, as the terminal's transport sees it."""
        response = self._loop.run_until_complete(self._client.request(method, path, headers=headers, content=body))
        return response.status_code, response.content

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success, as the CLI's."""
        with self.sessions() as session:
            yield session
            session.commit()


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(level=logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage() + (f": {record.exc_info[1]!r}" if record.exc_info else ""))
