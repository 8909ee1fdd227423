"""Settings: one object, environment prefix CAISSE_, no default secret outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from caisse.config import DEV_ADMIN_TOKEN, Settings


def test_development_runs_on_sqlite_with_the_documented_dev_token(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CAISSE_ENVIRONMENT", "CAISSE_ADMIN_TOKEN", "CAISSE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.environment == "development"
    assert settings.admin_token == DEV_ADMIN_TOKEN
    assert settings.database_url == "sqlite:///./caisse.db"
    assert settings.max_payment_cents == 15_000


@pytest.mark.parametrize("token", [None, DEV_ADMIN_TOKEN, ""])
def test_production_refuses_to_start_without_a_token_of_its_own(monkeypatch: pytest.MonkeyPatch, token: str | None) -> None:
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "production")
    if token is None:
        monkeypatch.delenv("CAISSE_ADMIN_TOKEN", raising=False)
    else:
        monkeypatch.setenv("CAISSE_ADMIN_TOKEN", token)
    with pytest.raises(ValidationError, match="CAISSE_ADMIN_TOKEN"):
        Settings()


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAISSE_MAX_PAYMENT_CENTS", "9000")
    assert Settings().max_payment_cents == 9000


PRODUCTION = {"CAISSE_ENVIRONMENT": "production", "CAISSE_ADMIN_TOKEN": "un-secret-de-la-caisse",
              "CAISSE_DATABASE_URL": "postgresql+psycopg://caisse@localhost/caisse",
              "CAISSE_DEBTOR_IBAN": "FR1420041010050500013M02606",
              "CAISSE_CARD_MASTER_KEY_HEX": "11" * 16, "CAISSE_CARD_META_KEY_HEX": "22" * 16,
              "CAISSE_MEMBER_CODE_MASTER_KEY_HEX": "33" * 32}


@pytest.mark.parametrize(("setting", "value", "named"), [
    ("CAISSE_DATABASE_URL", "sqlite:////var/lib/caisse/caisse.db", "PostgreSQL"),
    ("CAISSE_ADMIN_TOKEN", DEV_ADMIN_TOKEN, "secret propre"),
    ("CAISSE_DEBTOR_IBAN", "FR76 3000 6000 0112 3456 7890 189", "l'IBAN du compte de la caisse"),
    ("CAISSE_CARD_MASTER_KEY_HEX", "00" * 16, "clé propre"),
])
def test_production_refuses_an_unsafe_setting_by_name_in_french_and_the_cli_shows_no_traceback(
    monkeypatch: pytest.MonkeyPatch, setting: str, value: str, named: str
) -> None:
    from typer.testing import CliRunner

    from caisse.cli.main import app

    for name, good in PRODUCTION.items():
        monkeypatch.setenv(name, good)
    Settings()  # the good production settings pass
    monkeypatch.setenv(setting, value)
    with pytest.raises(ValidationError, match=setting):
        Settings()
    answer = CliRunner().invoke(app, ["db", "upgrade"])
    assert answer.exit_code == 2 and answer.exception is not None and isinstance(answer.exception, SystemExit)
    assert f"Erreur de configuration : {setting} doit" in answer.stderr and named in answer.stderr
    assert "Traceback" not in answer.output and "pydantic" not in answer.output


def test_every_problem_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from caisse.cli.main import app

    monkeypatch.setenv("CAISSE_ENVIRONMENT", "production")
    for name in ("CAISSE_ADMIN_TOKEN", "CAISSE_DATABASE_URL", "CAISSE_DEBTOR_IBAN"):
        monkeypatch.delenv(name, raising=False)
    stderr = CliRunner().invoke(app, ["settle"]).stderr
    assert all(name in stderr for name in ("CAISSE_ADMIN_TOKEN", "CAISSE_DATABASE_URL", "CAISSE_DEBTOR_IBAN",
                                           "CAISSE_CARD_MASTER_KEY_HEX", "CAISSE_CARD_META_KEY_HEX",
                                           "CAISSE_MEMBER_CODE_MASTER_KEY_HEX"))
    monkeypatch.setenv("CAISSE_MAX_PAYMENT_CENTS", "beaucoup")
    assert "réglage CAISSE_MAX_PAYMENT_CENTS invalide" in CliRunner().invoke(app, ["settle"]).stderr
