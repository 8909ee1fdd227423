"""The committee's flows page (caisse.reports.flows) on a large database: how long the five queries take.

    python benchmarks/flows.py [-n 1000000] [--vendors 1000] [--households 5000] [--db sqlite|postgresql|both]

Seeds like benchmarks/settle.py (V producers with a terminal each, N accepted records, one in
100 a void), then gives the records H households and spreads them over six months (not timed).
Then times `flows.flows` over those six months, as the page calls it, three times, and prints
the best and the records read per second. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from settle import POSTGRES_URL, seed  # type: ignore[import-not-found]
from sqlalchemy import Engine, text

from caisse.db import make_engine, session_factory, upgrade
from caisse.members import households as household_service
from caisse.money import euros
from caisse.reports import flows

SCHEMA = "caisse_bench_flows"
DAY_S = 86_400
RUNS = 3


def spread(engine: Engine, *, households: int) -> None:
    """Households for the records, and their times spread over 2026-01 .. 2026-06."""
    with session_factory(engine)() as session:
        for index in range(households):
            household_service.create_household(session, name=f"Foyer {index + 1}", members=1 + index % 4, zone=f"Quartier {index % 8}")
        session.execute(text("UPDATE transaction_record SET household_id = 1 + id % :h, time = time + (id % 180) * :day"),
                        {"h": households, "day": DAY_S})
        session.commit()


def measure(engine: Engine) -> tuple[float, int]:
    best, spent = float("inf"), 0
    for _ in range(RUNS):
        with session_factory(engine)() as session:
            start = time.perf_counter()
            result = flows.flows(session, first="2026-01", last="2026-06", timezone="Europe/Paris")
            best = min(best, time.perf_counter() - start)
            session.commit()
        spent = sum(result.total_cents)
        assert sum(result.producer_cents) == spent and len(result.vendors) > 0
    return best, spent


@contextmanager
def fresh_engine(db: str, *, schema: str) -> Iterator[Engine]:
    """A migrated, empty database: a temporary SQLite file, or a new PostgreSQL schema dropped after."""
    with tempfile.TemporaryDirectory() as tmp:
        if db == "sqlite":
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        else:
            with make_engine(POSTGRES_URL).begin() as connection:
                connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                connection.execute(text(f"CREATE SCHEMA {schema}"))
            engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
            if db == "postgresql":
                with make_engine(POSTGRES_URL).begin() as connection:
                    connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))


def run(db: str, *, n: int, vendors: int, households: int) -> None:
    with fresh_engine(db, schema=SCHEMA) as engine:
        seed(engine, n=n, vendors=vendors)
        spread(engine, households=households)
        if db == "postgresql":
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
        seconds, cents = measure(engine)
        print(f"{db:<10} {n:>9} records, {vendors} vendors, {households} households, 6 months: "
              f"{seconds:6.2f} s (best of {RUNS}), {n / seconds:>10,.0f} records/s, {euros(cents, grouped=True)} EUR spent")


def main(run: Callable[..., None] = run, doc: str = __doc__ or "") -> None:
    """The command line of this benchmark, and of benchmarks/console.py, which seeds the same way."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000_000, help="records")
    parser.add_argument("--vendors", type=int, default=1_000)
    parser.add_argument("--households", type=int, default=5_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    for db in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        run(db, n=args.n, vendors=args.vendors, households=args.households)


if __name__ == "__main__":
    main()
