"""Database fixtures, parametrized over the backends.

SQLite always (a file per test, copied from one migrated template). PostgreSQL only when CI is
set, and then a connection failure is an error, not a skip: CI must not go green without it.
Each PostgreSQL test gets a freshly migrated, dedicated schema, so repeated runs start clean.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its test client; httpx (a declared dependency) still works.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session

from caisse.config import Settings
from caisse.db import make_engine, session_factory, upgrade
from caisse.main import create_app

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def scratch_postgres_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of its own, created empty and dropped after (for what needs a whole database)."""
    name = f"{prefix}_{os.getpid()}"
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
# One schema per pytest process: two runs at once (two engineers, or CI and a local run) on one
# server would otherwise drop each other's tables mid-test.
PG_SCHEMA = f"caisse_pytest_{os.getpid()}"
ADMIN_TOKEN = "test-admin-token"
SKIP_PG_REASON = "PostgreSQL tests skipped: CI is unset (set CI=true to run them against 127.0.0.1:5432)"


def pytest_report_header(config: pytest.Config) -> str:
    if os.environ.get("CI"):
        return f"backend databases: SQLite and PostgreSQL ({POSTGRES_URL})"
    return f"backend databases: SQLite only. {SKIP_PG_REASON}"


def make_settings(database_url: str = "sqlite://", **overrides: object) -> Settings:
    return Settings(environment="test", admin_token=ADMIN_TOKEN, database_url=database_url, **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "caisse.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)  # the schema always comes from the migrations
    engine.dispose()
    return path


@pytest.fixture
def cli_database(tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """CAISSE_DATABASE_URL on a migrated SQLite file of the test's own (the `caisse` commands
    never create a database: only `caisse db upgrade` does); returns the URL."""
    path = tmp_path / "cli.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("CAISSE_DATABASE_URL", url)
    return url


def _postgres_engine() -> Engine:
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={PG_SCHEMA}"}, pool_size=10, max_overflow=10)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {PG_SCHEMA}"))
    upgrade(engine)
    return engine


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not os.environ.get("CI"):
        terminalreporter.write_line(SKIP_PG_REASON, yellow=True)


# Without CI the PostgreSQL variants are not generated at all: one line in the header and one in
# the summary say so, instead of a skip per test.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)] if os.environ.get("CI") else ["sqlite"]


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        engine = _postgres_engine()  # CI is set: unreachable is an error, not a skip
    else:
        path = tmp_path / "caisse.db"
        shutil.copyfile(sqlite_template, path)
        engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()
    if request.param == "postgresql":
        _drop_postgres_schema()


def _drop_postgres_schema() -> None:
    engine = make_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE"))
    engine.dispose()


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    """The test's settings; statements go to its own folder, never into the working copy."""
    return make_settings(str(engine.url), settlement_dir=str(tmp_path / "reglements"))


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where a settlement test's run writes its statements and SEPA files."""
    return tmp_path / "reglements"


@pytest.fixture
def rules(settings: Settings, folder: Path) -> Settings:
    return make_settings(str(settings.database_url), settlement_dir=str(folder))


@pytest.fixture
def client(engine: Engine, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


DECIDERS = {"trésorière": "tresoriere@caisse.test", "coordinatrice": "coordinatrice@caisse.test", "Claire": "claire@caisse.test",
            "a": "a@caisse.test", "b": "b@caisse.test"}


@pytest.fixture
def deciders(engine: Engine) -> dict[str, str]:
    """Active console accounts for the people who decide held records in these tests."""
    from caisse.db import session_factory
    from caisse.models import ConsoleUser, Role

    with session_factory(engine)() as session:
        session.add_all(ConsoleUser(email=email, role=Role.TREASURER, password_hash="!") for email in DECIDERS.values())
        session.commit()
    return DECIDERS
