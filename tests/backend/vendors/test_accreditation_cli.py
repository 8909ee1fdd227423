"""`caisse vendor conventionnement`: shows what changes, applies only with --oui, as an active account."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from caisse import audit
from caisse.cli.main import app
from caisse.db import make_engine, session_factory, upgrade
from caisse.staff import accounts
from caisse.vendors import accreditation
from caisse.vendors import service as vendor_service

STAFF = "coordination@caisse.test"


def test_a_change_is_shown_then_applied_with_oui_and_audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CAISSE_DATABASE_URL", url)
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "test")  # no upgrade at each command: done once below
    monkeypatch.setenv("CAISSE_ADMIN_TOKEN", "test-admin-token")
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    monkeypatch.setattr(accounts, "_hasher", PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),)))
    engine = make_engine(url)
    upgrade(engine)
    with session_factory(engine)() as session:
        accounts.create_user(session, email=STAFF, password="un mot de passe assez long", role="coordinator")
        vendor = vendor_service.create_vendor(session, name="Ferme des Lilas", kind="producer", zone="Nord")
        session.commit()
        vendor_id = str(vendor.id)

    def caisse(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    assert caisse("vendor", "conventionnement", "ajouter-critere", "Produits locaux", "--par", STAFF).startswith("1")
    change = ("vendor", "conventionnement", "modifier", vendor_id, "--par", STAFF, "--fin", "2026-06-30",
              "--visite-le", "2026-02-01", "--visite-par", "Awa", "--formation-le", "2026-02-02", "--cocher", "1")
    shown = caisse(*change, code=1)
    assert "Fin : — → 30/06/2026" in shown and "relancez avec --oui" in shown
    assert "critère 1\tnon" in caisse("vendor", "conventionnement", "afficher", vendor_id)  # nothing applied yet
    caisse(*change, "--oui")
    assert "Rien ne change" in caisse(*change, "--oui")
    refused = caisse("vendor", "conventionnement", "modifier", vendor_id, "--par", "intrus@caisse.test",
                     "--statut", "suspendu", "--oui", code=1)
    assert "pas un compte actif" in refused and "Traceback" not in refused
    assert "date invalide" in caisse("vendor", "conventionnement", "modifier", vendor_id, "--par", STAFF,
                                     "--fin", "30/06/2026", code=1)
    with session_factory(engine)() as session:
        now = accreditation.current(session, vendor_id=int(vendor_id))
        assert (now.status, str(now.ends_on), now.criteria) == ("active", "2026-06-30", frozenset({1}))
        [event] = [e for e in audit.events(session, subjects=[f"vendor:{vendor_id}"]) if e.action == "vendor.accreditation"]
        assert event.actor == STAFF and "os_user" in (event.detail or "")
    engine.dispose()


@pytest.mark.parametrize("command", ["", "afficher", "modifier", "criteres", "ajouter-critere", "retirer-critere", "a-renouveler"])
def test_the_help_of_each_command_is_french(command: str, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from caisse_common.cli_french import exit_code
    from tests.backend.cli.test_cli_french import ENGLISH_CLICK, _english_words

    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    args = ["vendor", "conventionnement", *([command] if command else []), "--help"]
    assert exit_code(app, args=args) == 0
    shown = capsys.readouterr().out
    assert "conventionnement" in shown.lower()
    assert not _english_words(shown) and not [e for e in ENGLISH_CLICK if e in shown], shown
