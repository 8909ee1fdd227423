"""caisse simulate: a small run is clean and reproducible, every fault class is detected or
survived, and a broken invariant is caught (docs/simulation.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlmodel import Session
from typer.testing import CliRunner

import caisse.simulation
from caisse.cli.main import app
from caisse.db import make_engine, upgrade
from caisse.ledger import postings as ledger
from caisse.simulation import SimulationConfig, SimulationError, simulate
from caisse.simulation.faults import ADVERSARIES, FaultKind, Outcome

# The faults alone; the adversaries have their own tests (test_adversaries.py).
SMALL = ["--terminals", "4", "--members", "24", "--days", "2", "--seed", "11", "--power-cuts", "2",
         "--network-drops", "5", "--clones", "2", "--no-adversaries"]
SMALL_CONFIG = SimulationConfig(terminals=4, members=24, days=2, seed=11, power_cuts=2, network_drops=5, clones=2,
                                adversaries=False)
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def run_cli(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["simulate", *args])
    return result.exit_code, result.stdout


@pytest.fixture(scope="module")
def small_json() -> str:
    code, output = run_cli([*SMALL, "--json"])
    assert code == 0, output
    return output


def test_a_small_seed_runs_clean_and_twice_gives_identical_json(small_json: str) -> None:
    code, again = run_cli([*SMALL, "--json"])
    assert code == 0
    assert again == small_json
    report = json.loads(small_json)
    assert report["passed"] and all(check["passed"] for check in report["checks"])
    approved = report["terminals"]["approved"]
    assert approved["payments"] > 40 and report["backend"]["accepted"] > 40
    assert report["money"]["ledger_balance_sum_cents"] == 0
    assert report["money"]["paid_out_cents"] > 0 and len(report["nights"]) == 2


def test_another_seed_gives_another_run(small_json: str) -> None:
    code, other = run_cli([*SMALL[:6], "--seed", "12", "--no-adversaries", "--json"])
    assert code == 0
    assert json.loads(other)["terminals"] != json.loads(small_json)["terminals"]


def test_each_fault_class_is_detected_or_survived(small_json: str) -> None:
    faults = json.loads(small_json)["faults"]
    happened = {f["kind"]: f["outcome"] for f in faults if f["outcome"] != Outcome.NOT_TRIGGERED}
    assert set(happened) == {kind.value for kind in FaultKind if kind not in ADVERSARIES}, happened
    expected = {FaultKind.POWER_CUT: {Outcome.SURVIVED}, FaultKind.OFFLINE: {Outcome.SURVIVED},
                FaultKind.CUT_BEFORE: {Outcome.SURVIVED}, FaultKind.CUT_AFTER: {Outcome.SURVIVED},
                FaultKind.DOUBLE: {Outcome.SURVIVED}, FaultKind.CORRUPTED: {Outcome.SURVIVED},
                FaultKind.LOST_CARD: {Outcome.DETECTED},
                FaultKind.CLONE_BASIC: {Outcome.RESIDUAL}, FaultKind.TAMPER: {Outcome.DETECTED},
                FaultKind.CLONE_SECURE: {Outcome.DETECTED}}
    for kind, outcome in happened.items():
        assert outcome in expected[FaultKind(kind)], (kind, outcome)
    report = json.loads(small_json)
    assert report["terminals"]["reboots"] >= 1  # a power cut rebooted a terminal
    assert report["backend"]["duplicates"] >= 1  # a re-sent or doubled batch was recognised
    # bad_signature: the tamper's first copy and the corrupted upload; seq_conflict: the tamper's re-signed copy
    assert report["backend"]["rejected"] == {"bad_signature": 2, "seq_conflict": 1}
    assert len(report["backend"]["flagged_terminals"]) == 1 and report["backend"]["held_records"] > 0


def test_the_french_summary_names_the_seed_and_every_check(small_json: str) -> None:
    code, output = run_cli(SMALL)
    assert code == 0
    assert "graine 11" in output and "Tous les invariants tiennent." in output
    assert output.count("✓") == len(json.loads(small_json)["checks"])


def double_post(session: Session) -> None:
    """A payment posted a second time under another reference: the member pays twice."""
    reference, debit, credit, amount = session.execute(text(
        "SELECT reference, debit_account_id, credit_account_id, amount_cents FROM ledger_transfer"
        " WHERE kind = 'payment' ORDER BY id LIMIT 1")).one()
    ledger.post_transfer_rows(session, rows=[(debit, credit, amount, "payment", reference + ":again", None)])


def unbalance(session: Session) -> None:
    """A balance changed behind the journal's back (the read-modify-write a peer system had)."""
    session.execute(text("UPDATE ledger_account SET credits_posted_cents = credits_posted_cents + 100"
                         " WHERE code = 'vendor_payable:1'"))


@pytest.mark.parametrize(("corrupt", "broken"), [
    (double_post, "ledger: records_match_transfers"),
    (unbalance, "ledger: balances_sum_to_zero"),
])
def test_a_broken_invariant_fails_the_run_with_its_seed(
    monkeypatch: pytest.MonkeyPatch, corrupt: Callable[[Session], None], broken: str
) -> None:
    monkeypatch.setattr(caisse.simulation, "simulate", lambda config: simulate(config, corrupt=corrupt))
    result = CliRunner().invoke(app, ["simulate", *SMALL, "--days", "1", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["passed"]
    assert broken in {check["name"] for check in report["checks"] if not check["passed"]}
    assert "--seed 11" in result.stderr


def test_bad_options_are_refused_in_french() -> None:
    with pytest.raises(SimulationError, match="--terminals"):
        simulate(SimulationConfig(terminals=1))
    code, _ = run_cli(["--firmware-runtime", "jython"])
    assert code == 2


def test_a_database_that_holds_a_caisse_is_refused_and_left_as_it_was(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'caisse.db'}"
    engine = make_engine(url)
    upgrade(engine, "0001")  # an old schema: refusing must not migrate it
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO vendor (name, kind, zone, convention_status, created_at)"
                                " VALUES ('Ferme des Lilas', 'producer', 'Nord', 'active', '2026-01-01')"))
    result = CliRunner().invoke(app, ["simulate", *SMALL, "--db", url])
    assert result.exit_code == 2
    assert "la base de données n'est pas vide" in result.stderr
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
        assert connection.execute(text("SELECT count(*) FROM vendor")).scalar_one() == 1
    engine.dispose()


def test_micropython_terminals_sign_the_same_records() -> None:
    report = simulate(SimulationConfig(terminals=3, members=12, days=1, seed=5, power_cuts=1, network_drops=1,
                                       clones=0, micropython_terminals=2, adversaries=False))
    assert report["passed"], report["checks"]
    assert report["micropython"]["identical"] and report["micropython"]["records"] > 5


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("CI"), reason="PostgreSQL runs when CI is set")
def test_postgresql_gives_the_same_report_as_sqlite(small_json: str) -> None:
    schema = f"caisse_simulation_{os.getpid()}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        code, output = run_cli([*SMALL, "--json", "--db", f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"])
        assert code == 0, output
        assert output == small_json
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()
