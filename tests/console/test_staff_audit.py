"""A staff step leaves the same audit entry whether it was taken from the command line or from the
console (who, what, amounts; the command line adds the system user), and a command naming an
account that cannot act is refused in French and changes nothing."""

from __future__ import annotations

import getpass
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session
from typer.testing import CliRunner

from caisse.cli.main import app
from caisse.db import make_engine, session_factory
from caisse.fund import service as fund
from caisse.ingest import review
from caisse.members import households as household_service
from caisse.models import Role
from tests.backend.factories import staff_in_database
from tests.backend.ingest.test_review import _record_id
from tests.backend.settlement.test_settlement import Market
from tests.console.conftest import EMAILS, TestClient, csrf_token, sign_in
from tests.fixtures.database import make_settings

STAFF = EMAILS[Role.ADMIN]
OS_USER = "tresorerie-os"
IMPORT = "household_id;month;amount_eur;reference\n1;2030-01;20,00;a\n1;2030-01;vingt;b\n2;2030-01;12,50;c\n"


def _households(session: Session) -> None:
    for name, members in (("Famille Roux", 2), ("Famille Diallo", 4)):
        household_service.create_household(session, name=name, members=members, zone="Sud")


def _a_grant(session: Session) -> None:
    fund.record_grant(session, month="2030-01", amount_cents=50_000, source="Ville", reference="g1")


def _a_held_payment(session: Session) -> None:
    market = Market(session, make_settings(str(session.get_bind().url)))
    market.pay(0, 1_000)
    review.hold(session, record_ids=[_record_id(session, market, 1)], reason="compteur SUN déjà vu")


@dataclass(frozen=True)
class Case:
    action: str
    setup: Callable[[Session], None]
    command: list[str]
    console_path: str
    console_form: dict[str, str] = field(default_factory=dict)


RULE = {"rule": "per_member", "flat": "100,00", "base": "90,00", "per_extra_member": "45,00", "unspent": "expire", "cap": "0"}
CASES = [
    Case("allowance.allocate", _households, ["allocate", "--month", "2030-01"], "/console/fund/allocate", {"month": "2030-01"}),
    Case("allowance.close_month", _households, ["close-month", "2030-01"], "/console/fund/close", {"month": "2030-01"}),
    Case("allowance.rule", _households,
         ["allowance-rule", "set", "--from", "2030-02", "--rule", "per_member", "--flat", "100,00", "--base", "90,00",
          "--per-extra-member", "45,00", "--no-pro-rata", "--unspent", "expire", "--cap", "0"],
         "/console/fund/rule", {"month": "2030-02", **RULE}),
    Case("contribution.import", _households, ["fund", "import", "{file}", "--skip-errors"], "/console/fund/import",
         {"content": IMPORT, "skip_errors": "oui"}),
    Case("fund.grant", _households,
         ["fund", "grant", "--month", "2030-01", "--amount", "1500", "--source", "Ville", "--reference", "DEL-12"],
         "/console/fund/grant", {"month": "2030-01", "amount": "1500", "source": "Ville", "reference": "DEL-12"}),
    Case("fund.fee", _households,
         ["fund", "fee", "--month", "2030-01", "--amount", "3,50", "--memo", "banque", "--reference", "F-1"],
         "/console/fund/fee", {"month": "2030-01", "amount": "3,50", "memo": "banque", "reference": "F-1"}),
    Case("ledger.reverse", _a_grant, ["ledger", "reverse", "grant:2030-01:g1", "--reason", "saisie en double"],
         "/console/fund/reverse", {"reference": "grant:2030-01:g1", "reason": "saisie en double"}),
    Case("record.release", _a_held_payment, ["review", "release", "1"], "/console/transactions/1/release"),
    Case("settlement.prepare", _a_held_payment, ["settle", "--date", "2026-01-01"], "/console/settlements",
         {"run_date": "2026-01-01"}),
]


def _cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: Path, *staff: str,
                  inactive: tuple[str, ...] = ()) -> str:
    """A copy of the migrated template for the commands (migrating anew takes longer than the test)."""
    shutil.copyfile(template, tmp_path / "cli.db")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CAISSE_DATABASE_URL", url)
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    monkeypatch.setenv("CAISSE_SETTLEMENT_DIR", str(tmp_path / "reglements"))
    monkeypatch.setattr(getpass, "getuser", lambda: OS_USER)
    staff_in_database(url, *staff)
    if inactive:
        staff_in_database(url, *inactive, active=False)
    return url


def _prepare(url_or_engine: str | Engine, setup: Callable[[Session], None]) -> None:
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    with session_factory(engine)() as session:
        setup(session)
        session.commit()
    if isinstance(url_or_engine, str):
        engine.dispose()


def _events(engine: Engine, action: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    with session_factory(engine)() as session:
        rows = session.execute(text("SELECT actor, action, subject, detail FROM audit_event WHERE action = :a ORDER BY id"),
                               {"a": action}).all()
    return [(actor, act, subject, json.loads(detail or "{}")) for actor, act, subject, detail in rows]


def _command(case: Case, tmp_path: Path) -> list[str]:
    path = tmp_path / "cotisations.csv"
    path.write_text(IMPORT, encoding="utf-8")
    return [str(path) if arg == "{file}" else arg for arg in case.command]


@pytest.mark.parametrize("case", CASES, ids=[case.action for case in CASES])
def test_a_step_from_the_command_line_and_from_the_console_leaves_the_same_audit_entry(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, console_client: TestClient, users: Any, engine: Engine,
    sqlite_template: Path,
) -> None:
    url = _cli_database(tmp_path, monkeypatch, sqlite_template, STAFF)
    _prepare(url, case.setup)
    result = CliRunner().invoke(app, [*_command(case, tmp_path), "--by", STAFF])
    assert result.exit_code == 0, result.output
    cli_engine = make_engine(url)
    [(actor, action, subject, detail)] = _events(cli_engine, case.action)
    cli_engine.dispose()
    assert detail.pop("os_user") == OS_USER  # who was logged in on the server

    _prepare(engine, case.setup)
    sign_in(console_client, Role.ADMIN)
    token = csrf_token(console_client.get("/console").text)
    answer = console_client.post(case.console_path, data={**case.console_form, "csrf_token": token})
    assert answer.status_code == 303, answer.text
    assert _events(engine, case.action) == [(actor, action, subject, detail)]
    assert actor == STAFF


def _state(url: str) -> tuple[Any, ...]:
    """Everything a refused command could have touched."""
    engine = make_engine(url)
    with engine.connect() as connection:
        state = tuple(connection.execute(text(sql)).all() for sql in (
            "SELECT reference, amount_cents FROM ledger_transfer ORDER BY id",
            "SELECT id, review, reviewed_by FROM transaction_record ORDER BY id",
            "SELECT month, closed_at FROM allowance_month", "SELECT * FROM allowance_rule", "SELECT * FROM contribution",
            "SELECT COUNT(*) FROM audit_event", "SELECT COUNT(*) FROM bank_file"))
    engine.dispose()
    return state


MUTATING = [
    *(case.command for case in CASES),
    ["review", "reject", "1"], ["review", "release-all", "--terminal", "1"], ["review", "reject-all", "--vendor", "1"],
    ["fund", "contribute", "--household", "1", "--month", "2030-01", "--amount", "20", "--reference", "R-1"],
    ["fund", "match", "--month", "2030-01"],
    ["banque", "importer", "{file}"],
]


# A disabled account, a name typed instead of an account, the system's name: in turn, one per command
# (every command checks `by` through the same caisse.staff.accounts.staff_actor or active_user).
CANNOT_ACT = ("ancienne@caisse.test", "Claire", "système")


def test_every_staff_command_refuses_an_account_that_cannot_act_in_french_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path,
) -> None:
    url = _cli_database(tmp_path, monkeypatch, sqlite_template, inactive=("ancienne@caisse.test",))
    def something_to_act_on(session: Session) -> None:
        _households(session)
        _a_grant(session)
        _a_held_payment(session)
        for household_id in (1, 2):  # contributions to match
            fund.record_contribution(session, household_id=household_id, month="2030-01", amount_cents=2_000,
                                     settings=make_settings(url), reference=f"c{household_id}")

    _prepare(url, something_to_act_on)
    before = _state(url)
    runner = CliRunner()
    for index, command in enumerate(MUTATING):
        by = CANNOT_ACT[index % len(CANNOT_ACT)]
        args = [str(tmp_path / "cotisations.csv") if arg == "{file}" else arg for arg in command]
        (tmp_path / "cotisations.csv").write_text(IMPORT, encoding="utf-8")
        result = runner.invoke(app, [*args, "--by", by])
        assert result.exit_code == 1, (command, result.output)
        assert "n'est pas un compte actif de la console" in result.stderr, (command, result.stderr)
        assert "Traceback" not in result.output
    assert _state(url) == before
