"""`caisse user add | disable | enable`: the first administrator, and an account that is closed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caisse import audit
from caisse.cli.main import app
from caisse.config import Settings
from caisse.db import make_engine, session_factory
from caisse.staff import accounts
from tests.console.conftest import sign_in_directly

PASSWORD = "un-mot-de-passe-solide"


@pytest.fixture
def invoke(cli_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, input: str | None = None) -> str:
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def test_user_add_prompts_twice_for_the_password_and_creates_an_admin(invoke: Callable[..., str], tmp_path: Path) -> None:
    output = invoke("user", "add", "Premiere.Admin@Example.org", input=f"{PASSWORD}\nune faute\n{PASSWORD}\n{PASSWORD}\n")
    assert "Les deux saisies diffèrent : recommencez." in output and "Mot de passe, une seconde fois" in output
    assert "Repeat" not in output and "Error" not in output
    assert "Compte créé : premiere.admin@example.org (admin)." in output
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with session_factory(engine)() as session:
        user = accounts.get_user(session, email="premiere.admin@example.org")
        assert user.role == "admin" and user.password_hash.startswith("$argon2id$")
        [event] = audit.events(session, action_prefix="user.")
        assert (event.actor, event.action, event.subject) == ("installation", "user.create", "user:premiere.admin@example.org")
        assert "os_user" in json.loads(event.detail or "{}") and PASSWORD not in (event.detail or "")
    engine.dispose()


def test_user_add_refuses_a_short_password_an_unknown_role_and_a_second_account(invoke: Callable[..., str]) -> None:
    assert "invalid_password" in invoke("user", "add", "a@example.org", "--password", "court", code=1)
    assert "« boss » n'est pas l'une des valeurs" in invoke("user", "add", "a@example.org", "--role", "boss", "--password", PASSWORD, code=2)
    assert "admin_by_required" in invoke("user", "add", "a@example.org", "--role", "committee", "--password", PASSWORD, code=1)
    invoke("user", "add", "a@example.org", "--password", PASSWORD)  # the first administrator: no --by
    assert "admin_by_required" in invoke("user", "add", "c@example.org", "--password", PASSWORD, code=1)
    assert "user_exists" in invoke("user", "add", "A@example.org", "--password", PASSWORD, "--by", "a@example.org", code=1)


def test_a_disabled_account_cannot_sign_in_and_loses_its_sessions(invoke: Callable[..., str], tmp_path: Path) -> None:
    invoke("user", "add", "a@example.org", "--password", PASSWORD)
    admin_by = ("--by", "a@example.org")
    invoke("user", "add", "b@example.org", "--role", "coordinator", "--password", PASSWORD, *admin_by)
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    settings = Settings(environment="development")
    with session_factory(engine)() as session:
        token, _ = sign_in_directly(session, email="b@example.org", password=PASSWORD, settings=settings)
        session.commit()
    invoke("user", "disable", "b@example.org", *admin_by)
    with session_factory(engine)() as session:
        assert accounts.signed_in(session, token=token) is None
        with pytest.raises(accounts.SignInRefused):
            sign_in_directly(session, email="b@example.org", password=PASSWORD, settings=settings)
        session.commit()
    invoke("user", "enable", "b@example.org", *admin_by)
    with session_factory(engine)() as session:
        assert sign_in_directly(session, email="b@example.org", password=PASSWORD, settings=settings)[0]
        assert [e.action for e in audit.events(session, action_prefix="user.")] == [
            "user.enable", "user.disable", "user.create", "user.create"]
    engine.dispose()
    assert "user_not_found" in invoke("user", "disable", "personne@example.org", *admin_by, code=1)
