"""`caisse review list|release|reject` and the held records in a run's summary, through the CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from caisse.cli.main import app
from caisse.db import make_engine, session_factory
from caisse.ingest import review
from tests.backend.factories import staff_in_database
from tests.backend.ingest.test_review import _record_id
from tests.backend.settlement.test_settlement import Market
from tests.fixtures.database import DECIDERS, make_settings


@pytest.fixture
def cli_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CAISSE_DATABASE_URL", url)
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    monkeypatch.setenv("CAISSE_SETTLEMENT_DIR", str(tmp_path / "out"))
    staff_in_database(url, *DECIDERS.values())
    return make_engine(url)


def _invoke(*args: str, code: int = 0) -> tuple[str, str]:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.stdout, result.stderr


def _market_with_two_held_payments(engine: Engine) -> tuple[Market, list[int]]:
    with session_factory(engine)() as session:
        market = Market(session, make_settings(str(engine.url)))
        market.pay(0, 1_000)
        market.pay(0, 250)
        market.pay(1, 700)
        held = [_record_id(session, market, 1), _record_id(session, market, 1, index=1)]
        assert review.hold(session, record_ids=held, reason="compteur SUN déjà vu") == 2
        session.commit()
    return market, held


def test_review_list_shows_each_held_record_with_its_vendor_and_reason(cli_engine: Engine) -> None:
    market, held = _market_with_two_held_payments(cli_engine)
    stdout, stderr = _invoke("review", "list")
    header, *rows = [line.split("\t") for line in stdout.splitlines()]
    assert header[:3] == ["enregistrement", "commerçant", "nom"]
    assert [(int(row[0]), int(row[1]), row[8], row[9]) for row in rows] == [
        (held[0], market.vendor_ids[0], "10,00", "compteur SUN déjà vu"),
        (held[1], market.vendor_ids[1], "7,00", "compteur SUN déjà vu"),
    ]
    assert rows[0][3:5] == ["01/01/2026", "09:01:00"]  # local time of the terminal's stamp
    assert "2 enregistrement(s)" in stderr
    only_second, _ = _invoke("review", "list", "--vendor", str(market.vendor_ids[1]))
    assert [line.split("\t")[0] for line in only_second.splitlines()[1:]] == [str(held[1])]


def test_review_release_and_reject_decide_once_with_french_sentences(cli_engine: Engine) -> None:
    _, held = _market_with_two_held_payments(cli_engine)
    _, refused = _invoke("review", "release", str(held[0]), "--by", "trésorière", code=1)
    assert "compte actif de la console" in refused  # a typed name is no account: nothing decided
    stdout, stderr = _invoke("review", "release", str(held[0]), "--by", DECIDERS["trésorière"])
    assert stdout.strip() == str(held[0]) and f"libéré par {DECIDERS['trésorière']}" in stderr
    stdout, stderr = _invoke("review", "reject", str(held[1]), "--by", DECIDERS["coordinatrice"])
    assert stdout.strip() == str(held[1]) and "rejeté par coordinatrice@" in stderr and "remboursé" in stderr
    _, refused = _invoke("review", "reject", str(held[0]), "--by", DECIDERS["a"], code=1)
    assert "record_not_held" in refused
    _invoke("review", "release", "999999", "--by", DECIDERS["a"], code=1)
    assert _invoke("review", "list")[0].splitlines()[1:] == []


def test_the_run_summary_lists_each_held_record_per_vendor(cli_engine: Engine, tmp_path: Path) -> None:
    market, held = _market_with_two_held_payments(cli_engine)
    stdout, stderr = _invoke("settle", "--date", "2026-01-01")
    assert f"caisse review list --vendor {market.vendor_ids[0]}" in stderr
    [summary] = (tmp_path / "out").glob("*/resume.csv")
    rows = list(csv.reader(summary.read_text(encoding="utf-8-sig").splitlines(), delimiter=";"))
    start = next(index for index, row in enumerate(rows) if row and row[0].startswith("Paiements retenus"))
    listed = [(int(row[0]), int(row[2]), row[8]) for row in rows[start + 2:]]
    assert listed == [(market.vendor_ids[0], held[0], "10,00"), (market.vendor_ids[1], held[1], "7,00")]
    paid = next(row for row in rows if row and row[0] == "total payé")
    assert paid[4] == "2,50"


def test_a_suspect_terminal_is_cleared_then_its_held_records_released_in_one_command(cli_engine: Engine) -> None:
    from sqlalchemy import update

    from caisse.models import Terminal, TerminalStatus

    market, held = _market_with_two_held_payments(cli_engine)
    terminal_id = market.chains[0].terminal_id
    assert "pas un compte actif" in _invoke("terminal", "clear", str(terminal_id), "--by", "coordinatrice", code=1)[1]
    _, refused = _invoke("terminal", "clear", str(terminal_id), "--by", DECIDERS["coordinatrice"], code=1)
    assert "pas signalé suspect" in refused
    with session_factory(cli_engine)() as session:
        session.execute(update(Terminal).where(Terminal.id == terminal_id).values(status=TerminalStatus.SUSPECT))  # type: ignore[arg-type]
        session.commit()
    _, cleared = _invoke("terminal", "clear", str(terminal_id), "--by", DECIDERS["coordinatrice"])
    assert f"remis en service par {DECIDERS['coordinatrice']}" in cleared
    assert _invoke("review", "list")[0].count("\n") == 3  # the header and both records: clearing released nothing
    stdout, stderr = _invoke("review", "release-all", "--terminal", str(terminal_id), "--by", DECIDERS["trésorière"])
    assert (stdout.split(), f"1 enregistrement(s) libéré(s) par {DECIDERS['trésorière']}." in stderr) == ([str(held[0])], True)
    _, refused = _invoke("review", "reject-all", "--by", DECIDERS["trésorière"], code=1)
    assert "terminal ou d'un commerçant" in refused


def test_settle_prints_each_vendor_account_that_disagrees_with_its_records(cli_engine: Engine) -> None:
    from caisse.cards import service as card_service
    from caisse.ledger import postings as ledger

    with session_factory(cli_engine)() as session:
        market = Market(session, make_settings(str(cli_engine.url)))
        payable = ledger.vendor_payable_code(market.vendor_ids[0])
        member = ledger.member_code(card_service.get_card(session, uid_hex=market.uid.hex()).household_id)
        ids = ledger.account_ids(session, codes=[payable, member])
        ledger.post_transfer(session, debit=ids[payable], credit=ids[member], amount_cents=3_000, kind=ledger.TransferKind.VOID,
                             reference="test-drift")
        session.commit()
    _, stderr = _invoke("settle", "--date", "2026-01-01")
    assert (f"Écart entre compte et enregistrements : commerçant {market.vendor_ids[0]} : compte à payer -30,00 €,"
            " enregistrements 0,00 € (écart -30,00 €)") in stderr


def test_accepting_lost_records_from_the_command_line_names_the_account_and_refuses_in_french(cli_engine: Engine) -> None:
    from caisse.models import Terminal, TerminalHealth

    by = next(iter(DECIDERS.values()))  # an active console account (the fixture made it)

    with session_factory(cli_engine)() as session:
        market = Market(session, make_settings(str(cli_engine.url)))
        chain = market.chains[0]
        first, _, third = (chain.pay(market.uid, amount) for amount in (100, 200, 300))
        market.upload(0, [first, third])
        tid = chain.terminal_id
        session.commit()
    _, refused = _invoke("terminal", "perte", str(tid), "--by", by, code=1)
    assert "rien à constater" in refused and "Traceback" not in refused
    with session_factory(cli_engine)() as session:
        session.add(TerminalHealth(terminal_id=tid, terminal_time=1, firmware_version="0.1.0", uptime_s=0, boots=1,
                                   watchdog_resets=0, crash_resets=0, task_restarts=0, safe_mode_boots=0, errors={},
                                   last_error="", battery_mv=None, battery_low=False, unsent_records=0,
                                   unsigned_records=0, log_free_bytes=0, terminal_acked_seq=3, lost_first_seq=2,
                                   lost_last_seq=2, rewound_from_seq=3, rewound_to_seq=1))
        session.commit()
    out, said = _invoke("terminal", "perte", str(tid), "--by", by)
    assert out.strip() == str(tid) and "perte des n° 2 à 2 constatée" in said
    with session_factory(cli_engine)() as session:
        terminal = session.get(Terminal, tid)
        assert terminal is not None and terminal.acked_seq == 3
