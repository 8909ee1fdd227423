"""Backup and restore (caisse.backup), from the command line, on SQLite and (CI) PostgreSQL with
pg_dump/pg_restore: the restored database is the backup's, terminals whose acknowledged seq was
ahead re-send, and nothing is counted twice; records a terminal can no longer send stay visible
as a gap and are never paid blindly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlmodel import Session
from typer.testing import CliRunner

from caisse.cli.main import app
from caisse.db import make_engine, session_factory
from caisse.ingest.upload import ingest_batch
from caisse.ledger import postings as ledger
from caisse.models import AuditEvent, Terminal
from tests.backend.audit import assert_ledger_invariants
from tests.backend.settlement.test_settlement import Market
from tests.fixtures.database import BACKENDS, make_settings, scratch_postgres_database


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """One database for the module (creating and dropping one costs a checkpoint): each test empties it."""
    with scratch_postgres_database("caisse_restore") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database of its own, migrated by the command line: a restore replaces a whole database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'caisse.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
        empty = make_engine(url)
        with empty.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        empty.dispose()
    monkeypatch.setenv("CAISSE_DATABASE_URL", url)
    monkeypatch.setenv("CAISSE_ENVIRONMENT", "development")
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    return url


def _state(engine: Engine, market: Market) -> tuple[int, int, int]:
    with session_factory(engine)() as session:
        terminal = session.get(Terminal, market.chains[0].terminal_id)
        assert terminal is not None
        assert_ledger_invariants(session)
        payable = ledger.balance_cents(session, code=ledger.vendor_payable_code(market.vendor_ids[0]))
        records = session.execute(text("SELECT COUNT(*) FROM transaction_record")).scalar_one()
        return terminal.acked_seq, payable, int(records)


def _upload(engine: Engine, market: Market, raws: list[bytes]) -> None:
    with session_factory(engine)() as session:
        ingest_batch(session, terminal_id=market.chains[0].terminal_id, raw_records=raws, settings=market.settings)
        session.commit()


def test_a_restored_backup_takes_back_what_terminals_re_send_once(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    session = session_factory(engine)()
    market = Market(session, make_settings(database_url), vendors=1)
    chain = market.chains[0]
    before = [chain.pay(market.uid, 1_000), chain.pay(market.uid, 200)]
    after = [chain.pay(market.uid, 30), chain.pay(market.uid, 4)]
    session.close()
    _upload(engine, market, before)
    runner = CliRunner()
    saved = runner.invoke(app, ["db", "sauvegarder", "--dossier", str(tmp_path / "sauvegardes")])
    assert saved.exit_code == 0, saved.output
    backup = Path(saved.stdout.strip())
    assert backup.is_file() and backup.parent == tmp_path / "sauvegardes"
    _upload(engine, market, after)
    assert _state(engine, market) == (4, 1_234, 4)
    engine.dispose()

    refused = runner.invoke(app, ["db", "restaurer", str(backup)])
    assert refused.exit_code == 1 and "--oui" in refused.stderr
    restored = runner.invoke(app, ["db", "restaurer", str(backup), "--oui"])
    assert restored.exit_code == 0, restored.output
    assert restored.stdout.splitlines() == ["terminal\tacquitté jusqu'à", f"{chain.terminal_id}\t2"]
    engine = make_engine(database_url)
    assert _state(engine, market) == (2, 1_200, 2)  # the backup's state, records 3 and 4 forgotten
    with session_factory(engine)() as check:
        [event] = check.execute(select(AuditEvent).where(AuditEvent.action == "database.restore")).scalars()
        assert event.detail is not None and backup.name in event.detail
    # The terminal re-sends what the restored database lacks, twice even: counted once.
    _upload(engine, market, after)
    _upload(engine, market, before + after)
    assert _state(engine, market) == (4, 1_234, 4)
    engine.dispose()


def test_records_a_terminal_reclaimed_before_the_restore_stay_a_visible_gap(session: Session, engine: Engine,
                                                                              tmp_path: Path) -> None:
    """Record 2 was acknowledged, then lost with the restore, and its terminal freed its flash:
    record 3 arrives after a hole. It is stored, acked_seq stays below the hole and the chain is
    not verified, so the run holds it back with a reason instead of paying it blindly."""
    from datetime import date

    from caisse.settlement import runs as settlement

    rules = make_settings(str(engine.url), settlement_dir=str(tmp_path / "out"))
    market = Market(session, rules, vendors=1)
    chain = market.chains[0]
    first, lost, third = chain.pay(market.uid, 100), chain.pay(market.uid, 200), chain.pay(market.uid, 300)
    assert lost
    market.upload(0, [first])
    market.upload(0, [third])
    terminal = session.get(Terminal, chain.terminal_id, populate_existing=True)
    assert terminal is not None and terminal.acked_seq == 1
    session.commit()
    result = settlement.settle(session_factory(engine), run_date=date(2026, 1, 1), settings=rules)
    assert result.paid_cents == 100
    assert result.held == [(market.vendor_ids[0], 300, settlement.HELD_UNVERIFIED)]


def test_restore_refuses_a_missing_file_or_another_database_kind_in_french(database_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["db", "restaurer", str(tmp_path / "absent.dump"), "--oui"])
    assert missing.exit_code == 1 and "aucune sauvegarde" in missing.stderr and "Traceback" not in missing.output
    other = tmp_path / ("caisse.sqlite" if database_url.startswith("postgresql") else "caisse.dump")
    other.write_bytes(b"pas une sauvegarde")
    wrong = runner.invoke(app, ["db", "restaurer", str(other), "--oui"])
    assert wrong.exit_code == 1 and "n'est pas une sauvegarde" in wrong.stderr


def test_only_the_newest_backups_are_kept(database_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from caisse import backup

    folder = tmp_path / "sauvegardes"
    start = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    made = [backup.back_up(database_url, folder, keep=3, now=start + timedelta(days=day)) for day in range(5)]
    assert sorted(folder.iterdir()) == made[2:]


def test_a_person_accepts_as_lost_the_records_a_terminal_no_longer_holds_and_the_next_run_pays_what_follows(
        session: Session, engine: Engine, tmp_path: Path) -> None:
    """The terminal reported record 2 gone from its flash while the restored database lacks it:
    until a person accepts the loss, acked_seq stays below the gap and record 3 is held; after it,
    acked_seq passes the gap (the terminal reclaims again) and the next run pays record 3.
    Refused, with nothing changed, when nothing is reported lost, a reported record is stored,
    or the person is no active account."""
    from datetime import date

    from caisse.errors import CaisseError
    from caisse.ingest import terminal_decisions
    from caisse.models import ConsoleUser, TerminalHealth, TransactionRecord
    from caisse.settlement import runs as settlement

    rules = make_settings(str(engine.url), settlement_dir=str(tmp_path / "out"))
    market = Market(session, rules, vendors=1)
    chain = market.chains[0]
    records = [chain.pay(market.uid, amount) for amount in (100, 200, 300, 400)]
    market.upload(0, [records[0], records[2], records[3]])
    session.add(ConsoleUser(email="coordinatrice@caisse.test", role="coordinator", password_hash="-"))  # never signs in
    session.commit()
    by = "coordinatrice@caisse.test"
    tid = chain.terminal_id

    def refused(code: str) -> None:
        with pytest.raises(CaisseError) as error:
            terminal_decisions.accept_lost_records(session, terminal_id=tid, by=by)
        assert error.value.code == code
        session.rollback()
        terminal = session.get(Terminal, tid, populate_existing=True)
        assert terminal is not None and terminal.acked_seq == 1

    refused("no_lost_records")  # no report yet
    session.add(TerminalHealth(terminal_id=tid, terminal_time=1, firmware_version="0.1.0", uptime_s=0, boots=1,
                               watchdog_resets=0, crash_resets=0, task_restarts=0, safe_mode_boots=0, errors={},
                               last_error="", battery_mv=None, battery_low=False, unsent_records=0,
                               unsigned_records=0, log_free_bytes=0, terminal_acked_seq=4, lost_first_seq=2,
                               lost_last_seq=3, rewound_from_seq=4, rewound_to_seq=1))
    session.commit()
    refused("lost_records_arrived")  # record 3 is stored: the report is wrong about it
    health = session.get(TerminalHealth, tid)
    assert health is not None
    health.lost_last_seq = 2  # a later report
    session.commit()
    with pytest.raises(CaisseError):
        terminal_decisions.accept_lost_records(session, terminal_id=tid, by="personne@caisse.test")  # no such account
    session.rollback()

    assert terminal_decisions.accept_lost_records(session, terminal_id=tid, by=by) == (2, 2)
    session.commit()
    terminal = session.get(Terminal, tid, populate_existing=True)
    assert terminal is not None and terminal.acked_seq == 4
    after_gap = session.execute(select(TransactionRecord).where(TransactionRecord.terminal_id == tid,  # type: ignore[arg-type]
                                                                TransactionRecord.seq == 3)).scalar_one()  # type: ignore[arg-type]
    assert after_gap.chain_verified
    [event] = session.execute(select(AuditEvent).where(AuditEvent.action == "terminal.accept_loss")).scalars()
    assert event.actor == by and json.loads(event.detail or "") == {"first_seq": 2, "last_seq": 2, "acked_seq": 4}
    with pytest.raises(CaisseError):
        terminal_decisions.accept_lost_records(session, terminal_id=tid, by=by)  # a second click: nothing left to accept
    session.rollback()
    result = settlement.settle(session_factory(engine), run_date=date(2026, 1, 1), settings=rules)
    assert (result.paid_cents, result.held) == (100 + 300 + 400, [])
    assert_ledger_invariants(session)
