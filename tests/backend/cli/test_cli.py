"""The `caisse` command, through typer's CliRunner, on a SQLite file of its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from caisse.cli.main import app
from caisse.db import make_engine, session_factory
from caisse.models import Card, Terminal
from caisse_common import protocol
from tests.backend.factories import new_key


@pytest.fixture
def invoke(cli_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    url = cli_database
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.stdout.strip()

    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def test_db_upgrade_creates_the_schema(invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'nouvelle.db'}"
    monkeypatch.setenv("CAISSE_DATABASE_URL", url)
    invoke("db", "upgrade")
    invoke("db", "upgrade")  # idempotent
    engine = make_engine(url)
    assert {"terminal", "transaction_record", "ledger_transfer"} <= set(inspect(engine).get_table_names())
    engine.dispose()


STAFF = ("--by", "admin@caisse.test")


def test_the_registry_commands_print_the_ids_they_create(invoke) -> None:  # type: ignore[no-untyped-def]
    invoke("user", "add", "admin@caisse.test", "--password", "mot-de-passe-long")
    vendor = invoke("vendor", "add", "--name", "Épicerie du Parc", "--kind", "epicerie", "--zone", "Sud", *STAFF)
    household = invoke("member", "add", "--name", "Famille Nguyen", "--members", "3", "--zone", "Sud")
    card = invoke("card", "issue", "--household", household, "--uid", "04A1B2C3D4E5F6", *STAFF)
    key_hex = protocol.public_key_bytes(new_key()).hex()
    terminal = invoke("terminal", "register", "--vendor", vendor, "--public-key", key_hex)
    assert (vendor, household, card, terminal) == ("1", "1", "1", "1")
    assert invoke("card", "block", "04a1b2c3d4e5f6", *STAFF) == "1"
    assert invoke("terminal", "revoke", terminal, *STAFF) == "1"
    engine = make_engine(invoke.url)
    with session_factory(engine)() as session:
        assert session.get(Card, 1).status == "blocked"  # type: ignore[union-attr]
        assert session.get(Terminal, 1).status == "revoked"  # type: ignore[union-attr]
    engine.dispose()


def test_a_refused_operation_exits_non_zero_with_a_message(invoke) -> None:  # type: ignore[no-untyped-def]
    invoke("user", "add", "admin@caisse.test", "--password", "mot-de-passe-long")
    invoke("vendor", "add", "--name", "X", "--kind", "spaceship", "--zone", "Sud", *STAFF, code=2)  # not a kind: a usage error
    invoke("card", "issue", "--household", "99", "--uid", "deadbeef", *STAFF, code=1)
    invoke("terminal", "register", "--vendor", "1", "--public-key", "00", code=1)
    invoke("card", "block", "zz", *STAFF, code=1)


def test_a_refused_operation_is_explained_in_french_with_its_code(cli_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    CliRunner().invoke(app, ["user", "add", "admin@caisse.test", "--password", "mot-de-passe-long"])
    result = CliRunner().invoke(app, ["card", "issue", "--household", "99", "--uid", "deadbeef", *STAFF])
    assert (result.exit_code, result.stdout) == (1, "")
    assert "Erreur : Foyer introuvable. (household_not_found)" in result.stderr
