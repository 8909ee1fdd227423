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
