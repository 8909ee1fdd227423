"""Nightly settlement throughput (docs/performance.md): settle N transactions across V vendors.

    python benchmarks/settle.py [-n 1000000] [--vendors 1000] [--db sqlite|postgresql|both] [--next-day 10000]

Seeds a fresh database (a temporary SQLite file, or a new schema in the PostgreSQL database
`test` at 127.0.0.1:5432): V vendors with valid IBANs and one terminal each, then N accepted
records of the day (one in 100 a void of the payment before it) inserted by one set-based
statement (not timed). Then runs the settlement of that day the way `caisse settle` does,
step by step, and prints records settled per second for the prepare step (the set-based
INSERT ... SELECT of items and lines) and end to end (prepare + approve + export: SEPA file,
statements per vendor in CSV and PDF, summary, ledger payouts). Goals: prepare >= 200 000
records/s; end to end >= 150 000 records/s on PostgreSQL, and prepare as fast per record at 10^7
records as at 10^6 (`-n 10000000 --db postgresql`: about 6 GiB of database, a manual run).
Then a second day of `--next-day` records is settled on top of that history: the nightly case.
The export of a large run writes its statements and SEPA file in worker processes: their CPU is
counted with this process's.

Not a test: numbers depend on the machine. Results go in docs/performance.md ("Settlement").
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

from schwifty import IBAN
from sqlalchemy import Engine, text

from caisse.config import Settings
from caisse.db import make_engine, session_factory, upgrade
from caisse.ledger import postings as ledger
from caisse.settlement import runs as settlement
from caisse.staff import accounts
from caisse.vendors import service as vendor_service

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMA = f"caisse_bench_settle_{os.getpid()}"  # two runs at once must not drop each other's tables
T0 = 1_767_254_400  # 2026-01-01T08:00:00Z
DAY = date(2026, 1, 1)
DAY_SPAN_S = 50_000  # records spread over 08:00-21:53 UTC, all before the cut-off
VOID_EVERY = 100
GOAL_PREPARE_PER_S = 200_000
GOAL_END_TO_END_PER_S = {"postgresql": 150_000}

_COLUMNS = ("terminal_id, seq, raw, digest, kind, flags, time, amount_cents, ref_seq, card_uid, card_auth,"
            " prev_hash, household_id, status, reason, chain_verified, voided, received_at")


def _records_sql(dialect: str) -> str:
    """N records from a number series: terminal 1 + i % V, seq 1 + i / V; every 100th seq voids seq-1."""
    seq = "(:seq0 + 1 + i / :vendors)"
    kind = f"CASE WHEN {seq} % {VOID_EVERY} = 0 THEN 2 ELSE 1 END"
    amount = f"(100 + ({seq} - CASE WHEN {seq} % {VOID_EVERY} = 0 THEN 1 ELSE 0 END) * 7 % 2000)"
    values = (f"SELECT (1 + i % :vendors), {seq}, {{blob154}}, {{blob32}}, {kind}, 0, :t0 + i % {DAY_SPAN_S}, {amount},"
              f" CASE WHEN {seq} % {VOID_EVERY} = 0 THEN {seq} - 1 ELSE 0 END, {{blob7}}, {{blob24}}, {{blob32}},"
              " NULL, 'accepted', NULL, {true}, false, :now")
    if dialect == "sqlite":
        body = values.format(blob154="zeroblob(154)", blob32="zeroblob(32)", blob7="zeroblob(7)", blob24="zeroblob(24)", true="1")
        return (f"WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < :n)"
                f" INSERT INTO transaction_record ({_COLUMNS}) {body} FROM s")
    body = values.format(blob154="decode(repeat('00', 154), 'hex')", blob32="decode(repeat('00', 32), 'hex')",
                         blob7="decode(repeat('00', 7), 'hex')", blob24="decode(repeat('00', 24), 'hex')", true="true")
    return f"INSERT INTO transaction_record ({_COLUMNS}) {body} FROM generate_series(0, :n - 1) AS s(i)"


def seed(engine: Engine, *, n: int, vendors: int) -> None:
    sessions = session_factory(engine)
    with sessions() as session:
        for index in range(vendors):
            iban = str(IBAN.generate("DE", bank_code="37040044", account_code=f"{index + 1:010d}"))
            vendor = vendor_service.create_vendor(session, name=f"Producteur {index + 1}", kind="producer", zone="Nord", iban=iban)
            assert vendor.id == index + 1
        session.execute(
            text("INSERT INTO terminal (id, vendor_id, public_key, status, acked_seq, created_at) VALUES"
                 " (:id, :id, :key, 'active', 0, :now)"),
            [{"id": v, "key": v.to_bytes(65, "big"), "now": settlement.utcnow()} for v in range(1, vendors + 1)],
        )
        session.commit()
    add_day(engine, n=n, vendors=vendors, seq0=0, t0=T0)


def add_day(engine: Engine, *, n: int, vendors: int, seq0: int, t0: int) -> None:
    """n records of a day starting at `t0`, terminal seqs after `seq0`, and their payables."""
    with session_factory(engine)() as session:
        session.execute(text(_records_sql(engine.dialect.name)),
                        {"n": n, "vendors": vendors, "t0": t0, "seq0": seq0, "now": settlement.utcnow()})
        # The payables the ingestion would have posted, so the payouts leave them at zero.
        for vendor_id, net in session.execute(text(
            "SELECT t.vendor_id, SUM(CASE WHEN r.kind = 1 THEN r.amount_cents ELSE -r.amount_cents END)"
            " FROM transaction_record r JOIN terminal t ON t.id = r.terminal_id GROUP BY t.vendor_id")).all():
            session.execute(text("UPDATE ledger_account SET credits_posted_cents = :net WHERE code = :code"),
                            {"net": int(net), "code": ledger.vendor_payable_code(vendor_id)})
        session.commit()
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    else:  # fold the seed's WAL into the file now, not during the timed run's first commit
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()


def cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the statement workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(engine: Engine, *, n: int, folder: Path, day: date = DAY, prepare_only: bool = False) -> tuple[float, float, int, int]:
    rules = Settings(environment="development", database_url=str(engine.url), settlement_dir=str(folder))
    sessions = session_factory(engine)
    start = time.perf_counter()
    with sessions() as session:
        run_id = settlement.prepare_run(session, run_date=day, settings=rules, by=accounts.AUTOMATIC).id
        session.commit()
    prepared = time.perf_counter()
    assert run_id is not None
    if prepare_only:
        return prepared - start, float("nan"), n, 0
    with sessions() as session:
        settlement.approve_run(session, run_id=run_id, by=accounts.AUTOMATIC, settings=rules)
        session.commit()
    with sessions() as session:
        settlement.export_run(session, run_id=run_id, settings=rules)
        session.commit()
        result = settlement.describe(session, run_id=run_id)
    done = time.perf_counter()
    assert result.status == "exported" and result.paid_records == n and not result.held, result
    with sessions() as session:
        assert ledger.balance_cents(session, code=ledger.Account.VENDOR_PAID) == settlement.settled_total_cents(session)
    return prepared - start, done - start, result.paid_records, result.paid_cents


def run(db: str, *, n: int, vendors: int, next_day: int, prepare_only: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if db == "sqlite":
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        else:
            setup = make_engine(POSTGRES_URL)
            with setup.begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
                connection.execute(text(f"CREATE SCHEMA {SCHEMA}"))
            setup.dispose()
            engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={SCHEMA}"})
        try:
            upgrade(engine)
            began = time.perf_counter()
            seed(engine, n=n, vendors=vendors)
            seeded = time.perf_counter() - began
            cpu_before_s = cpu_s()
            prepare_s, total_s, records, cents = measure(engine, n=n, folder=Path(tmp) / "out", prepare_only=prepare_only)
            cpu_used_s = cpu_s() - cpu_before_s
            end_goal = GOAL_END_TO_END_PER_S.get(db)
            print(f"{db:<10} {records:>9} records, {vendors} vendors, {cents / 100:,.2f} EUR (seeded in {seeded:.1f} s,"
                  f" load average {os.getloadavg()[0]:.1f})")
            print(f"{'':<10} prepare  {prepare_s:7.2f} s  {records / prepare_s:>10,.0f} records settled/s"
                  f" (goal >= {GOAL_PREPARE_PER_S:,}: {records / prepare_s / GOAL_PREPARE_PER_S:.2f} x)")
            if not prepare_only:
                print(f"{'':<10} end2end  {total_s:7.2f} s  {records / total_s:>10,.0f} records settled/s"
                      f" (incl. SEPA file, {vendors} CSV and PDF statements, ledger payouts)"
                      + (f" (goal >= {end_goal:,}: {records / total_s / end_goal:.2f} x)" if end_goal else ""))
            print(f"{'':<10} CPU of this process and its workers: {cpu_used_s:.2f} s"
                  f" (the database server's own not counted)")
            if next_day:  # a night after that history: the watermark keeps it from being read again
                add_day(engine, n=next_day, vendors=vendors, seq0=-(-n // vendors), t0=T0 + 86_400)
                if db == "postgresql":
                    with engine.begin() as connection:
                        connection.execute(text("ANALYZE"))
                prepare_s, total_s, records, _ = measure(engine, n=next_day, folder=Path(tmp) / "out", day=date(2026, 1, 2))
                print(f"{'':<10} next day: {records} records on top of {n}: prepare {prepare_s:.3f} s,"
                      f" end2end {total_s:.2f} s")
        finally:
            engine.dispose()
            if db == "postgresql":
                cleanup = make_engine(POSTGRES_URL)
                with cleanup.begin() as connection:
                    connection.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
                cleanup.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="records to settle")
    parser.add_argument("--vendors", type=int, default=1_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--next-day", type=int, default=10_000, help="records of a second day settled after the first (0: none)")
    parser.add_argument("--prepare-only", action="store_true", help="stop after the prepare step (the 10^7 run)")
    args = parser.parse_args()
    assert args.n >= args.vendors > 0, "at least one record per vendor"
    for db in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        run(db, n=args.n, vendors=args.vendors, next_day=0 if args.prepare_only else args.next_day,
            prepare_only=args.prepare_only)


if __name__ == "__main__":
    main()
